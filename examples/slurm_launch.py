"""Run any of the example scripts on a SLURM cluster, many nodes x many GPUs, through `accelerate launch`.

Altogether was trained on 2 nodes x 8 GPUs under SLURM (MetaCLIP `configs/altogether.py`: `nodes = 2`,
`ngpus = 8`); re-captioning a web-scale pool runs the same way with `caption_shards.py`. This writes an sbatch
script whose single task per node starts `accelerate launch` with that node's rank, the first node as the
rendezvous, and the cluster's total process count, then submits it with `sbatch` (or, with `--dry-run`, prints
the script and the command each node would run, with SLURM's variables filled in as on a real allocation).

    python examples/slurm_launch.py --nodes 2 --gpus-per-node 8 --partition gpu --time 72:00:00 -- \\
        examples/train_altogether.py --stage pt --train_shards 'shards/{000000..200000}.tar' ...
    python examples/slurm_launch.py --nodes 4 --gpus-per-node 8 --dry-run -- \\
        examples/caption_shards.py runs/ft/final 'shards/{000000..009999}.tar' --out captions/
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--cpus-per-task", type=int, default=None, help="default: 10 per GPU")
    parser.add_argument("--partition", default=None)
    parser.add_argument("--time", default="72:00:00")
    parser.add_argument("--job-name", default="hf-captioners")
    parser.add_argument("--port", type=int, default=29500, help="rendezvous port on the first node")
    parser.add_argument("--mixed-precision", default="bf16", choices=("no", "fp16", "bf16"))
    parser.add_argument("--output", default="slurm-%j.out", help="sbatch --output")
    parser.add_argument("--dry-run", action="store_true", help="print the sbatch script and each node's command")
    parser.add_argument("script", nargs=argparse.REMAINDER, help="-- then the example script and its arguments")
    args = parser.parse_args(argv)
    if args.script and args.script[0] == "--":
        args.script = args.script[1:]
    if not args.script:
        parser.error("give the script to run after --, e.g. -- examples/train_altogether.py --stage pt ...")
    if args.nodes < 1 or args.gpus_per_node < 1:
        parser.error("--nodes and --gpus-per-node must be >= 1")
    return args


def launch_options(args, main_ip: str) -> list[str]:
    """`accelerate launch` options every node shares (each adds its own `--machine_rank`), then the script."""
    total = args.nodes * args.gpus_per_node
    options = ["--num_machines", str(args.nodes), "--num_processes", str(total), "--main_process_ip", main_ip,
               "--main_process_port", str(args.port), "--mixed_precision", args.mixed_precision,
               "--dynamo_backend", "no"]  # fmt: skip
    if total > 1:
        options.append("--multi_gpu")
    return options + list(args.script)


def sbatch_script(args) -> str:
    cpus = args.cpus_per_task or 10 * args.gpus_per_node
    header = [
        "#!/bin/bash",
        f"#SBATCH --job-name={args.job_name}",
        f"#SBATCH --nodes={args.nodes}",
        "#SBATCH --ntasks-per-node=1",  # one launcher per node; accelerate starts one process per GPU
        f"#SBATCH --gpus-per-node={args.gpus_per_node}",
        f"#SBATCH --cpus-per-task={cpus}",
        f"#SBATCH --time={args.time}",
        f"#SBATCH --output={args.output}",
    ]
    if args.partition:
        header.append(f"#SBATCH --partition={args.partition}")
    shared = " ".join('"$MAIN_IP"' if part == "$MAIN_IP" else shlex.quote(part) for part in launch_options(args, "$MAIN_IP"))
    body = [
        "set -euo pipefail",
        # sed reads every line: `head -n 1` would exit early, scontrol die of SIGPIPE and pipefail end the job
        'MAIN_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | sed -n 1p)',
        "export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}",
        # the quoted program is expanded on each node (its own SLURM_NODEID); the shared options are its "$@"
        "srun --kill-on-bad-exit=1 bash -c 'exec accelerate launch --machine_rank \"$SLURM_NODEID\" \"$@\"' _ " + shared,
    ]
    return "\n".join(header + [""] + body) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    script = sbatch_script(args)
    if args.dry_run:
        print(script, end="")
        nodes = [f"node{i:03d}" for i in range(args.nodes)]
        for rank, node in enumerate(nodes):
            command = ["accelerate", "launch", "--machine_rank", str(rank), *launch_options(args, nodes[0])]
            print(f"# {node}: " + shlex.join(command))
        print(f"dry run: {args.nodes} nodes x {args.gpus_per_node} GPUs = {args.nodes * args.gpus_per_node} "
              "processes; nothing submitted")  # fmt: skip
        return 0
    with tempfile.NamedTemporaryFile("w", suffix=".sbatch", delete=False, dir=os.getcwd()) as handle:
        handle.write(script)
    try:
        done = subprocess.run(["sbatch", handle.name], check=False, capture_output=True, text=True)
    except FileNotFoundError:
        print(f"slurm_launch: sbatch not found; the script is in {handle.name} (or use --dry-run)", file=sys.stderr)
        return 2
    if done.returncode:
        print(f"slurm_launch: sbatch failed: {done.stderr.strip()} (script kept in {handle.name})", file=sys.stderr)
        return 2
    Path(handle.name).unlink()
    print(done.stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
