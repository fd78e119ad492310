"""What a GPU test run did, test by test, from its JUnit XML (scripts/gpu_run.sh tests
writes one to a temporary file and prints this report into $OUT/tests.log): outcomes,
the time per test file, the slowest tests, and, given the run's collected ids, the tests
it never finished. A run stopped at its time limit
prints only dots and a summary line; this says which tests are still owed.

    python scripts/junit_report.py junit.xml [--collected ids.txt] [--slowest 25]
        [--owed owed.txt]

ids.txt: the output of `pytest --collect-only -q` (one test id per line; other lines are
ignored). --owed writes the ids never finished, one per line (with --collected; an empty
file when none), for the next call: `TESTS_FROM=owed.txt bash scripts/gpu_run.sh tests`.
The XML must be written with `-o junit_family=xunit1` (a file attribute per
test case).
"""

from __future__ import annotations

import argparse
import collections
import xml.etree.ElementTree as ET
from pathlib import Path


def outcomes(junit: Path) -> dict[str, tuple[str, float]]:
    """test id -> (passed | failed | error | skipped, seconds)."""
    result = {}
    for tc in ET.parse(junit).getroot().iter("testcase"):
        if tc.get("name") is None:  # pytest's entry for an interrupted run, not a test
            continue
        file = tc.get("file") or tc.get("classname", "").replace(".", "/") + ".py"
        kinds = [c.tag for c in tc if c.tag in ("failure", "error", "skipped")]
        kind = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(
            kinds[0] if kinds else "", "passed")
        result[f"{file}::{tc.get('name')}"] = (kind, float(tc.get("time") or 0.0))
    return result


def collected(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if "::" in line]


def owed(done: dict[str, tuple[str, float]], ids: list[str]) -> list[str]:
    """The collected ids the run never reported, in collection order."""
    return [t for t in ids if t not in done]


def report(done: dict[str, tuple[str, float]], ids: list[str] | None, slowest: int) -> str:
    lines = []
    counts = collections.Counter(kind for kind, _ in done.values())
    lines.append("outcomes: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    per_file = collections.defaultdict(float)
    for test, (_, sec) in done.items():
        per_file[test.split("::")[0]] += sec
    lines.append("seconds per file (summed over workers):")
    lines += [f"  {sec:8.1f}  {f}" for f, sec in sorted(per_file.items(), key=lambda x: -x[1])]
    lines.append(f"slowest {slowest}:")
    top = sorted(done.items(), key=lambda x: -x[1][1])[:slowest]
    lines += [f"  {sec:8.1f}  {kind:7}  {test}" for test, (kind, sec) in top]
    bad = sorted(t for t, (kind, _) in done.items() if kind in ("failed", "error"))
    if bad:
        lines.append("failed or errored:")
        lines += [f"  {t}" for t in bad]
    if ids is not None:
        missing = owed(done, ids)
        lines.append(f"collected {len(ids)}, reported {len(done)}, not finished {len(missing)}:")
        lines += [f"  {t}" for t in missing]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("junit", type=Path)
    ap.add_argument("--collected", type=Path)
    ap.add_argument("--slowest", type=int, default=25)
    ap.add_argument("--owed", type=Path, help="write the unfinished ids here (needs --collected)")
    args = ap.parse_args(argv)
    if args.owed and not args.collected:
        ap.error("--owed needs --collected (the ids the run should have finished)")
    ids = collected(args.collected) if args.collected else None
    done = outcomes(args.junit)
    print(report(done, ids, args.slowest))
    if args.owed:
        args.owed.write_text("".join(f"{t}\n" for t in owed(done, ids)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
