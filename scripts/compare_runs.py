"""Compare ours between two benchmark runs of the same card (e.g. before and after a
host-side change, run back to back in one device call: scripts/gpu_run.sh refbench,bench).

    python scripts/compare_runs.py BEFORE.json AFTER.json [--out TABLE.md]

One row per case of `ours`: GPU ms before and after (graph replay for decode families),
the ratio, each run's own noise on the row (ours timed again after the peers), and the
host ms per eager call before and after. A row is flagged when the change is larger
than the larger of the two runs' noise on it plus 1%.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _ours(path: Path) -> dict:
    data = json.loads(path.read_text())
    rows = {(r["kernel"], r["case"], r["dtype"]): r for r in data["records"]
            if r["impl"] == "ours" and r["status"] == "ok"}
    return data, rows


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    meta_b, before = _ours(args.before)
    meta_a, after = _ours(args.after)
    lines = [f"Ours before ({args.before.name}) and after ({args.after.name}): "
             f"{meta_a['card']}, {meta_a['date']}, torch {meta_a['torch']}, triton "
             f"{meta_a['triton']}.", "",
             "| kernel | case | dtype | before ms | after ms | after / before | noise before "
             "| noise after | host ms before | host ms after | flag |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    flagged = 0
    for key in before:
        if key not in after:
            continue
        b, a = before[key], after[key]
        noise = [abs(r["ms_again"] / r["ms"] - 1) if r.get("ms_again") else 0.0 for r in (b, a)]
        ratio = a["ms"] / b["ms"]
        flag = abs(ratio - 1) > max(noise) + 0.01
        flagged += flag
        lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {b['ms']:.4f} | {a['ms']:.4f} | "
                     f"{ratio:.3f} | {noise[0]:.1%} | {noise[1]:.1%} | {b['host_ms']:.3f} | "
                     f"{a['host_ms']:.3f} | {'**yes**' if flag else ''} |")
    lines += ["", f"{flagged} of {len(lines) - 4} rows changed by more than their noise + 1%."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
