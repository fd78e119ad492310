"""The regression corpus: failing cases as JSON, one file each, replayed every run.

When a property fails, `recording` remembers the case; Hypothesis replays the shrunk
(minimal) failing case last, so the last one remembered is the one to keep. After the
test, the `pytest_runtest_makereport` hook (imported by conftest.py) writes it to
tests/corpus/<kernel>-<property>-<hash>.json and adds the one-line replay command to
the report.

File format (version 1; stable, independent of Hypothesis's database):
  {"format": 1, "kernel": str, "property": str, "case": {"type": "PrefillCase" | ..., every
   field, the groups (layout, variants, pages, indices, fp8) as nested objects or null;
   files written before the groups have every field at the top level, and
   strategies/cases.py case_from_dict reads both}, "requires_gpu": bool (informative:
   replay decides with gpu_only_reason), "error": str (first lines), "test": str (node
   id),
   "versions": {"python", "torch", "triton", "hypothesis"}, "device": str, "created": date,
   and "path": "gluon" where the failing test forced the Gluon Hopper prefill (replayed
   forced the same way, on a Hopper GPU only)}
Replay: python -m pytest tests/test_corpus.py -k <file stem>

Conformance mode (tests/conformance.py) keeps another implementation's failures apart,
in tests/corpus/conformance/<adapter name>/, with two more keys: "impl" (the adapter's
name) and "impl_spec" (what --attention-impl loads it by); tests/test_conformance.py
replays them when it runs against that adapter:
  python -m pytest tests/test_conformance.py --attention-impl=<impl_spec> -k <file stem>

A case that kills the process (a segfault in a peer's extension) reaches no hook: with
CONFORMANCE_INFLIGHT=dir set (tests/conformance_report.py sets it), every conformance
check first writes its entry to dir/<xdist worker>.json, so the case a dead worker was
running is on disk; the report keeps it in the corpus like a shrunk failure (unshrunk:
the first example that crashed).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import platform
from pathlib import Path

import pytest

CORPUS_DIR = Path(__file__).parent / "corpus"
FORMAT = 1
_pending: dict[str, dict] = {}  # node id -> entry of the latest failure


def _versions() -> dict:
    import hypothesis
    import torch
    import triton

    return {"python": platform.python_version(), "torch": torch.__version__,
            "triton": triton.__version__, "hypothesis": hypothesis.__version__}


# What the Triton interpreter replays in seconds: q.k multiply-adds (every query head,
# every query row, every key it attends, times D) and K/V elements allocated.
CPU_MAX_MACS = 2e7
CPU_MAX_KV_ELEMENTS = 4e6


def gpu_only_reason(case) -> str | None:
    """Why the CPU (Triton interpreter) cannot replay `case`, or None if it can. Decided
    from the case alone, wherever it was recorded: a failure first seen on a GPU replays
    on the CPU too when the interpreter can run it."""
    if getattr(case, "dtype", "") == "bfloat16":
        return "bf16: tl.dot on bf16 operands is wrong in the Triton interpreter"
    q_heads = case.batch * case.num_kv_heads * case.group_size
    if hasattr(case, "n_q"):  # prefill
        pairs, ctx = case.n_q * case.n_k, case.n_k
    else:  # decode family: one query row over its keys (or its selected positions)
        sparse = getattr(case, "indices", None)
        pairs, ctx = (sparse.num_indices if sparse else case.n_ctx), case.n_ctx
    macs = q_heads * pairs * case.head_dim
    kv = case.batch * case.num_kv_heads * ctx * case.head_dim
    if macs > CPU_MAX_MACS or kv > CPU_MAX_KV_ELEMENTS:
        return (f"GPU-sized for the interpreter: {macs:.3g} multiply-adds (limit "
                f"{CPU_MAX_MACS:.3g}), {kv:.3g} K/V elements (limit {CPU_MAX_KV_ELEMENTS:.3g})")
    return None


def entry(kernel: str, prop: str, case, device, error: str = "", test: str = "",
          impl: tuple[str, str] | None = None, path: str | None = None) -> dict:
    """impl: (adapter name, its --attention-impl spec) in conformance mode; path: a forced
    kernel path (properties.check)."""
    e = {"format": FORMAT, "kernel": kernel, "property": prop, "case": case.to_dict(),
         "requires_gpu": gpu_only_reason(case) is not None,
         "error": error, "test": test, "versions": _versions(), "device": str(device),
         "created": datetime.date.today().isoformat()}
    if impl is not None:
        e["impl"], e["impl_spec"] = impl
    if path is not None:
        e["path"] = path
    return e


def conformance_dir(impl: str) -> Path:
    """Where an adapter's shrunk failures are kept (one folder per adapter name)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in impl)
    return CORPUS_DIR / "conformance" / safe


def file_name(e: dict) -> str:
    key = json.dumps([e["kernel"], e["property"], e["case"]], sort_keys=True)
    return f"{e['kernel']}-{e['property']}-{hashlib.sha1(key.encode()).hexdigest()[:10]}.json"


def write(e: dict, directory: Path | None = None) -> Path:
    if directory is None:
        directory = conformance_dir(e["impl"]) if "impl" in e else CORPUS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(e)
    path.write_text(json.dumps(e, indent=1, sort_keys=True) + "\n")
    return path


def replay_command(path: Path, e: dict | None = None) -> str:
    if e is not None and "impl" in e:
        return (f"python -m pytest tests/test_conformance.py --attention-impl="
                f"{e['impl_spec']} -k {path.stem}")
    return f"python -m pytest tests/test_corpus.py -k {path.stem}"


@contextlib.contextmanager
def recording(kernel: str, prop: str, case, device, impl: tuple[str, str] | None = None,
              path: str | None = None):
    node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    inflight = os.environ.get("CONFORMANCE_INFLIGHT")
    if inflight and impl is not None:
        write_inflight(Path(inflight), entry(kernel, prop, case, device, "", node, impl, path))
    try:
        yield
    except Exception as exc:
        replay = "test_corpus.py" in node or "test_conformance.py::test_replay" in node
        if node and not replay:  # replays are already in the corpus
            msg = "\n".join(f"{type(exc).__name__}: {exc}".splitlines()[:6])
            _pending[node] = entry(kernel, prop, case, device, msg, node, impl, path)
        raise


def inflight_path(directory: Path, worker: str) -> Path:
    return directory / f"{worker}.json"


def write_inflight(directory: Path, e: dict) -> None:
    """The entry of the check about to run, replacing the worker's previous one (written
    whole, then renamed: a crash mid-write leaves the previous file)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = inflight_path(directory, os.environ.get("PYTEST_XDIST_WORKER", "main"))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(e, sort_keys=True))
    os.replace(tmp, path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call":
        return
    e = _pending.pop(item.nodeid, None)
    if e is not None and report.failed:
        path = write(e)
        report.sections.append(("regression corpus", f"shrunk case written to {path}\n"
                                f"replay: {replay_command(path, e)}"))
        # for JUnit XML (tests/conformance_report.py reads them): pytest's JUnit writer
        # takes the teardown report's properties, which come from the item's list (the
        # call report only holds a copy: properties added there never reached the XML)
        item.user_properties += [("corpus", str(path)), ("replay", replay_command(path, e))]
