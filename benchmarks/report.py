"""Reports: markdown tables (stdout and .md), the JSON file, one PNG plot per family.

Files, in the output folder, named after the card and the date:
  <card>-<YYYY-MM-DD>.json   {"card", "date", "torch", "triton", "ceilings", "records", ...}
  <card>-<YYYY-MM-DD>.md     the tables below
  <card>-<YYYY-MM-DD>-<family>.png
(--quick runs add "-quick" to the stem so they never overwrite a full run.)

Record fields: ms is the headline time (CUDA-graph replay for the decode families when
capture worked, else the eager median GPU time; ``timing`` says which), eager_ms and
graph_ms both; ms_again ours' second timing, taken the same way after every peer of
the case (None for peers); host_ms the host time per eager call (Python and launch); tflops or
gbps from ms; pct_ceiling against the same run's matmul (prefill) or copy (decode)
ceiling; speedup = this implementation's ms / ours' ms (how many times faster ours
is); max_err against the float64 oracle.

A family whose cases carry targets (benchmarks/cases.py, ``Case.targets``) gets a
second table after its summary: per case and dtype, ours' time over the named
implementation's, the limit, and whether both of ours' timings meet it.
"""

from __future__ import annotations

import json
from pathlib import Path

from .cases import COMPUTE_BOUND, FAMILIES


def _ms(x) -> str:
    return "—" if x is None else f"{x:.4g}"


def _num(x, digits: int = 0) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def _throughput(rec: dict) -> str:
    if rec["kernel"] in COMPUTE_BOUND:
        return _num(rec.get("tflops"))
    return _num(rec.get("gbps"))


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row(cells) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _table(header, rows) -> str:
    lines = [_row(header), "|" + "|".join("---" for _ in header) + "|"]
    lines += [_row(r) for r in rows]
    return "\n".join(lines)


def _case_key(rec: dict) -> tuple[str, str]:
    return rec["case"], rec["dtype"]


def _ordered(values):
    seen = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return seen


def summary_table(records: list[dict], family: str) -> str:
    """One row per case: each implementation's headline time, ours' speedup over the
    fastest peer that passed the check."""
    recs = [r for r in records if r["kernel"] == family]
    impls = _ordered(r["impl"] for r in recs)
    header = ["case", "dtype", *[f"{i} ms" for i in impls], "ours vs best peer"]
    rows = []
    for key in _ordered(_case_key(r) for r in recs):
        by_impl = {r["impl"]: r for r in recs if _case_key(r) == key}
        cells = []
        for name in impls:
            r = by_impl.get(name)
            if r is None:
                cells.append("")
            elif r["status"] == "ok":
                cells.append(_ms(r["ms"]) + (" (g)" if r["timing"] == "graph" else ""))
            else:
                cells.append(r["status"])
        ours = by_impl.get("ours")
        peers = [r for n, r in by_impl.items() if not n.startswith("ours") and r["ms"]]
        if ours and ours["ms"] and peers:
            best = min(peers, key=lambda r: r["ms"])
            cells.append(f"{best['ms'] / ours['ms']:.2f}× ({best['impl']})")
        else:
            cells.append("—")
        cells.append(_again(ours))
        rows.append([key[0], key[1], *cells])
    return _table([*header, "ours again ms"], rows)


def _again(ours: dict | None) -> str:
    """Ours' second timing (after the case's peers) and its change from the first."""
    if not ours or not ours.get("ms") or ours.get("ms_again") is None:
        return "—"
    return f"{_ms(ours['ms_again'])} ({100.0 * (ours['ms_again'] / ours['ms'] - 1):+.1f}%)"


