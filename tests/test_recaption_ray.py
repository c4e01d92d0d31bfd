"""The Ray engine: same bytes as the local engine, a killed actor costs one retry and no caption, operator errors.

Every Ray cluster here lives in a network namespace of its own (loopback only), with its session files in a short
folder under /tmp that is removed afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from hf_captioners.data.shards import expand_shard_specs
from hf_captioners.recaption.engine import caption_shards, shard_outputs

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from recaption_fakes import FakeCaptioner  # noqa: E402


def _have_ray() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


needs_ray = pytest.mark.skipif(not _have_ray(), reason="ray is not installed (pip install 'hf-captioners[ray]')")


@pytest.fixture()
def netns():
    """A fresh network namespace with only loopback up; skips where `ip netns` is not available."""
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command")
    name = f"hfc{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"ip netns unavailable: {made.stderr.strip()}")
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.fixture()
def ray_tmp():
    path = Path(f"/tmp/ray{uuid.uuid4().hex[:6]}")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _run_in(netns: str, *args, timeout: int = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return subprocess.run(["ip", "netns", "exec", netns, sys.executable, *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=timeout)


def _keys(shard: str) -> set[str]:
    with tarfile.open(shard) as tar:
        return {name.rsplit(".", 1)[0] for name in tar.getnames()}


def _assert_all_captioned_as_locally(result, shards, tmp_path) -> None:
    """4 shards x 16 records captioned by 2 workers with no retry, every output byte-identical to the local run's."""
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("caption-shards: 4 shards done, 0 skipped, 0 failed; 64 records, 64 captioned"), last
    assert last.endswith("ray: 2 workers, 0 retries"), last
    for shard in shards:
        for kind in ("json", "jsonl", "errors"):
            ours, theirs = shard_outputs(tmp_path / "ray", shard)[kind], shard_outputs(tmp_path / "local", shard)[kind]
            assert ours.read_bytes() == theirs.read_bytes(), (shard, kind)


