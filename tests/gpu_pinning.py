"""Pin each pytest-xdist worker to one GPU before CUDA initialises.

Worker gwN gets GPU N % device_count (of the GPUs already visible, if
CUDA_VISIBLE_DEVICES is set). The device count comes from NVML (or nvidia-smi), which
does not initialise the CUDA runtime: once it is initialised, CUDA_VISIBLE_DEVICES no
longer has any effect in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import defaultdict


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


def worker_report(tests_run: int) -> dict:
    """What this process ran on: its worker id, the CUDA_VISIBLE_DEVICES it was pinned
    to, how many tests it ran, and the physical GPU (uuid, PCI bus) behind CUDA device 0,
    or None when it never initialised CUDA."""
    import torch

    rep = {"worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
           "visible": os.environ.get("CUDA_VISIBLE_DEVICES"), "tests": tests_run,
           "device": None}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        bus = [getattr(props, f"pci_{x}_id", None) for x in ("domain", "bus", "device")]
        rep["device"] = {"name": props.name, "uuid": str(getattr(props, "uuid", "")),
                         "pci": None if None in bus else f"{bus[0]:04x}:{bus[1]:02x}:{bus[2]:02x}"}
    return rep


def summarize_reports(paths: list[str]) -> list[str]:
    """One line per physical GPU (or "no CUDA"): the workers that used it and the tests
    they ran, from the files worker_report() left."""
    per_gpu: dict[str, list[dict]] = defaultdict(list)
    for path in paths:
        with open(path) as f:
            rep = json.load(f)
        dev = rep["device"]
        key = f"{dev['name']} uuid {dev['uuid']} pci {dev['pci']}" if dev else "no CUDA"
        per_gpu[key].append(rep)
    lines = []
    for key, reps in sorted(per_gpu.items()):
        workers = sorted(reps, key=lambda r: int(r["worker"][2:]) if r["worker"][2:].isdigit()
                         else -1)
        lines.append(f"{key}: {len(reps)} workers "
                     f"({', '.join(r['worker'] + '=' + str(r['visible']) for r in workers)}), "
                     f"{sum(r['tests'] for r in reps)} tests")
    return lines
