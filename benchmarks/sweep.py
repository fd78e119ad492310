"""``python -m benchmarks.sweep``: time our kernels over a grid of launch configs.

    python -m benchmarks.sweep                     # prefill + decode grids (~3 min, H100)
    python -m benchmarks.sweep --quick             # a handful of configs per shape
    python -m benchmarks.sweep --kernel decode --splits auto,1,8,32
    python -m benchmarks.sweep --kernel prefill --tma on,off
    python -m benchmarks.sweep --kernel decode --kv e4m3   # fp8 K/V (q fp16)

Every config is pinned with ``tuning.override(prefill_config=Config(...))`` (or
decode_config) around the check call and the timing (and the graph capture for decode).
Shapes, fp16:
  prefill (causal): B8 Hq64 Hkv16 N1024 D64 (the seed's), B4 Hq32 Hkv8 N4096 D128,
    B1 Hq32 Hkv8 N16384 D128, padded var-len B8 Hq64 Hkv16 N1024 D64 at the seed's lengths
    (each config crossed with --tma paths)
  decode: B8 Hq64 Hkv16 N1024 D64, B32 Hq32 Hkv8 N4096 D128, B1 Hq32 Hkv8 N65536 D128
Prefill runs the Triton kernel throughout (the Gluon kernel that long causal D128 calls take
on Hopper has no configs to sweep). Each result is checked against the float64 oracle
first (wrong -> not timed). A config
that fails to compile (e.g. out of shared memory) is reported and skipped. The grid runs
the current default config first, then the others by how far they are from it (one
field changed, then two, ...); when a shape's share of --budget-s is spent, its remaining
configs are listed as not timed (a fresh machine compiles every config: ~1-2 s each).
Decode is timed as CUDA-graph replay. Writes <card>-<date>-sweep.{json,md} into --out as well.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

from . import cases
from .report import _table

PREFILL_SHAPES = [  # (label, batch, Hq, Hkv, N, D)
    ("B8 Hq64 Hkv16 N1024 D64", 8, 64, 16, 1024, 64),
    ("B4 Hq32 Hkv8 N4096 D128", 4, 32, 8, 4096, 128),
    ("B1 Hq32 Hkv8 N16384 D128", 1, 32, 8, 16384, 128),
    # padded var-len at the seed's lengths (cases.SEED_LENGTHS)
    ("padded B8 Hq64 Hkv16 N1024 D64 seed lengths", 8, 64, 16, 1024, 64),
]
DECODE_SHAPES = [
    ("B8 Hq64 Hkv16 N1024 D64", 8, 64, 16, 1024, 64),
    ("B32 Hq32 Hkv8 N4096 D128", 32, 32, 8, 4096, 128),
    ("B1 Hq32 Hkv8 N65536 D128", 1, 32, 8, 65536, 128),
    # sparse_decode at the seed's shape: 640 positions (2%) per KV head
    ("sparse B4 Hq32 Hkv8 N32000 D256 K640", 4, 32, 8, 32000, 256),
]
SPARSE_KEPT = 640


def prefill_grid(quick: bool) -> list[tuple]:
    """(block_m, block_n, num_warps, num_stages)."""
    if quick:
        return [(128, 64, 4, 3), (128, 64, 8, 3), (128, 128, 8, 2), (64, 64, 4, 3)]
    return list(itertools.product((64, 128), (32, 64, 128), (4, 8), (2, 3, 4)))


def decode_grid(quick: bool) -> list[tuple]:
    """(block_m, block_n, num_warps, num_stages); block_m is unused by decode."""
    if quick:
        return [(16, 32, 4, 2), (16, 64, 4, 3), (16, 128, 8, 2), (16, 64, 2, 2)]
    return [(16, *c) for c in itertools.product((16, 32, 64, 128), (2, 4, 8), (1, 2, 3, 4))]


def _default(kind: str, head_dim: int):
    from attention_kernel_triton.kernels import _config

    table = _config.PREFILL if kind == "prefill" else _config.DECODE
    pad = max(16, 1 << (head_dim - 1).bit_length())
    return table.get((pad, 2))


def _key(config) -> tuple | None:
    """(block_m, block_n, num_warps, num_stages[, maxnreg when set])."""
    if config is None:
        return None
    values = tuple(asdict(config).values())
    return values if values[-1] is not None else values[:-1]


def _ordered_grid(grid, default_key) -> list[tuple]:
    """The default first, then configs by how many fields differ from it (one-step
    neighbours before two-step ones), so a budget cut keeps the most telling runs."""
    if default_key is None:
        return list(grid)
    rest = [c for c in grid if c != default_key]
    rest.sort(key=lambda c: sum(a != b for a, b in zip(c, default_key, strict=False)))
    return [default_key, *rest]


def _parse_splits(text: str) -> list[int | None]:
    out: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        if part:
            out.append(None if part == "auto" else int(part))
    return out or [None]


def sweep_shape(kind: str, label: str, fn_for_split, reference, grid, splits, timer,
                work: float, deadline: float, log, default_key=None) -> list[dict]:
    """Time fn under every (config, split) of the grid. fn_for_split(split) -> callable.
    For prefill the "splits" are the load paths: "tma" (the default where the layout
    allows it) or "ptr" (pointer loads forced). work: FLOPs (prefill) or bytes (decode)."""
    from attention_kernel_triton.kernels import tuning
    from attention_kernel_triton.kernels._config import Config

    from .runner import FATAL_MARKERS, max_error
    from .timing import capture_graph, sync

    rows = []
    for cfg_tuple, split in itertools.product(grid, splits):
        cfg = Config(*cfg_tuple)
        row = {"kind": kind, "shape": label, "config": list(cfg_tuple), "num_splits": split,
               "default": cfg_tuple == default_key and split in (None, "tma"), "ms": None,
               "throughput": None, "max_err": None, "status": None, "note": ""}
        rows.append(row)
        if time.monotonic() > deadline:
            row.update(status="not timed", note="budget spent")
            continue
        fn = fn_for_split(split)
        graph = None
        try:
            # the configs are the Triton kernel's: keep long prefill off the Gluon kernel
            with tuning.override(**{f"{kind}_config": cfg}, tma=split != "ptr",
                                 prefill_gluon=False):
                out = fn()
                sync()
                err, finite = max_error(out, reference)
                row["max_err"] = err
                if not finite or err > cases.TOLERANCE[out.dtype]:
                    row.update(status="wrong", note=f"max_err {err:.3g}")
                    continue
                if kind == "decode":
                    graph, _ = capture_graph(fn)
                    row["ms"] = timer.graph(graph)
                else:
                    row["ms"] = timer.eager(fn)
            row["status"] = "ok"
            row["throughput"] = work / (row["ms"] * 1e-3) / (1e12 if kind == "prefill" else 1e9)
        except Exception as exc:  # a config that does not compile or launch is reported
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            if any(m in text.lower() for m in FATAL_MARKERS):
                raise
            row.update(status="failed", note=f"{type(exc).__name__}: {text[:160]}")
        finally:
            del graph
        tag = f"{cfg_tuple}" + ("" if split is None else f" {split}" if isinstance(split, str)
                                else f" splits={split}")
        result = f"{row['ms']:.4f} ms" if row["ms"] is not None else \
            f"{row['status']} {row['note']}"
        log(f"  {kind} {label} {tag}: {result}")
    return rows


def _config_label(row: dict) -> str:
    bm, bn, warps, stages, *cap = row["config"]
    text = (f"M{bm} " if row["kind"] == "prefill" else "") + f"N{bn} w{warps} s{stages}"
    if cap and cap[0] is not None:
        text += f" r{cap[0]}"
    if isinstance(row["num_splits"], str):  # prefill: the load path
        text += f" {row['num_splits']}"
    elif row["num_splits"] is not None:
        text += f" splits={row['num_splits']}"
    return text + (" *" if row["default"] else "")


def render(rows: list[dict]) -> str:
    out = []
    for kind in ("prefill", "decode"):
        krows = [r for r in rows if r["kind"] == kind]
        if not krows:
            continue
        shapes = list(dict.fromkeys(r["shape"] for r in krows))
        configs = list(dict.fromkeys(_config_label(r) for r in krows))
        cell = {(r["shape"], _config_label(r)): r for r in krows}
        body = []
        for c in configs:
            line = [c]
            for s in shapes:
                r = cell.get((s, c))
                line.append("" if r is None else
                            f"{r['ms']:.4f}" if r["ms"] is not None else r["status"])
            body.append(line)
        unit = "TFLOP/s" if kind == "prefill" else "GB/s"
        out += [f"## {kind} (ms; * = current default)", "",
                _table(["config", *shapes], body), "", "Best per shape:", ""]
        best_rows = []
        for s in shapes:
            ok = [r for r in krows if r["shape"] == s and r["ms"] is not None]
            dflt = next((r for r in ok if r["default"]), None)
            if not ok:
                best_rows.append([s, "—", "—", "—", "—"])
                continue
            best = min(ok, key=lambda r: r["ms"])
            gain = f"{dflt['ms'] / best['ms']:.2f}×" if dflt else "—"
            best_rows.append([s, _config_label(best), f"{best['ms']:.4f}",
                              f"{best['throughput']:,.0f} {unit}", gain])
        out += [_table(["shape", "best config", "ms", "throughput", "vs default"], best_rows),
                ""]
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.sweep",
                                description="Launch-config sweep of the prefill and decode "
                                            "kernels (fp16).")
    p.add_argument("--kernel", default="prefill,decode", help="prefill, decode or both")
    p.add_argument("--quick", action="store_true", help="four configs per shape")
    p.add_argument("--splits", default="auto",
                   help="decode split counts to cross with each config, e.g. auto,1,8,32")
    p.add_argument("--tma", default="on",
                   help="prefill load paths to cross with each config: on, off or on,off")
    p.add_argument("--configs", default=None,
                   help="explicit grid, 'BN,W,S;...' (decode) or "
                        "'BM,BN,W,S[,MAXNREG];...' (prefill)")
    p.add_argument("--kv", default="fp16", choices=("fp16", "e4m3", "e5m2"),
                   help="decode: the K/V cache's format (fp8 quantised per tensor, q fp16)")
    p.add_argument("--shapes", default=None,
                   help="comma-separated substrings: only shapes whose label contains one")
    p.add_argument("--budget-s", type=float, default=None,
                   help="time budget for the whole sweep (default 170, quick 40)")
    p.add_argument("--tag", default="", help="suffix for the result files (another sweep that day)")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = p.parse_args(argv)
    kinds = [k.strip() for k in args.kernel.split(",") if k.strip()]
    if not kinds or any(k not in ("prefill", "decode") for k in kinds):
        p.error("--kernel takes prefill, decode or prefill,decode")
    splits = _parse_splits(args.splits)
    budget = args.budget_s if args.budget_s is not None else (40 if args.quick else 170)

    from .timing import Timer, card_info, cuda_unavailable_reason

    reason = cuda_unavailable_reason()
    if reason:
        print(f"benchmarks.sweep: cannot run: {reason}", file=sys.stderr, flush=True)
        return 2

    import torch

    from .runner import family_unavailable

    def log(text: str) -> None:
        print(text, flush=True)

    timer = Timer(warmup_ms=5, rep_ms=15) if args.quick else Timer(warmup_ms=10, rep_ms=40)
    start = time.monotonic()
    card = card_info()
    jobs = []  # (kind, label, builder)
    for kind in kinds:
        why = family_unavailable(kind)
        if why:
            log(f"{kind}: skipped, {why}")
            continue
        shapes = PREFILL_SHAPES if kind == "prefill" else DECODE_SHAPES
        if args.shapes:
            wanted = [w.strip() for w in args.shapes.split(",")]
            shapes = [sh for sh in shapes if any(w in sh[0] for w in wanted)]
        jobs += [(kind, *shape) for shape in shapes]
    log(f"sweep on {card.name}: {len(jobs)} shapes, budget {budget:.0f} s")

    rows: list[dict] = []
    for i, (kind, label, batch, hq, hkv, n, d) in enumerate(jobs):
        now = time.monotonic()
        shape_deadline = now + (start + budget - now) / (len(jobs) - i)  # equal shares
        default_key = _key(_default(kind, d))
        if args.configs:
            explicit = [tuple(int(x) for x in c.split(",")) for c in args.configs.split(";")]
            grid = [c if kind == "prefill" else (16, *c) for c in explicit]
        else:
            grid = _ordered_grid(prefill_grid(args.quick) if kind == "prefill"
                                 else decode_grid(args.quick), default_key)
        per = len(splits) if kind == "decode" else len(args.tma.split(","))
        log(f"== {kind} {label}: {len(grid) * per} runs")
        try:
            if kind == "prefill":
                lengths = cases.SEED_LENGTHS if label.startswith("padded") else None
                problem = cases.prefill_case(batch, hq, hkv, n, d, lengths=lengths)(torch.float16)
                fn = problem.impls[0].make()
                paths = [{"on": "tma", "off": "ptr"}[t.strip()] for t in args.tma.split(",")]
                rows += sweep_shape(kind, label, lambda split, fn=fn: fn, problem.reference(),
                                    grid, paths, timer, problem.flops, shape_deadline, log,
                                    default_key)
            else:
                import attention_kernel_triton as kernels

                gen = torch.Generator(device=cases.DEVICE).manual_seed(0)
                q = torch.randn(batch, hq, 1, d, device=cases.DEVICE, dtype=torch.float16,
                                generator=gen)
                k = torch.randn(batch, hkv, n, d, device=cases.DEVICE, dtype=torch.float16,
                                generator=gen)
                v = torch.randn(batch, hkv, n, d, device=cases.DEVICE, dtype=torch.float16,
                                generator=gen)
                kv_dtype, sc = torch.float16, {}
                if args.kv != "fp16":  # the scales stay on the device; oracles dequantise
                    kv_dtype = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}[args.kv]
                    k, sc["k_scale"] = kernels.quantize_kv(k, dtype=kv_dtype)
                    v, sc["v_scale"] = kernels.quantize_kv(v, dtype=kv_dtype)

                if label.startswith("sparse"):
                    from attention_kernel_triton.oracles import reference as oracles

                    idx = torch.stack([torch.randperm(n, device=cases.DEVICE)[:SPARSE_KEPT]
                                       for _ in range(batch * hkv)]).view(batch, hkv, -1)
                    idx = idx.to(torch.int32)

                    def for_split(split, q=q, k=k, v=v, idx=idx, sc=sc):
                        return lambda: kernels.sparse_decode(q, k, v, idx, num_splits=split,
                                                             validate=False, **sc)

                    nbytes = cases.kv_bytes(batch * SPARSE_KEPT, hkv, d, kv_dtype)
                    reference = cases.Reference(
                        oracles.sparse_decode_ref(q, k, v, idx, **sc)[0], lambda out: out,
                        "fp64 oracle, all heads")
                else:
                    def for_split(split, q=q, k=k, v=v, sc=sc):
                        return lambda: kernels.decode(q, k, v, num_splits=split,
                                                      validate=False, **sc)

                    nbytes = cases.kv_bytes(batch * n, hkv, d, kv_dtype)
                    reference = cases._decode_reference(q, k, v, **sc)
                rows += sweep_shape(kind, label, for_split, reference,
                                    grid, splits, timer, nbytes, shape_deadline, log,
                                    default_key)
        except Exception as exc:
            log(f"  {kind} {label}: aborted: {type(exc).__name__}: {exc}")
            break
        finally:
            torch.cuda.empty_cache()

    text = render(rows)
    print("\n" + text, flush=True)
    stem = f"{card.slug}-{date.today().isoformat()}-sweep" + ("-quick" if args.quick else "") \
        + (f"-{args.kv}" if args.kv != "fp16" else "") + (f"-{args.tag}" if args.tag else "")
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"card": card.name, "date": date.today().isoformat(), "torch": torch.__version__,
            "elapsed_s": round(time.monotonic() - start, 1), "rows": rows}
    (args.out / f"{stem}.json").write_text(json.dumps(meta, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(f"# Config sweep: {card.name}, {meta['date']}\n\n"
                                         + text)
    log(f"wrote {args.out / stem}.{{json,md}} in {meta['elapsed_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
