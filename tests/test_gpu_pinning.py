"""xdist workers pin one GPU each (conftest.py, tests/gpu_pinning.py).

The mapping is checked as a pure function everywhere; the end-to-end test runs a tiny
pytest session with two xdist workers in a subprocess, each reporting the device it got,
and checks that every GPU is used when there are at least as many workers as GPUs (on a
CPU machine: that no worker is pinned and both still run)."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.gpu_pinning import gpu_for_worker

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("worker,visible,count,want", [
    ("gw0", None, 4, "0"),
    ("gw5", None, 4, "1"),  # worker_index % device_count
    ("gw3", None, 1, "0"),
    ("gw2", "3,5,7", 8, "7"),  # pins among the GPUs already visible
    ("gw4", "3,5,7", 8, "5"),
    ("gw0", None, 0, None),  # no GPU: nothing to pin
    (None, None, 4, None),  # not an xdist worker
    ("master", None, 4, None),
])
def test_gpu_for_worker(worker, visible, count, want):
    assert gpu_for_worker(worker, visible, count) == want


TOUCH_GPU = textwrap.dedent('''
    import torch

    def test_touch():  # initialise CUDA on this worker's GPU, if there is one
        if torch.cuda.is_available():
            assert torch.ones(4, device="cuda").sum().item() == 4
''')


def test_workers_report_their_gpu(tmp_path):
    """Every worker writes what it ran on (conftest's GPU_REPORT_DIR hook); with as many
    workers as GPUs, each worker holds a different physical GPU and all are used."""
    reports = tmp_path / "reports"
    env = {**os.environ, "GPU_REPORT_DIR": str(reports), "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)  # this process may itself be a pinned worker
    env.pop("ERROR_RATIOS_DIR", None)  # the inner run must not clear the outer run's files
    # the GPUs the subprocess will see (NVML honours CUDA_VISIBLE_DEVICES: not ours)
    count = subprocess.run(
        [sys.executable, "-c", "from tests.gpu_pinning import physical_gpu_count as n; print(n())"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
    gpus = int(count.stdout.strip())
    workers = max(2, gpus)
    for i in range(workers):  # at least one test per worker
        (tmp_path / f"test_touch_{i}.py").write_text(TOUCH_GPU.replace("test_touch", f"test_{i}"))
    # the repository's conftest.py does the pinning: load it as a plugin for tmp files
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
         "-n", str(workers), "--dist", "load", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    got = [json.loads(p.read_text()) for p in reports.glob("gpu-*.json")]
    assert sorted(r["worker"] for r in got) == sorted(f"gw{i}" for i in range(workers)), got
    assert sum(r["tests"] for r in got) == workers, got
    assert "GPU used by each worker" in res.stdout, res.stdout[-3000:]
    if gpus == 0:
        assert all(r["visible"] is None and r["device"] is None for r in got), got
    else:
        for r in got:
            assert r["visible"] == str(int(r["worker"][2:]) % gpus), r
        used = {r["device"]["uuid"] for r in got if r["tests"] and r["device"]}
        assert len(used) == gpus, f"physical GPUs used: {used} of {gpus}; reports {got}"
