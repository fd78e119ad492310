"""Timing primitives: the GPU check, GPU-time medians, CUDA-graph replay, the ceilings.

Every time is a median GPU time measured the way ``triton.testing.do_bench`` measures it
(a 256 MB buffer is zeroed before each timed call, so each call starts with a cold L2,
50 MB on an H100: decode inputs smaller than L2 are still read from HBM, no rotation of
input buffers is needed), with one addition: a ~1 ms GPU spin is queued between the
flush and the start event. do_bench's flush takes ~85 us on an H100; a call whose host
work (Python wrapper, launch) takes longer left the GPU idle inside the timed window,
so the "kernel time" grew with the host's speed. Ours takes 0.14-0.27 ms of host time
per prefill call on the device machine (benchmarks/NOTES.md, v8): padded var-len read
0.384 ms under do_bench in one run against 0.182 ms of GPU time. With the spin the
host is always ahead and the window holds only the GPU's work, for every
implementation alike. Host cost is a separate figure (``host_ms``).

Decode-type cases are also timed as a CUDA graph replay of one call: that removes the
launch overhead from the GPU timeline too (the headline for those families).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import torch


def cuda_unavailable_reason() -> str | None:
    """None when a CUDA GPU can be timed; else a one-line reason."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return ("TRITON_INTERPRET=1 is set: the Triton interpreter runs on the CPU and its "
                "timings mean nothing; unset it and run on a CUDA GPU")
    if not torch.cuda.is_available():
        build = torch.version.cuda or "no CUDA build"
        return (f"no CUDA GPU is visible to torch {torch.__version__} ({build}); "
                "the benchmarks time GPU kernels and need one")
    return None


def sync() -> None:
    """Wait for the GPU (a no-op where CUDA is absent, so CPU dry runs work)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


@dataclass(frozen=True)
class CardInfo:
    name: str
    slug: str
    sm_count: int
    l2_mb: float
    memory_gb: float

    def as_dict(self) -> dict:
        return {"name": self.name, "sm_count": self.sm_count, "l2_mb": self.l2_mb,
                "memory_gb": self.memory_gb}


def card_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown-card"


def card_info() -> CardInfo:
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    l2 = getattr(props, "L2_cache_size", 0) or 0
    return CardInfo(name=props.name, slug=card_slug(props.name),
                    sm_count=props.multi_processor_count, l2_mb=l2 / 1e6,
                    memory_gb=props.total_memory / 1e9)


def capture_graph(fn: Callable[[], torch.Tensor]):
    """Capture one call of ``fn`` in a CUDA graph. Returns (graph, static output).

    ``fn`` runs a few times on a side stream first (allocator and library warm-up, as
    torch's graph docs ask), then once under capture.
    """
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    torch.cuda.synchronize()
    return graph, out


# GPU cycles of the spin queued before each timed call (~1 ms at the H100's clocks):
# longer than any implementation's host work per call, so the GPU never waits for it.
SPIN_CYCLES = 2_000_000
SPIN_MS = 1.0  # about SPIN_CYCLES at 1.98 GHz; the runner warns when host time nears it
MAX_REPS = 400  # enough for a stable median; bounds the run time of tiny kernels


def gpu_time_ms(fn: Callable[[], object], warmup_ms: float, rep_ms: float,
                flush_l2: bool = True) -> float:
    """Median GPU time of fn() in ms, L2 flushed before each call (see the module doc).
    flush_l2=False leaves the L2 as the previous call left it (warm: for diagnostics)."""
    flush = torch.empty(256 * 1024 * 1024, dtype=torch.int8, device="cuda")
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(5):
        flush.zero_()
        fn()
    end.record()
    torch.cuda.synchronize()
    estimate = max(start.elapsed_time(end) / 5, 1e-3)
    for _ in range(max(1, int(warmup_ms / estimate))):
        fn()
    reps = min(MAX_REPS, max(1, int(rep_ms / estimate)))
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        if flush_l2:
            flush.zero_()
        torch.cuda._sleep(SPIN_CYCLES)
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    times = sorted(s.elapsed_time(e) for s, e in zip(starts, ends, strict=True))
    return float(times[len(times) // 2])


def host_time_ms(fn: Callable[[], object], calls: int = 50) -> float:
    """Host time per call of fn() in ms (Python, argument checks, launch), GPU work
    excluded as far as the host runs ahead of it."""
    import time

    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - t0
    torch.cuda.synchronize()
    return elapsed / calls * 1e3


@dataclass(frozen=True)
class Timer:
    """Warm-up and timed-repetition budgets, in milliseconds of the timed call's GPU time
    (the wall time per repetition adds the flush and the ~1 ms spin)."""

    warmup_ms: int = 25
    rep_ms: int = 100

    def eager(self, fn: Callable[[], object]) -> float:
        return gpu_time_ms(fn, self.warmup_ms, self.rep_ms)

    def graph(self, graph: torch.cuda.CUDAGraph) -> float:
        return self.eager(graph.replay)


def measure_ceilings(timer: Timer, *, copy_bytes: int = 1 << 30, matmul_n: int = 8192,
                     log: Callable[[str], None] = print) -> dict:
    """Device-to-device copy bandwidth (bytes read + written) and dense matmul rates."""
    dev = torch.device("cuda")
    ceilings: dict[str, float | None] = {}
    try:
        src = torch.empty(copy_bytes // 4, dtype=torch.float32, device=dev).normal_()
        dst = torch.empty_like(src)
        ms = timer.eager(lambda src=src, dst=dst: dst.copy_(src))
        ceilings["copy_gbps"] = 2 * copy_bytes / (ms * 1e-3) / 1e9
        del src, dst
    except Exception as exc:  # a ceiling we cannot measure is recorded as None
        log(f"  copy ceiling failed: {type(exc).__name__}: {exc}")
        ceilings["copy_gbps"] = None
    flops = 2.0 * matmul_n ** 3
    for label, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        try:
            gen = torch.Generator(device=dev).manual_seed(0)
            a = torch.randn(matmul_n, matmul_n, device=dev, dtype=dtype, generator=gen)
            b = torch.randn(matmul_n, matmul_n, device=dev, dtype=dtype, generator=gen)
            ms = timer.eager(lambda a=a, b=b: a @ b)
            ceilings[f"matmul_tflops_{label}"] = flops / (ms * 1e-3) / 1e12
            del a, b
        except Exception as exc:
            log(f"  {label} matmul ceiling failed: {type(exc).__name__}: {exc}")
            ceilings[f"matmul_tflops_{label}"] = None
    torch.cuda.empty_cache()
    return ceilings
