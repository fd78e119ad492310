"""The regression corpus: failing cases as JSON, one file each, replayed every run.

When a property fails, `recording` remembers the case; Hypothesis replays the shrunk
(minimal) failing case last, so the last one remembered is the one to keep. After the
test, the `pytest_runtest_makereport` hook (imported by conftest.py) writes it to
tests/corpus/<kernel>-<property>-<hash>.json and adds the one-line replay command to
the report.

File format (version 1; stable, independent of Hypothesis's database):
  {"format": 1, "kernel": str, "property": str, "case": {"type": "PrefillCase" | ..., every
   field}, "requires_gpu": bool, "error": str (first lines), "test": str (node id),
   "versions": {"python", "torch", "triton", "hypothesis"}, "device": str, "created": date}
Replay: python -m pytest tests/test_corpus.py -k <file stem>
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


def needs_gpu(case) -> bool:
    return getattr(case, "dtype", "") == "bfloat16"  # tl.dot on bf16 is wrong in the interpreter


def entry(kernel: str, prop: str, case, device, error: str = "", test: str = "") -> dict:
    return {"format": FORMAT, "kernel": kernel, "property": prop, "case": case.to_dict(),
            "requires_gpu": needs_gpu(case) or str(device).startswith("cuda"),
            "error": error, "test": test, "versions": _versions(), "device": str(device),
            "created": datetime.date.today().isoformat()}


def file_name(e: dict) -> str:
    key = json.dumps([e["kernel"], e["property"], e["case"]], sort_keys=True)
    return f"{e['kernel']}-{e['property']}-{hashlib.sha1(key.encode()).hexdigest()[:10]}.json"


def write(e: dict, directory: Path = CORPUS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / file_name(e)
    path.write_text(json.dumps(e, indent=1, sort_keys=True) + "\n")
    return path


def replay_command(path: Path) -> str:
    return f"python -m pytest tests/test_corpus.py -k {path.stem}"


@contextlib.contextmanager
def recording(kernel: str, prop: str, case, device):
    try:
        yield
    except Exception as exc:
        node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
        if node and "test_corpus.py" not in node:  # replays are already in the corpus
            msg = "\n".join(f"{type(exc).__name__}: {exc}".splitlines()[:6])
            _pending[node] = entry(kernel, prop, case, device, msg, node)
        raise


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
                                f"replay: {replay_command(path)}"))
