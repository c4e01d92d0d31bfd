"""examples/slurm_launch.py: the sbatch script it renders runs, per node, the `accelerate launch` that node needs
(its rank, the first node as rendezvous, nodes x GPUs processes), with the user's arguments intact. Checked by
running the rendered script against stand-ins for scontrol / srun / accelerate, and accelerate's own parser."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from examples_loader import load_example  # noqa: E402

SCRIPT_ARGS = ["examples/train_altogether.py", "--stage", "pt", "--train_shards", "shards/{000000..000999}.tar",
               "--output_dir", "runs/my pt"]  # fmt: skip


@pytest.fixture(scope="module")
def slurm():
    return load_example("slurm_launch")


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_rendered_script_runs_one_accelerate_launch_per_node(slurm, tmp_path):
    args = slurm.parse_args(["--nodes", "2", "--gpus-per-node", "8", "--partition", "gpu", "--", *SCRIPT_ARGS])
    script = tmp_path / "job.sbatch"
    script.write_text(slurm.sbatch_script(args))
    assert "#SBATCH --nodes=2" in script.read_text() and "#SBATCH --ntasks-per-node=1" in script.read_text()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # a big allocation's node list: more than a pipe holds, so a reader that stops at the first line breaks the job
    _stub(bin_dir, "scontrol", "#!/bin/bash\nprintf 'gpu-a01\\ngpu-a02\\n'\nseq -f 'gpu-b%g' 3 20000\n")
    # srun: run the task once per node, as SLURM does with --ntasks-per-node=1, each with its own SLURM_NODEID
    _stub(bin_dir, "srun", "#!/bin/bash\nshift\nfor i in 0 1; do SLURM_NODEID=$i \"$@\" || exit 1; done\n")
    _stub(bin_dir, "accelerate", f"#!{sys.executable}\nimport json, os, sys\n"
          "open(os.environ['ARGV_LOG'], 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n")  # fmt: skip
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_NODELIST": "gpu-a[01-02]",
           "ARGV_LOG": str(tmp_path / "argv.jsonl")}  # fmt: skip
    done = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = [json.loads(line) for line in (tmp_path / "argv.jsonl").read_text().splitlines()]
    assert len(calls) == 2
    for rank, argv in enumerate(calls):
        assert argv[:3] == ["launch", "--machine_rank", str(rank)]
        assert argv[argv.index("--main_process_ip") + 1] == "gpu-a01"
        assert argv[argv.index("--num_processes") + 1] == "16" and argv[argv.index("--num_machines") + 1] == "2"
        assert argv[-len(SCRIPT_ARGS):] == SCRIPT_ARGS  # the brace pattern and the space survive the quoting

    # and accelerate's own launcher parser reads them as intended
    from accelerate.commands.launch import launch_command_parser

    parsed = launch_command_parser().parse_args(calls[1][1:])
    assert (parsed.machine_rank, parsed.num_machines, parsed.num_processes, parsed.multi_gpu) == (1, 2, 16, True)
    assert parsed.main_process_ip == "gpu-a01" and parsed.training_script == "examples/train_altogether.py"
    assert parsed.training_script_args == SCRIPT_ARGS[1:]


def test_dry_run_prints_every_node_and_submits_nothing(slurm, capsys):
    assert slurm.main(["--nodes", "3", "--gpus-per-node", "4", "--dry-run", "--", "examples/caption_shards.py",
                       "runs/ft/final", "shards/{0..9}.tar", "--out", "captions"]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out if line.startswith("# node")] == ["# node000", "# node001", "# node002"]
    assert out[-1] == "dry run: 3 nodes x 4 GPUs = 12 processes; nothing submitted"


def test_operator_mistakes_are_one_line_and_status_2(slurm, capsys, monkeypatch, tmp_path):
    with pytest.raises(SystemExit) as error:
        slurm.parse_args(["--nodes", "2"])
    assert error.value.code == 2 and "give the script to run" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    assert slurm.main(["--", "examples/train_antarctic.py"]) == 2
    assert "sbatch not found" in capsys.readouterr().err
