"""The conformance report: every adapter run through tests/test_conformance.py on this
machine, tabulated property x implementation.

    python -m tests.conformance_report [--impl NAME_OR_SPEC ...] [--out DIR] [-- PYTEST_ARGS]

Default: every shipped adapter (attention_kernel_triton.adapters.SHIPPED). Each adapter
runs in its own pytest process (an adapter's failure or crash cannot hide another's)
writing JUnit XML; the report is DIR/conformance.json and DIR/conformance.md (default
DIR: benchmarks/results/). A cell is "pass" (with the examples run), "FAIL" (the first
lines of the failure, the shrunk corpus file and its replay command), "known failure"
(tests/conformance.py KNOWN_FAILURES, failing as expected), or "unsupported" (the
adapter's declared reason). A case that killed its pytest worker (a segfault in a peer's
extension) is kept in the corpus too, from the worker's in-flight record
(tests/corpus_io.py CONFORMANCE_INFLIGHT), and its cell names it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_ID = re.compile(r"test_(?P<kind>conformance|replay)\[(?P<id>.+)\]$")


def _cells(junit: Path, impl: str) -> dict[str, dict]:
    """'op/property' -> cell, from one adapter's JUnit XML."""
    cells = {}
    for tc in ET.parse(junit).getroot().iter("testcase"):
        m = _ID.search(tc.get("name", ""))
        if not m or not m.group("id").startswith(impl + "-"):
            continue
        op, _, prop = m.group("id")[len(impl) + 1:].partition("-")
        if m.group("kind") == "replay":  # a kept corpus file: its own row
            op, prop = "corpus replay", m.group("id")[len(impl) + 1:]
        props = {p.get("name"): p.get("value") for p in tc.iter("property")}
        cell = {"status": "pass", "examples": int(props.get("examples", 0) or 0),
                "seconds": round(float(tc.get("time", 0)), 2)}
        for kind in ("failure", "error"):
            node = tc.find(kind)
            if node is not None:
                text = node.text or ""
                head = (node.get("message") or "").strip()
                shrunk = [props["corpus"]] if "corpus" in props else []
                replay = [props["replay"]] if "replay" in props else []
                lines = [ln.strip() for ln in text.splitlines()
                         if ln.strip().startswith("E ") and ln.strip() != "E"]
                first = next((ln[1:].strip() for ln in lines if "Error" in ln), "")
                cell = {"status": "FAIL", "message": (first or head)[:400],
                        "corpus": shrunk[-1] if shrunk else None,
                        "replay": replay[-1] if replay else None,
                        "examples": cell["examples"]}
        node = tc.find("skipped")
        if node is not None:
            msg = node.get("message", "")
            if node.get("type") == "pytest.xfail" or msg.startswith("known:"):
                cell = {"status": "known failure", "message": msg.removeprefix("known: ")}
            else:
                cell = {"status": "unsupported", "message": msg.removeprefix("Skipped: ")}
        cells[f"{op}/{prop}"] = cell
    return cells


_CRASH = re.compile(r"worker '(?P<worker>[^']+)' crashed while running '(?P<test>[^']+)'")


def _keep_crashes(cells: dict[str, dict], inflight: Path, died: bool) -> list[str]:
    """A crashed cell's case (the dead worker's in-flight record) goes to the corpus and
    into the cell; died: pytest itself died (no xdist), its one record is returned as
    corpus paths for the report's crash line."""
    from tests import corpus_io

    def keep(worker: str, test: str | None, why: str) -> Path | None:
        path = corpus_io.inflight_path(inflight, worker)
        if not path.exists():
            return None
        e = json.loads(path.read_text())
        if test is not None and e.get("test") != test:
            return None
        e["error"] = f"the process died on this case ({why}; not shrunk: the first " \
                     "example that crashed)"
        return corpus_io.write(e)

    for cell in cells.values():
        m = _CRASH.search(cell.get("message", "")) if cell["status"] == "FAIL" else None
        kept = m and keep(m.group("worker"), m.group("test"), f"worker {m.group('worker')} "
                          "crashed")
        if kept:
            cell["corpus"] = _rel(kept)
            cell["replay"] = corpus_io.replay_command(kept, json.loads(kept.read_text()))
            cell["message"] = "the worker process died (crashed) on the kept case"
    kept = died and keep("main", None, "pytest died")
    return [_rel(kept)] if kept else []


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _versions() -> dict:
    import hypothesis
    import torch
    import triton

    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {"device": dev, "python": platform.python_version(), "torch": torch.__version__,
            "triton": triton.__version__, "hypothesis": hypothesis.__version__,
            "date": datetime.date.today().isoformat()}


