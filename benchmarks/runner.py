"""Run cases: check every implementation against the float64 oracle, then time it.

Per implementation the record's ``status`` is one of
  ok       checked and timed
  wrong    output beyond tolerance (or not finite): reported, not timed
  refused  the implementation does not support the case (its reason in ``note``)
  skipped  not run on purpose (memory estimate, time budget, missing kernel)
  oom      out of GPU memory
  error    anything else (type and first line in ``note``)
One implementation's failure never stops the run; a CUDA error that poisons the
context (illegal address, device assert) does, after the records so far are written.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import peers
from .cases import COMPUTE_BOUND, DTYPE_NAMES, FUNCTION, TOLERANCE, Case, Reference
from .timing import SPIN_MS, Timer, capture_graph, host_time_ms, sync

FATAL_MARKERS = ("illegal memory access", "device-side assert", "unspecified launch failure",
                 "illegal instruction", "misaligned address")


class FatalCudaError(RuntimeError):
    """The CUDA context is unusable; nothing more can run in this process."""


@dataclass
class RunOptions:
    timer: Timer
    deadline: float  # time.monotonic() after which only "ours" still runs
    only_impls: set[str] | None = None  # None: all
    skip_impls: set[str] = field(default_factory=set)
    log: Callable[[str], None] = print
    start: float = field(default_factory=time.monotonic)

    def say(self, text: str) -> None:
        self.log(f"[{time.monotonic() - self.start:6.1f}s] {text}")


def family_unavailable(family: str) -> str | None:
    """None if our kernel for the family can be imported, else why not."""
    try:
        import attention_kernel_triton as kernels
    except Exception as exc:  # a half-written package must not stop the run
        return f"kernels does not import ({type(exc).__name__}: {_line(exc)})"
    name = FUNCTION[family]
    if not hasattr(kernels, name):
        return f"kernels.{name} not available yet"
    return None


def _line(exc: BaseException, limit: int = 240) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def _check_fatal(exc: BaseException) -> None:
    text = str(exc).lower()
    if any(marker in text for marker in FATAL_MARKERS):
        raise FatalCudaError(_line(exc)) from exc


def _classify(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, peers.Refused):
        return "refused", _line(exc)
    if isinstance(exc, peers.Skipped):
        return "skipped", _line(exc)
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return "oom", "out of GPU memory"
    _check_fatal(exc)
    return "error", f"{type(exc).__name__}: {_line(exc)}"


def max_error(out: torch.Tensor, ref: Reference) -> tuple[float, bool]:
    """(max |subset - fp64 ref|, every element of the whole output finite)."""
    finite = bool(torch.isfinite(out).all())
    err = (ref.select(out).double() - ref.out).abs().max().item() if ref.out.numel() else 0.0
    return err, finite


def _free() -> None:
    gc.collect()
    torch.cuda.empty_cache()


def new_record(case: Case, dtype: torch.dtype, impl: str) -> dict:
    return {"kernel": case.family, "case": case.name, "dtype": DTYPE_NAMES[dtype], "impl": impl,
            "status": None, "ms": None, "eager_ms": None, "graph_ms": None, "host_ms": None,
            "timing": None, "ms_again": None,
            "tflops": None, "gbps": None, "pct_ceiling": None, "speedup": None,
            "max_err": None, "tolerance": TOLERANCE[dtype], "checked_against": None,
            "note": ""}


def _metrics(rec: dict, family: str, flops, nbytes, ceilings: dict) -> None:
    ms = rec["ms"]
    if family in COMPUTE_BOUND and flops:
        rec["tflops"] = flops / (ms * 1e-3) / 1e12
        ceiling = ceilings.get(f"matmul_tflops_{rec['dtype']}")
        if ceiling:
            rec["pct_ceiling"] = 100.0 * rec["tflops"] / ceiling
    if nbytes:
        rec["gbps"] = nbytes / (ms * 1e-3) / 1e9
        if family not in COMPUTE_BOUND and ceilings.get("copy_gbps"):
            rec["pct_ceiling"] = 100.0 * rec["gbps"] / ceilings["copy_gbps"]


def run_case(case: Case, dtype: torch.dtype, opts: RunOptions, ceilings: dict) -> list[dict]:
    label = f"{case.family} | {case.name} | {DTYPE_NAMES[dtype]}"
    try:
        problem = case.build(dtype)
        sync()
    except Exception as exc:
        status, note = _classify(exc)
        rec = new_record(case, dtype, "ours")
        rec.update(status=status, note=f"case setup failed: {note}")
        opts.say(f"{label}: setup {status}: {note}")
        _free()
        return [rec]

    shared_ref: Reference | None = None
    ref_note = ""
    try:
        shared_ref = problem.reference()
        sync()
    except Exception as exc:  # fall back to checking against ours
        _check_fatal(exc)
        ref_note = f"fp64 oracle failed ({type(exc).__name__}: {_line(exc, 120)})"
        opts.say(f"{label}: {ref_note}; peers are checked against ours")

    records = []
    for impl in problem.impls:
        if impl.name != "ours" and (
                impl.name in opts.skip_impls
                or (opts.only_impls is not None and impl.name not in opts.only_impls)):
            continue
        rec = new_record(case, dtype, impl.name)
        records.append(rec)
        if impl.name != "ours" and time.monotonic() > opts.deadline:
            rec.update(status="skipped", note="time budget spent (--budget-s)")
            opts.say(f"{label} | {impl.name:<18} {_summary(rec)}")
            continue
        ref = shared_ref
        if impl.reference is not None:
            try:
                ref = impl.reference()
            except Exception as exc:
                _check_fatal(exc)
                ref = None
        _run_impl(rec, case, impl, ref, ref_note, opts)
        if rec["status"] == "ok":
            _metrics(rec, case.family, impl.flops or problem.flops,
                     impl.bytes or problem.bytes, ceilings)
        if impl.name == "ours" and shared_ref is None and rec.get("_out") is not None:
            # no oracle: every peer is checked against our (unchecked) output instead
            out = rec["_out"]
            shared_ref = Reference(out.double(), lambda t: t, "ours (fp64 oracle unavailable)")
        rec.pop("_out", None)
        opts.say(f"{label} | {impl.name:<18} {_summary(rec)}")

    ours = next((r for r in records if r["impl"] == "ours" and r["status"] == "ok"), None)
    if ours is not None and len(records) > 1:
        _time_again(ours, next(i for i in problem.impls if i.name == "ours"), opts)
        again = "failed" if ours["ms_again"] is None else f"{ours['ms_again']:.4f} ms"
        opts.say(f"{label} | {'ours, again':<18} {again}")
    for rec in records:
        if ours is not None and rec["ms"] is not None:
            rec["speedup"] = rec["ms"] / ours["ms"]
    del problem, shared_ref
    _free()
    return records


def _run_impl(rec: dict, case: Case, impl, ref: Reference | None, ref_note: str,
              opts: RunOptions) -> None:
    graph = None
    try:
        fn = impl.make()
        rec["note"] = getattr(fn, "bench_note", "")  # e.g. a peer's own caveat
        out = fn()
        sync()
        if ref is None:
            rec["checked_against"] = ref_note or "nothing (no reference)"
            if not bool(torch.isfinite(out).all()):
                rec.update(status="wrong", note="non-finite values in the output; not timed")
                return
            if impl.name == "ours":
                rec["_out"] = out
        else:
            err, finite = max_error(out, ref)
            rec["max_err"], rec["checked_against"] = err, ref.what
            if not finite or not err <= rec["tolerance"]:
                why = "non-finite values in the output" if not finite else \
                    f"max_err {err:.3g} > tolerance {rec['tolerance']:g}"
                rec.update(status="wrong", note=f"{why}; not timed")
                return
        del out
        rec["eager_ms"] = opts.timer.eager(fn)
        rec["ms"], rec["timing"] = rec["eager_ms"], "eager"
        if rec["eager_ms"] < 5.0:  # a few calls of the slow peers would take seconds
            rec["host_ms"] = host_time_ms(fn, calls=20)
            if rec["host_ms"] > 0.8 * SPIN_MS:  # the host could fall behind the spin
                rec["note"] = "; ".join(x for x in (rec["note"], (
                    f"host {rec['host_ms']:.2f} ms per call, near the {SPIN_MS:.1f} ms GPU "
                    "spin: the GPU time may include idle time")) if x)
        if case.graph and impl.graph:
            try:
                graph, static_out = capture_graph(fn)
                graph.replay()
                sync()
                if ref is not None:
                    err, finite = max_error(static_out, ref)
                    if not finite or not err <= rec["tolerance"]:
                        raise RuntimeError(f"graph replay output off (max_err {err:.3g})")
                del static_out
                rec["graph_ms"] = opts.timer.graph(graph)
                rec["ms"], rec["timing"] = rec["graph_ms"], "graph"
            except Exception as exc:  # eager time stands
                _check_fatal(exc)
                failed = f"graph capture failed: {type(exc).__name__}: {_line(exc, 160)}"
                rec["note"] = "; ".join(x for x in (rec["note"], failed) if x)
        rec["status"] = "ok"
    except FatalCudaError:
        raise
    except Exception as exc:
        status, note = _classify(exc)
        rec.update(status=status, note=note)
    finally:
        del graph


def _time_again(rec: dict, impl, opts: RunOptions) -> None:
    """Time ours a second time, the same way (eager or graph), after every peer of the
    case: the two medians bracket the peers' timings, and their difference is this run's
    noise on the row (clocks drift under long compute-bound runs)."""
    graph = None
    try:
        fn = impl.make()
        if rec["timing"] == "graph":
            graph, _ = capture_graph(fn)
            rec["ms_again"] = opts.timer.graph(graph)
        else:
            rec["ms_again"] = opts.timer.eager(fn)
    except Exception as exc:  # the first time stands
        _check_fatal(exc)
        rec["note"] = "; ".join(x for x in (rec["note"], f"second timing failed: "
                                            f"{type(exc).__name__}: {_line(exc, 120)}") if x)
    finally:
        del graph


def _summary(rec: dict) -> str:
    if rec["status"] != "ok":
        return f"{rec['status']}: {rec['note']}"
    parts = [f"{rec['ms']:.4f} ms ({rec['timing']})"]
    if rec["graph_ms"] is not None:
        parts.append(f"eager {rec['eager_ms']:.4f} ms")
    if rec["tflops"] is not None:
        parts.append(f"{rec['tflops']:.0f} TF/s")
    if rec["gbps"] is not None:
        parts.append(f"{rec['gbps']:.0f} GB/s")
    if rec["max_err"] is not None:
        parts.append(f"err {rec['max_err']:.2e}")
    if rec["note"]:
        parts.append(rec["note"])
    return ", ".join(parts)
