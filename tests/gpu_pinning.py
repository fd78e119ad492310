"""Pin each pytest-xdist worker to one GPU before CUDA initialises.

Worker gwN gets GPU N % device_count (of the GPUs already visible, if
CUDA_VISIBLE_DEVICES is set). The device count comes from NVML (or nvidia-smi), which
does not initialise the CUDA runtime: once it is initialised, CUDA_VISIBLE_DEVICES no
longer has any effect in this process.
"""

from __future__ import annotations

import os
import shutil
import subprocess


def gpu_for_worker(worker: str | None, visible: str | None, count: int) -> str | None:
    """The CUDA_VISIBLE_DEVICES value for xdist worker `worker` ("gw3"), or None to leave
    it alone (not a worker, or no GPU)."""
    if not worker or not worker.startswith("gw"):
        return None
    ids = [x.strip() for x in visible.split(",") if x.strip()] if visible else \
        [str(i) for i in range(count)]
    if not ids:
        return None
    return ids[int(worker[2:]) % len(ids)]


def physical_gpu_count() -> int:
    try:
        import torch

        n = torch.cuda._device_count_nvml()
        if n >= 0:
            return n
    except Exception:  # noqa: BLE001 - any failure means "ask nvidia-smi"
        pass
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        res = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in res.stdout.splitlines() if line.startswith("GPU "))


def pin_xdist_worker() -> str | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return None
    gpu = gpu_for_worker(worker, os.environ.get("CUDA_VISIBLE_DEVICES"), physical_gpu_count())
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    return gpu