def targets_table(records: list[dict], family: str, targets: dict | None = None) -> str:
    """One row per (case, dtype, target): ours' ms over the fastest passing one of the
    target's implementations, against its limit. `met`: yes when ours' first and second
    timings both meet it, no when neither does, borderline otherwise. Empty string when
    no case of the family that ran has a target."""
    if targets is None:
        from .cases import case_targets

        targets = case_targets()
    recs = [r for r in records if r["kernel"] == family]
    header = ["case", "dtype", "target", "ours ms", "against", "ours / it", "limit", "met"]
    rows = []
    for key in _ordered(_case_key(r) for r in recs):
        by_impl = {r["impl"]: r for r in recs if _case_key(r) == key}
        ours = by_impl.get("ours")
        for target in targets.get((family, key[0]), ()):
            cells = _target_cells(ours, [by_impl.get(n) for n in target.peers], target)
            rows.append([key[0], key[1], target.what, *cells])
    return _table(header, rows) if rows else ""


def _met(values, limit: float) -> str:
    """yes when every timing meets the limit, no when none does, borderline otherwise."""
    passed = [x <= limit for x in values if x is not None]
    return "yes" if all(passed) else "no" if not any(passed) else "borderline"


def _target_cells(ours: dict | None, candidates: list, target) -> list[str]:
    limit = f"≤ {target.limit:g}" + (" ms" if target.absolute else "")
    ok = [r for r in candidates if r is not None and r["status"] == "ok" and r["ms"]]
    if not ours or ours["status"] != "ok" or not ours["ms"]:
        return ["—" if not ours else ours["status"], "—", "—", limit, "—"]
    if target.absolute:  # ours' own time against a limit in ms
        shown = _ms(ours["ms"]) + ("" if not ours.get("ms_again")
                                   else f" (again {_ms(ours['ms_again'])})")
        return [_ms(ours["ms"]), "its own time", shown, limit,
                _met((ours["ms"], ours.get("ms_again")), target.limit)]
    if not ok:
        ran = [f"{r['impl']}: {r['status']}" for r in candidates if r is not None]
        return [_ms(ours["ms"]), "; ".join(ran) or "not run", "—", limit, "—"]
    best = min(ok, key=lambda r: r["ms"])
    ratio = ours["ms"] / best["ms"]
    again = ours["ms_again"] / best["ms"] if ours.get("ms_again") else None
    met = _met((ratio, again), target.limit)
    shown = f"{ratio:.3f}" + ("" if again is None else f" (again {again:.3f})")
    return [_ms(ours["ms"]), f"{best['impl']} {_ms(best['ms'])}", shown, limit, met]


def detail_table(records: list[dict], family: str) -> str:
    recs = [r for r in records if r["kernel"] == family]
    unit = "TFLOP/s" if family in COMPUTE_BOUND else "GB/s"
    # compute-bound families whose cases also give bytes (paged_prefill) show both
    both = family in COMPUTE_BOUND and any(r.get("gbps") is not None for r in recs)
    header = ["case", "dtype", "impl", "ms", "eager ms", "graph ms", "host ms", unit,
              *(["GB/s"] if both else []), "% ceiling", "ours ×", "max err", "note"]
    rows = []
    for r in recs:
        note = r["note"] if r["status"] == "ok" else f"{r['status']}: {r['note']}"
        rows.append([
            r["case"], r["dtype"], r["impl"], _ms(r["ms"]), _ms(r["eager_ms"]),
            _ms(r["graph_ms"]), _ms(r.get("host_ms")), _throughput(r),
            *([_num(r.get("gbps"))] if both else []), _num(r["pct_ceiling"], 1),
            "—" if r["speedup"] is None else f"{r['speedup']:.2f}",
            "—" if r["max_err"] is None else f"{r['max_err']:.1e}", note])
    return _table(header, rows)