@needs_ray
def test_ray_engine_writes_the_local_engines_bytes(altogether_dir, tiny_toyworld, netns, ray_tmp, tmp_path):
    from hf_captioners.recaption.adapters import load_captioner

    pattern = str(tiny_toyworld / "shards" / "train-{000000..000003}.tar")
    shards = expand_shard_specs(pattern)
    local = caption_shards(load_captioner(str(altogether_dir)), shards, tmp_path / "local", batch_size=5,
                           num_workers=0, extra_formats=("jsonl",), progress=False)
    assert local.captioned == 64
    result = _run_in(netns, "-m", "hf_captioners.commands", "caption-shards", altogether_dir, pattern, "--out",
                     tmp_path / "ray", "--batch-size", "5", "--extra-formats", "jsonl", "--no-progress", "--engine",
                     "ray", "--ray-workers", "2", "--ray-temp-dir", ray_tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    _assert_all_captioned_as_locally(result, shards, tmp_path)
    again = _run_in(netns, "-m", "hf_captioners.commands", "caption-shards", altogether_dir, pattern, "--out",
                    tmp_path / "ray", "--no-progress", "--engine", "ray", "--ray-workers", "2",
                    "--ray-temp-dir", ray_tmp)
    assert again.returncode == 0 and "0 shards done, 4 skipped" in again.stdout, again.stderr[-3000:]


KILL_SCRIPT = '''
import json, os, signal, sys
from pathlib import Path
import ray
from recaption_fakes import FakeCaptioner
from hf_captioners.data.shards import expand_shard_specs
from hf_captioners.recaption.ray_engine import caption_shards_ray, start_ray

pattern, out, marker, temp_dir = sys.argv[1:5]


class DiesOnce(FakeCaptioner):
    """The first actor to reach its second batch kills its own process with SIGKILL, mid-shard, once per run."""

    def generate(self, batch):
        if len(self.batches) == 1:
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().generate(batch)


start_ray(num_cpus=2, temp_dir=temp_dir, log_to_driver=False)
summary = caption_shards_ray(lambda device: DiesOnce(delay=0.05), expand_shard_specs(pattern), out,
                             num_workers=2, max_retries=2, batch_size=4, progress=False)
ray.shutdown()
print(json.dumps(vars(summary)))
print(summary.line())
'''


@needs_ray
def test_a_killed_actor_costs_one_retry_and_no_caption_twice(tiny_toyworld, netns, ray_tmp, tmp_path):
    pattern = str(tiny_toyworld / "shards" / "train-{000000..000003}.tar")
    shards = expand_shard_specs(pattern)
    script = tmp_path / "kill_once.py"
    script.write_text(KILL_SCRIPT)
    marker = tmp_path / "killed"
    result = _run_in(netns, script, pattern, tmp_path / "out", marker, ray_tmp)
    assert result.returncode == 0, result.stderr[-3000:]
    assert marker.exists()  # an actor did die
    summary = json.loads(result.stdout.strip().splitlines()[-2])
    assert (summary["shards_done"], summary["captioned"], summary["retries"], summary["shards_lost"]) == (4, 64, 1, 0)
    assert result.stdout.strip().endswith("ray: 2 workers, 1 retry")
    caption_shards(FakeCaptioner(), shards, tmp_path / "local", batch_size=4, num_workers=0, progress=False)
    for shard in shards:
        ours = json.loads(shard_outputs(tmp_path / "out", shard)["json"].read_text())
        assert set(ours) == _keys(shard) and all(len(v) == 1 for v in ours.values())
        assert ours == json.loads(shard_outputs(tmp_path / "local", shard)["json"].read_text())
    assert not list((tmp_path / "out").glob(".*.tmp")) and not list((tmp_path / "out").glob("*.partial.json"))


def _main_err(capsys, *argv) -> tuple[int, list[str]]:
    from hf_captioners.commands import main

    status = main(["caption-shards", *map(str, argv)])
    return status, capsys.readouterr().err.strip().splitlines()


def test_engine_ray_without_ray_is_an_operator_error(altogether_dir, tiny_toyworld, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError, as where it is not installed
    shard = tiny_toyworld / "shards" / "train-000000.tar"
    status, err = _main_err(capsys, altogether_dir, shard, "--out", tmp_path / "out", "--engine", "ray")
    assert status == 2 and "Traceback" not in "\n".join(err)
    assert err[-1].startswith("caption-shards: error: --engine ray needs Ray") and "hf-captioners[ray]" in err[-1]
    status, err = _main_err(capsys, altogether_dir, shard, "--out", tmp_path / "out", "--ray-workers", "2")
    assert status == 2
    assert err[-1] == "caption-shards: error: --ray-workers given without --engine ray: add --engine ray or drop them"
    assert not (tmp_path / "out").exists()


@needs_ray
def test_bad_ray_address_is_an_operator_error(altogether_dir, tiny_toyworld, tmp_path, capsys):
    shard = tiny_toyworld / "shards" / "train-000000.tar"
    for address, expected in (("127.0.0.1:1", "no Ray cluster answers at '127.0.0.1:1'"),
                              ("just-a-host", "is not host:port")):
        status, err = _main_err(capsys, altogether_dir, shard, "--out", tmp_path / "out", "--engine", "ray",
                                "--ray-address", address)
        assert status == 2 and "Traceback" not in "\n".join(err), address
        assert err[-1].startswith("caption-shards: error: ") and expected in err[-1], err[-1]
    assert not (tmp_path / "out").exists()


CLUSTER_SCRIPT = r'''
# A two-node cluster (head + one worker node, 1 CPU each) on loopback, then "$@" against it. This runs as PID 1 of
# a PID namespace of its own, so `ray stop --force` sees only this cluster's processes, and whatever is left when
# it exits is killed by the kernel. `ray start` returns once its node is registered with the GCS.
set -u
ray_bin=$1 port=$2 temp_dir=$3
shift 3
trap '"$ray_bin" stop --force >&2 2>&1' EXIT
"$ray_bin" start --head --node-ip-address 127.0.0.1 --port "$port" --num-cpus 1 --include-dashboard false \
    --temp-dir "$temp_dir" --disable-usage-stats >&2 || exit 90
"$ray_bin" start --address "127.0.0.1:$port" --node-ip-address 127.0.0.1 --num-cpus 1 --temp-dir "$temp_dir" \
    --disable-usage-stats >&2 || exit 91
"$@"
'''


@needs_ray
def test_ray_engine_on_an_existing_two_node_cluster_writes_the_local_engines_bytes(
        altogether_dir, tiny_toyworld, netns, ray_tmp, tmp_path):
    """`ray start --head` + `ray start --address` (a second node), then `caption-shards --ray-address`: one actor
    per node, the local engine's bytes."""
    from hf_captioners.recaption.adapters import load_captioner

    ray_bin = Path(sys.executable).with_name("ray")
    if not ray_bin.exists() or shutil.which("unshare") is None:
        pytest.skip("needs the `ray` command next to this Python and `unshare`")
    pid_ns = ["ip", "netns", "exec", netns, "unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
    probe = subprocess.run([*pid_ns, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no PID namespaces here (unshare --pid): {probe.stderr.strip()}")
    pattern = str(tiny_toyworld / "shards" / "train-{000000..000003}.tar")
    shards = expand_shard_specs(pattern)
    local = caption_shards(load_captioner(str(altogether_dir)), shards, tmp_path / "local", batch_size=5,
                           num_workers=0, extra_formats=("jsonl",), progress=False)
    assert local.captioned == 64
    port = _run_in(netns, "-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); "
                                "print(s.getsockname()[1])", timeout=30).stdout.strip()
    script = tmp_path / "cluster.sh"
    script.write_text(CLUSTER_SCRIPT)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="disabled", RAY_TMPDIR=str(ray_tmp),
               PYTHONUNBUFFERED="1")
    # The script's EXIT trap runs `ray stop --force`; on a timeout, killing unshare (--kill-child) kills the PID
    # namespace's PID 1 and so every Ray process in it; the netns fixture deletes the network namespace.
    result = subprocess.run(
        [*pid_ns, "bash", script, ray_bin, port, ray_tmp, sys.executable, "-m", "hf_captioners.commands",
         "caption-shards", altogether_dir, pattern, "--out", tmp_path / "ray", "--batch-size", "5", "--extra-formats",
         "jsonl", "--no-progress", "--engine", "ray", "--ray-address", f"127.0.0.1:{port}", "--ray-workers", "2"],
        capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "Connecting to existing Ray cluster at address: 127.0.0.1:" in result.stderr
    # the engine saw room for both 1-CPU workers, and the head has 1 CPU: the worker node had joined
    assert "holds 1 of the 2 workers" not in result.stderr, result.stderr[-4000:]
    _assert_all_captioned_as_locally(result, shards, tmp_path)
