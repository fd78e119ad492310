"""Compile every kernel variant a test run needs, in parallel, before the run.

    python -m tests.precompile [--workers N] [--jobs J] -- <pytest args, with --hypothesis-seed>

1. record: the same pytest run with KERNEL_RECORD_DIR set (tests/compile_record.py):
   every launch's specialization is written down, nothing is compiled or run, every
   property passes. The seed must be pinned (``--hypothesis-seed``) so that the real run
   draws the same examples;
2. compile: the distinct variants are compiled by J processes (``JITFunction.preload``)
   into Triton's cache, which the real run then reads instead of compiling.

A Hypothesis property compiles its examples' variants one after the other: at the dev
profile one property of paged_prefill spent 300 s of a 570 s call compiling on one
worker while other cores idled. Compiled here they spread over every core.

    python -m tests.precompile --count DIR

tabulates a recording (also one made under the interpreter with SUITE_SIZES=gpu, no
GPU needed): distinct variants per kernel, and how many would remain if one switch
(a constexpr, an argument's specialization, a launch option) did not exist.
"""

from __future__ import annotations

import argparse
import collections
import glob
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time


def _load(directory: str) -> list[dict]:
    rows = []
    for path in sorted(glob.glob(os.path.join(directory, "variants-*.jsonl"))):
        with open(path) as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def _flat(row: dict) -> tuple[str, dict]:
    """(kernel name, {switch: value}) of one recorded launch, either recording kind."""
    if "data" in row:  # a GPU recording: Triton's specialization data
        data = json.loads(row["data"])
        consts = dict(zip(map(str, data["constant_keys"]), map(str, data["constant_vals"]),
                          strict=True))
        attrs = dict(zip(map(str, data["attrs_keys"]), map(str, data["attrs_vals"]), strict=True))
        opts = {k: data["options"].get(k) for k in ("num_warps", "num_stages", "maxnreg")}
        switches = {**{f"c:{k}": v for k, v in consts.items()},
                    **{f"sig:{k}": v for k, v in data["signature"].items()},
                    **{f"attr:{k}": str(v) for k, v in attrs.items()},
                    **{f"opt:{k}": str(v) for k, v in opts.items()}}
        return row["name"], switches
    switches = {**{f"c:{k}": str(v) for k, v in row["constants"].items()},
                **{f"sig:{k}": v for k, v in row["signature"].items()},
                **{f"opt:{k}": str(v) for k, v in row["options"].items()}}
    return row["name"], switches


def count(directory: str, top: int = 12, without: tuple[str, ...] = ()) -> str:
    """The tally described in the module docstring, as text; `without`: switches
    (e.g. c:WRITE_LSE) taken out of every key first, to see what removing them buys."""
    per_kernel = collections.defaultdict(set)
    for row in _load(directory):
        name, sw = _flat(row)
        per_kernel[name].add(tuple(sorted((k, v) for k, v in sw.items() if k not in without)))
    lines = []
    total = sum(len(v) for v in per_kernel.values())
    lines.append(f"{total} distinct variants")
    for name, keys in sorted(per_kernel.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"\n{name}: {len(keys)}")
        dims = sorted({k for key in keys for k, _ in key})
        drops = []
        for dim in dims:
            left = {tuple(kv for kv in key if kv[0] != dim) for key in keys}
            values = {dict(key).get(dim) for key in keys}
            if len(left) < len(keys):
                drops.append((len(left), dim, len(values)))
        for left, dim, nvalues in sorted(drops)[:top]:
            lines.append(f"  without {dim:32s} ({nvalues} values): {left}")
    return "\n".join(lines)


def _compile_one(row: dict) -> tuple[str, float, str | None]:
    t0 = time.perf_counter()
    try:
        fn = getattr(importlib.import_module(row["module"]), row["name"].split(".")[-1])
        kernel = fn.preload(row["data"])
        if kernel is not None:
            kernel._init_handles()  # loads it and builds its launcher (a C module, cached too)
        return row["name"], time.perf_counter() - t0, None
    except Exception as exc:  # reported, never fatal: the real run compiles it again
        return row["name"], time.perf_counter() - t0, f"{type(exc).__name__}: {exc}"[:300]


def compile_all(directory: str, jobs: int, deadline: float = float("inf")) -> dict:
    """Compile each distinct recorded variant once, `jobs` processes at a time; past
    `deadline` (time.monotonic()) the rest is left to the run (it compiles them itself)."""
    import multiprocessing as mp

    seen, todo = set(), []
    for row in _load(directory):
        if "data" in row and row["data"] not in seen:
            seen.add(row["data"])
            todo.append(row)
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")  # CUDA in every child; never forked after init
    results = []
    with ctx.Pool(jobs) as pool:
        for res in pool.imap_unordered(_compile_one, todo, chunksize=1):
            results.append(res)
            if time.monotonic() > deadline:
                break  # leaving the block terminates the pool
    errors = [(n, e) for n, _, e in results if e]
    by_kernel = collections.Counter(n for n, _, _ in results)
    return {"variants": len(todo), "compiled": len(results), "wall_s": time.perf_counter() - t0,
            "cpu_s": sum(t for _, t, _ in results), "by_kernel": dict(by_kernel),
            "errors": errors[:10], "n_errors": len(errors)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", metavar="DIR", help="tabulate a recording and stop")
    ap.add_argument("--without", default="", help="with --count: switches to leave out, "
                    "comma-separated (c:NAME, sig:NAME, opt:NAME)")
    ap.add_argument("--workers", default="auto", help="pytest-xdist workers of the record pass")
    ap.add_argument("--jobs", type=int, default=os.cpu_count(), help="compile processes")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds for both passes; what is not compiled by then is left to "
                         "the run")
    ap.add_argument("--keep", metavar="DIR", help="record into DIR (default: a temp dir)")
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args(argv)
    if args.count:
        print(count(args.count, without=tuple(filter(None, args.without.split(",")))))
        return 0
    if not any(a.startswith("--hypothesis-seed") for a in args.pytest_args):
        ap.error("pin the seed (--hypothesis-seed=N) and give the real run the same one")
    directory = args.keep or tempfile.mkdtemp(prefix="kernel-variants-")
    t0 = time.perf_counter()
    deadline = time.monotonic() + (args.budget or float("inf"))
    env = {**os.environ, "KERNEL_RECORD_DIR": directory}
    try:
        rec = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", args.workers,
                              "-p", "no:cacheprovider", *args.pytest_args], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=args.budget)
        tail = (rec.stdout.strip().splitlines()[-1:] or ["(no output)"])[0]
        code = rec.returncode
    except subprocess.TimeoutExpired:  # compile what was recorded so far
        tail, code = "stopped at the budget", "-"
    record_s = time.perf_counter() - t0
    print(f"precompile: recorded in {record_s:.0f} s (pytest exit {code}: {tail})", flush=True)
    stats = compile_all(directory, args.jobs, deadline)
    print(f"precompile: {stats['compiled']} of {stats['variants']} variants compiled in "
          f"{stats['wall_s']:.0f} s by "
          f"{args.jobs} processes ({stats['cpu_s']:.0f} s of compile time); per kernel: "
          f"{stats['by_kernel']}; {stats['n_errors']} failed", flush=True)
    for name, err in stats["errors"]:
        print(f"  {name}: {err}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