def render_markdown(meta: dict, records: list[dict], *, details: bool = True) -> str:
    """The whole report; details=False leaves out the per-record tables (stdout)."""
    c = meta.get("ceilings", {})
    lines = [
        f"# Attention kernel benchmarks: {meta['card']}, {meta['date']}",
        "",
        f"torch {meta['torch']}, triton {meta['triton']}, CUDA {meta.get('cuda')}"
        + (" — **quick run**" if meta.get("quick") else ""),
        "",
        "Ceilings measured in this run: device copy "
        f"{_num(c.get('copy_gbps'))} GB/s (read + write), matmul 8192³ "
        f"fp16 {_num(c.get('matmul_tflops_fp16'))} TFLOP/s, "
        f"bf16 {_num(c.get('matmul_tflops_bf16'))} TFLOP/s.",
        "",
        "Times are median GPU times, L2 flushed before every call as `triton.testing."
        "do_bench` does, with a GPU spin queued before each call so that host launch work "
        "never shows as GPU idle time (benchmarks/timing.py); `host ms` is the host time "
        "per eager call. "
        "`(g)`: CUDA-graph replay, the headline for decode families. `ours ×` = that "
        "implementation's time / ours. `ours again`: ours timed a second time, the "
        "same way, after every peer of the case; its change from the first is this "
        "run's noise on that row. Every output was checked against the float64 "
        "oracle before timing; a wrong one is reported, not timed.",
    ]
    for family, reason in meta.get("unavailable", {}).items():
        lines += ["", f"- `{family}`: not run — {reason}"]
    for family in FAMILIES:
        if not any(r["kernel"] == family for r in records):
            continue
        lines += ["", f"## {family}", "", summary_table(records, family)]
        goals = targets_table(records, family)
        if goals:
            lines += ["", "Targets: ours' time over the fastest of the named implementations "
                      "that passed (`again`: ours' second timing over the same).", "", goals]
        if details:
            lines += ["", "<details><summary>all records</summary>", "",
                      detail_table(records, family), "", "</details>"]
    if meta.get("aborted"):
        lines += ["", f"**Run aborted:** {meta['aborted']}"]
    return "\n".join(lines) + "\n"


def write_results(out_dir: Path, stem: str, meta: dict, records: list[dict]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    payload = dict(meta)
    payload["records"] = records
    json_path.write_text(json.dumps(payload, indent=1, default=str) + "\n")
    md_path.write_text(render_markdown(meta, records))
    return [json_path, md_path]


def plot_family(out_dir: Path, stem: str, family: str, records: list[dict],
                ceilings: dict) -> Path | None:
    """Horizontal grouped bars: throughput of each implementation per case, with the
    measured ceiling as a dashed line. Returns None (and says why) without matplotlib."""
    recs = [r for r in records if r["kernel"] == family and r["status"] == "ok"]
    if not recs:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"  (no plot for {family}: matplotlib is not installed)", flush=True)
        return None
    compute = family in COMPUTE_BOUND
    metric, unit = ("tflops", "TFLOP/s") if compute else ("gbps", "GB/s")
    cases = _ordered(_case_key(r) for r in recs)
    impls = _ordered(r["impl"] for r in recs)
    height = 0.8 / len(impls)
    fig, ax = plt.subplots(figsize=(10, 1.0 + 0.28 * len(cases) * len(impls) + 0.4))
    for j, impl in enumerate(impls):
        ys, xs = [], []
        for i, key in enumerate(cases):
            r = next((r for r in recs if _case_key(r) == key and r["impl"] == impl), None)
            if r is not None and r[metric]:
                ys.append(i + (j - (len(impls) - 1) / 2) * height)
                xs.append(r[metric])
        ax.barh(ys, xs, height=height, label=impl)
    ceiling = ceilings.get("matmul_tflops_fp16" if compute else "copy_gbps")
    if ceiling:
        ax.axvline(ceiling, linestyle="--", color="gray",
                   label=f"{'fp16 matmul' if compute else 'device copy'} {ceiling:,.0f}")
    ax.set_yticks(range(len(cases)))
    ax.set_yticklabels([f"{name} [{dtype}]" for name, dtype in cases], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(unit + (" (graph replay where captured)" if not compute else ""))
    ax.set_title(f"{family} — {stem}")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out_dir / f"{stem}-{family}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
