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

from tests.gpu_pinning import gpu_for_worker, physical_gpu_count

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


REPORTER = textwrap.dedent('''
    import json, os
    import torch

    def test_report(tmp_path_factory):
        dev = None
        if torch.cuda.is_available():
            dev = torch.cuda.get_device_properties(0).uuid if hasattr(
                torch.cuda.get_device_properties(0), "uuid") else None
            dev = str(dev)
        out = os.environ["PIN_REPORT_DIR"]
        worker = os.environ.get("PYTEST_XDIST_WORKER", "none")
        with open(os.path.join(out, worker + ".json"), "w") as f:
            json.dump({"worker": worker,
                       "visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                       "device": dev}, f)
''')


def test_workers_report_their_gpu(tmp_path):
    gpus = physical_gpu_count()
    workers = max(2, gpus)
    (tmp_path / "test_report_a.py").write_text(REPORTER)
    (tmp_path / "test_report_b.py").write_text(REPORTER.replace("test_report", "test_report_b"))
    for i in range(2, workers):  # at least one test per worker
        (tmp_path / f"test_report_{i}.py").write_text(
            REPORTER.replace("test_report", f"test_report_{i}"))
    reports = tmp_path / "reports"
    reports.mkdir()
    env = {**os.environ, "PIN_REPORT_DIR": str(reports), "PYTHONPATH": str(ROOT)}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    # the repository's conftest.py does the pinning: load it as a plugin for tmp files
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "conftest",
         "-n", str(workers), "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    got = [json.loads(p.read_text()) for p in reports.glob("gw*.json")]
    assert len(got) >= 2, f"expected reports from >= 2 workers, got {got}"
    if gpus == 0:
        assert all(r["visible"] is None for r in got), got
    else:
        pinned = {r["visible"] for r in got}
        assert pinned == {str(i) for i in range(gpus)}, f"GPUs used: {pinned} of {gpus}"
