"""``python -m benchmarks``: every kernel against its peers, in one process and run.

    python -m benchmarks                         # everything (~5 min on an H100)
    python -m benchmarks --quick                 # seed shapes only, short timings
    python -m benchmarks --kernel decode,paged_decode --out /tmp/bench
    python -m benchmarks --family paged_prefill   # --family is the same as --kernel
    python -m benchmarks --kv fp8                # only the fp8-KV-cache cases
    python -m benchmarks --variants only         # only the window/softcap/sinks/ALiBi cases
    python -m benchmarks --list                  # the cases; needs no GPU

Order: the card's ceilings (copy, fp16/bf16 matmul), then each family's cases. Each
implementation is checked against the float64 oracle, then timed. After each family the
JSON and markdown files are rewritten, so a killed run keeps what it finished.
Exit status: 0 when the run completed, 1 when it aborted, 2 when it could not start
(no GPU, bad arguments).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from .cases import DTYPES, FAMILIES, KV_CHOICES, VARIANT_CHOICES, select_cases

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def _csv(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time the attention kernels against torch SDPA (flash, cuDNN), "
                    "FlexAttention and naive references, with float64 checks.")
    p.add_argument("--kernel", "--family", dest="kernel", default="all",
                   help=f"comma-separated families, or 'all' (default): {','.join(FAMILIES)}")
    p.add_argument("--quick", action="store_true",
                   help="seed shapes only, fp16, short do_bench; skips FlexAttention "
                        "(compile time) unless --impl names it")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="output folder (default: benchmarks/results)")
    p.add_argument("--dtype", default=None,
                   help="comma-separated dtypes (fp16,bf16,fp32) to run every case in; "
                        "default: each case's own (fp16; fp16+bf16 for the long prefills "
                        "and paged_prefill)")
    p.add_argument("--kv", default="all", choices=KV_CHOICES,
                   help="all cases (default), only the fp8-KV-cache ones, or only the others")
    p.add_argument("--variants", default="all", choices=VARIANT_CHOICES,
                   help="all cases (default), only the attention variants' ones (window, "
                        "softcap, sinks, ALiBi), or none of them")
    p.add_argument("--impl", default=None,
                   help="comma-separated implementations to run besides ours "
                        "(e.g. sdpa-cudnn,flex); default: all")
    p.add_argument("--skip-impl", default=None,
                   help="comma-separated implementations not to run (e.g. flex,naive)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="after this many seconds only ours is still timed "
                        "(default 300, quick 45)")
    p.add_argument("--warmup-ms", type=int, default=None, help="do_bench warm-up (25; quick 5)")
    p.add_argument("--rep-ms", type=int, default=None, help="do_bench repetitions (100; quick 20)")
    p.add_argument("--tag", default="", help="suffix for the result files (another run that day)")
    p.add_argument("--no-plot", action="store_true", help="write no PNG plots")
    p.add_argument("--list", action="store_true", help="print the cases and exit (no GPU)")
    args = p.parse_args(argv)

    families = FAMILIES if args.kernel == "all" else tuple(_csv(args.kernel) or ())
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        p.error(f"--kernel: unknown {unknown or args.kernel!r}; choose from {', '.join(FAMILIES)}")
    args.families = families
    dtypes = _csv(args.dtype)
    bad = [d for d in dtypes or () if d not in DTYPES]
    if bad:
        p.error(f"--dtype: unknown {bad}; choose from {', '.join(DTYPES)}")
    args.dtypes = tuple(DTYPES[d] for d in dtypes) if dtypes else None
    args.only_impls = set(_csv(args.impl)) if args.impl else None
    args.skip_impls = set(_csv(args.skip_impl) or ())
    if args.quick and args.only_impls is None and args.skip_impl is None:
        args.skip_impls = {"flex"}
    args.budget_s = args.budget_s if args.budget_s is not None else (45 if args.quick else 300)
    args.warmup_ms = args.warmup_ms if args.warmup_ms is not None else (5 if args.quick else 25)
    args.rep_ms = args.rep_ms if args.rep_ms is not None else (20 if args.quick else 100)
    return args


def say(text: str) -> None:
    print(text, flush=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    chosen = select_cases(args.families, quick=args.quick, dtypes=args.dtypes, kv=args.kv,
                          variants=args.variants)
    if args.list:
        for case, dtype in chosen:
            say(f"{case.family:<20} {str(dtype).replace('torch.', ''):<9} {case.name}")
        return 0

    from .timing import cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason:
        print(f"benchmarks: cannot run: {reason}", file=sys.stderr, flush=True)
        return 2

    import torch
    import triton

    from . import report
    from .runner import FatalCudaError, RunOptions, family_unavailable, run_case
    from .timing import Timer, card_info, measure_ceilings

    start = time.monotonic()
    timer = Timer(warmup_ms=args.warmup_ms, rep_ms=args.rep_ms)
    card = card_info()
    stem = f"{card.slug}-{date.today().isoformat()}" + ("-quick" if args.quick else "") + (
        f"-{args.tag}" if args.tag else "")
    meta = {"card": card.name, "date": date.today().isoformat(), "torch": torch.__version__,
            "triton": triton.__version__, "cuda": torch.version.cuda,
            "device": card.as_dict(), "quick": args.quick,
            "argv": sys.argv[1:] if argv is None else list(argv),
            "timer": {"warmup_ms": timer.warmup_ms, "rep_ms": timer.rep_ms,
                      "return_mode": "median"},
            "ceilings": {}, "unavailable": {}, "elapsed_s": None}
    records: list[dict] = []
    say(f"benchmarks on {card.name} ({card.sm_count} SMs, L2 {card.l2_mb:.0f} MB), torch "
        f"{torch.__version__}, triton {triton.__version__}; {len(chosen)} cases; "
        f"results -> {args.out}/{stem}.*")

    say("ceilings ...")
    meta["ceilings"] = measure_ceilings(timer, log=say)
    say("  " + ", ".join(f"{k} {v:,.0f}" if v else f"{k} n/a"
                         for k, v in meta["ceilings"].items()))

    opts = RunOptions(timer=timer, deadline=start + args.budget_s,
                      only_impls=args.only_impls, skip_impls=args.skip_impls, log=say,
                      start=start)
    status = 0
    for family in args.families:
        fam_cases = [(c, d) for c, d in chosen if c.family == family]
        if not fam_cases:
            continue
        why = family_unavailable(family)
        if why:
            meta["unavailable"][family] = why
            say(f"{family}: skipped, {why}")
            continue
        say(f"== {family} ({len(fam_cases)} cases)")
        try:
            for case, dtype in fam_cases:
                records += run_case(case, dtype, opts, meta["ceilings"])
        except FatalCudaError as exc:
            meta["aborted"] = f"CUDA context lost during {family}: {exc}"
            say(f"ABORT: {meta['aborted']}")
            status = 1
        meta["elapsed_s"] = round(time.monotonic() - start, 1)
        report.write_results(args.out, stem, meta, records)
        if not args.no_plot and not status:
            report.plot_family(args.out, stem, family, records, meta["ceilings"])
        if status:
            break

    meta["elapsed_s"] = round(time.monotonic() - start, 1)
    paths = report.write_results(args.out, stem, meta, records)
    say("")
    say(report.render_markdown(meta, records, details=False))  # all records: in the .md
    say(f"wrote {', '.join(str(p) for p in paths)}{'' if args.no_plot else ' (+ plots)'} "
        f"in {meta['elapsed_s']} s")
    return status


if __name__ == "__main__":
    sys.exit(main())
