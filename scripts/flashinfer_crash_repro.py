"""Which FlashInfer calls crash: the shipped adapter (attention_kernel_triton.adapters
.flashinfer) on small paged cases, each cell in its own process, so that a segfault in
one (session 22: 18 of 21 conformance cells lost their xdist worker to a segfault in
FlashInfer 0.2.5's host code, decode.py plan or prefill.py paged_run; trigger unknown)
is a table entry, not a lost run. A cell: an operation, a variant (none, a window, a
soft-cap), a GQA group, a head dim, the number of calls in the process (two: the same
call again, then on the first sequence alone, as batch_equals_one_by_one does) and a
shape (SHAPES: page size, key lengths, prefill query lengths; with empty sequences).
Session 24 (H100): decode with group 5 crashed (FlashInfer's decode takes groups 1, 2,
3, 4, 8), every other base-shape cell ran; the shapes past "base" are for the prefill
crash (session 22's paged_run) that those cells did not explain.

    python scripts/flashinfer_crash_repro.py            # the table (needs CUDA + flashinfer)
    python scripts/flashinfer_crash_repro.py one OP VARIANT GROUP D CALLS SHAPE [IMPL]

A cell prints ok / WRONG (max error against the float64 oracle) / error: ... ; a crashed
process shows as "crashed (signal N)". FlashInfer JIT-builds a module per dtype, head
dim, window and soft-cap on first use (nvcc; minutes): cells run 4 at a time. IMPL
(default flashinfer) names another shipped adapter: `triton` (ours) checks the script
itself on the CPU under TRITON_INTERPRET=1 (tests/test_scripts.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

OPS = ("paged_decode", "paged_prefill")
VARIANTS = {"none": {}, "window": {"window": (8, 0)}, "softcap": {"softcap": 30.0}}
# shape -> (page size, key lengths, prefill query lengths: each sequence's last tokens)
SHAPES = {"base": (16, (37, 20), (5, 3)),
          "empty_seq": (16, (37, 0), (5, 0)),  # a sequence with no keys and no queries
          "no_new": (16, (37, 20), (5, 0)),  # keys, no new queries (prefill only)
          "fresh": (16, (37, 20), (37, 20)),  # whole sequences prefilled
          "page1": (1, (37, 20), (5, 3)),
          "page256": (256, (300, 20), (5, 3))}
# (variant, group, head dim, calls, shape): every variant at the base shape, then the
# plain call at the edges suspected in session 22 (a group outside FlashInfer decode's
# {1, 2, 3, 4, 8}; a head dim it pads; a second call in the process), then the shapes
# (plain, then window and soft-cap on the two with empty sequences)
CELLS = [(v, 4, 128, 1, "base") for v in VARIANTS] + [
    ("none", 5, 128, 1, "base"), ("none", 1, 128, 1, "base"), ("none", 4, 40, 1, "base"),
    ("none", 4, 128, 2, "base")] + [("none", 4, 128, 1, sh) for sh in SHAPES if sh != "base"] \
    + [(v, 4, 128, 1, sh) for v in ("window", "softcap") for sh in ("empty_seq", "no_new")]
HKV = 2


def one(op: str, variant: str, group: int, d: int, calls: int, shape: str = "base",
        impl: str = "flashinfer") -> str:
    import torch

    from attention_kernel_triton import adapters
    from attention_kernel_triton.oracles.reference import paged_decode_ref, paged_prefill_ref

    fi = adapters.SHIPPED[impl]()
    why = fi.why_unavailable()
    if why:
        return f"unavailable: {why}"
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=dev).manual_seed(0)

    def rnd(*dims):
        return torch.randn(*dims, generator=g, device=dev).to(torch.float16)

    page, lens, q_lens = SHAPES[shape]
    pages = [max(1, -(-n // page)) for n in lens]  # an empty sequence keeps a table entry
    perm = torch.randperm(sum(pages), generator=g, device=dev).to(torch.int32)
    table = torch.zeros(len(lens), max(pages), dtype=torch.int32, device=dev)
    table[0, :pages[0]], table[1, :pages[1]] = perm[:pages[0]], perm[pages[0]:]
    k_cache, v_cache = rnd(sum(pages), page, HKV, d), rnd(sum(pages), page, HKV, d)
    seq_lens = torch.tensor(lens, dtype=torch.int32, device=dev)
    kw = VARIANTS[variant]
    if op == "paged_decode":
        q = rnd(len(lens), HKV * group, d)
        args = [(q, k_cache, v_cache, table, seq_lens)]
        if calls > 1:
            args.append((q[:1], k_cache, v_cache, table[:1], seq_lens[:1]))
        call, oracle, extra = fi.ops[op], paged_decode_ref, {}
    else:
        q = rnd(sum(q_lens), HKV * group, d)
        cu = torch.tensor([0, q_lens[0], sum(q_lens)], dtype=torch.int32, device=dev)
        args = [(q, k_cache, v_cache, table, cu, seq_lens)]
        if calls > 1:
            args.append((q[:q_lens[0]], k_cache, v_cache, table[:1], cu[:2], seq_lens[:1]))
        call, oracle, extra = fi.ops[op], paged_prefill_ref, {"causal": True}
    errs = []
    for a in args:
        try:
            out = call(*a, **({"max_seqlen_q": max(q_lens)} if op == "paged_prefill" else {}),
                       **extra, **kw)
            if dev == "cuda":
                torch.cuda.synchronize()
        except Exception as exc:  # noqa: BLE001 - the report is the point
            return f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
        ref, _ = oracle(*a, **extra, **kw)
        errs.append((out.double() - ref).abs().max().item())
    worst = max(errs)
    return "ok" if worst < 1e-2 else f"WRONG (max err {worst:.3g})"


def cell(op: str, args: tuple) -> str:
    """One cell in its own process; its outcome is also printed to stderr as it comes, so
    a run stopped at a time limit still reports the cells it finished."""
    try:
        run = subprocess.run([sys.executable, __file__, "one", op, *map(str, args)],
                             capture_output=True, text=True, timeout=900)
        if run.returncode < 0:
            out = f"crashed (signal {-run.returncode})"
        else:
            out = (run.stdout.strip() or run.stderr.strip() or "?").splitlines()[-1][:90]
    except subprocess.TimeoutExpired:
        out = "timed out (900 s)"
    print(f"cell {op} {' '.join(map(str, args))}: {out}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "one":
        op, variant, group, d, calls = sys.argv[2:7]
        print(one(op, variant, int(group), int(d), int(calls), *sys.argv[7:9]))
        return
    import torch

    print(f"# FlashInfer adapter, one process per cell: {torch.cuda.get_device_name()}, "
          f"torch {torch.__version__}; fp16, Hkv {HKV}; shapes (page size, key lengths, "
          f"prefill query lengths): {SHAPES}\n")
    print("| variant | group | D | calls | shape | " + " | ".join(OPS) + " |")
    print("|---|---|---|---|---|" + "---|" * len(OPS))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        res = list(pool.map(lambda job: cell(*job), [(op, c) for c in CELLS for op in OPS]))
    for i, (variant, group, d, calls, shape) in enumerate(CELLS):
        row = res[i * len(OPS):(i + 1) * len(OPS)]
        print(f"| {variant} | {group} | {d} | {calls} | {shape} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