def markdown(report: dict) -> str:
    impls = report["impls"]
    v = report["versions"]
    lines = [f"# Conformance report: {v['device']}, {v['date']}", "",
             f"torch {v['torch']}, triton {v['triton']}, hypothesis {v['hypothesis']}, "
             f"python {v['python']}; profile `{report['profile']}`. Each cell: the property "
             "on that implementation's operation (examples drawn); notes below.", "",
             "| operation / property | " + " | ".join(impls) + " |",
             "|---|" + "---|" * len(impls)]
    notes = []
    rows = sorted({k for cells in report["cells"].values() for k in cells})
    for row in rows:
        out = []
        for impl in impls:
            cell = report["cells"][impl].get(row)
            if cell is None:
                out.append("")
            elif cell["status"] == "pass":
                out.append(f"pass ({cell['examples']})")
            elif cell["status"] == "unsupported":
                out.append("-")
            else:
                if cell["status"] == "known failure" and not cell.get("corpus"):
                    from tests.corpus_io import conformance_dir

                    op, prop = row.split("/")
                    kept = sorted(conformance_dir(impl).glob(f"{op}-{prop}-*.json"))
                    cell["corpus"] = ", ".join(str(p.relative_to(ROOT)) for p in kept)
                notes.append(f"{len(notes) + 1}. **{impl} {row}** ({cell['status']}): "
                             f"{cell.get('message', '')}"
                             + (f" Shrunk case: `{cell['corpus']}`." if cell.get("corpus") else "")
                             + (f" Replay: `{cell['replay']}`." if cell.get("replay") else ""))
                out.append(f"**{cell['status']}** [{len(notes)}]")
        lines.append(f"| {row} | " + " | ".join(out) + " |")
    if notes:
        lines += ["", "## Failures", ""] + notes
    skipped = sorted({(impl, c["message"]) for impl in impls
                      for c in report["cells"][impl].values() if c["status"] == "unsupported"})
    if skipped:
        lines += ["", "## Unsupported (-): each adapter's declared reason", ""]
        lines += [f"- {msg}" for _, msg in skipped]
    if report.get("crashed"):
        lines += ["", "**Crashed** (pytest died, or wrote no JUnit XML; cells missing): "
                  + ", ".join(report["crashed"])]
    if report.get("interrupted"):
        lines += ["", "Cut short by --budget (their other properties did not run): "
                  + ", ".join(report["interrupted"])]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", action="append", default=[])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--name", default="conformance")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds for all adapters: each gets an equal share of what is "
                             "left when it starts, then pytest is interrupted (SIGINT) and "
                             "what finished is reported")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    from attention_kernel_triton.adapters import SHIPPED
    from tests.conformance import adapter

    specs = args.impl or [s for s in SHIPPED if s != "triton"] + ["triton"]  # peers first
    deadline = None if args.budget is None else time.monotonic() + args.budget
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    profile = os.environ.get("HYPOTHESIS_PROFILE") or (
        "ci" if os.environ.get("CI") == "true" or _versions()["device"] == "cpu"
        else "dev")  # conftest.py's default
    if os.environ.get("HYPOTHESIS_MAX_EXAMPLES"):
        profile += f", capped at {os.environ['HYPOTHESIS_MAX_EXAMPLES']} examples"
    report = {"impls": [], "cells": {}, "versions": _versions(), "profile": profile}
    for i, spec in enumerate(specs):
        name = adapter(spec).name
        share = None if deadline is None else \
            max(10.0, (deadline - time.monotonic()) / (len(specs) - i))
        junit = out / f"{args.name}-{name}.junit.xml"
        cmd = [sys.executable, "-m", "pytest", "tests/test_conformance.py::test_conformance",
               "tests/test_conformance.py::test_replay",
               f"--attention-impl={spec}", "-q", "-rN", f"--junitxml={junit}",
               "-o", "junit_logging=all", "-o", "junit_family=legacy", *extra]
        print("+", " ".join(cmd), flush=True)
        inflight = Path(tempfile.mkdtemp(prefix="conformance-inflight-"))
        proc = subprocess.Popen(cmd, cwd=ROOT,
                                env={**os.environ, "CONFORMANCE_INFLIGHT": str(inflight)})
        try:
            proc.wait(timeout=share)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # pytest still writes its JUnit XML
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            report.setdefault("interrupted", []).append(name)
        report["impls"].append(name)
        report["cells"][name] = _cells(junit, name) if junit.exists() else {}
        # pytest: 0 all passed, 1 some failed, 2 interrupted (the budget), 5 none collected
        died = proc.returncode not in (0, 1, 2) or not junit.exists()
        kept = _keep_crashes(report["cells"][name], inflight, died)
        if died:
            report.setdefault("crashed", []).append(
                f"{name} (exit {proc.returncode}" + "".join(f"; case in flight kept: `{k}`"
                                                            for k in kept) + ")")
        junit.unlink(missing_ok=True)
        # written after each adapter: a run cut short keeps what finished
        (out / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
        (out / f"{args.name}.md").write_text(markdown(report))
    print(markdown(report))
    failed = any(c["status"] == "FAIL" for cells in report["cells"].values()
                 for c in cells.values())
    return 1 if failed or report.get("crashed") else 0


if __name__ == "__main__":
    sys.exit(main())
