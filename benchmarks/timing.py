"""Timing primitives: the GPU check, do_bench medians, CUDA-graph replay, the ceilings.

Every time is the median of ``triton.testing.do_bench``, which zeroes a 256 MB buffer
before each timed call, so each call starts with a cold L2 (50 MB on an H100): decode
inputs smaller than L2 are still read from HBM, and no rotation of input buffers is
needed. The zeroing is queued before the start event and is not part of the time.

Decode-type cases are also timed as a CUDA graph replay of one call: that removes the
Python and launch overhead, which matters when a call takes 10-50 us.
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


@dataclass(frozen=True)
class Timer:
    """do_bench settings (milliseconds of warm-up and of timed repetitions)."""

    warmup_ms: int = 25
    rep_ms: int = 100

    def eager(self, fn: Callable[[], object]) -> float:
        from triton.testing import do_bench

        return float(do_bench(fn, warmup=self.warmup_ms, rep=self.rep_ms,
                              return_mode="median"))

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
