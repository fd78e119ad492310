"""``python -m benchmarks.probe``: where the time of a call goes, and A/B of launch choices.

Rows are CUDA-graph replays timed the benchmark's way (``timing.gpu_time_ms``: L2 dirtied
by the flush, "cold") and again without the flush ("warm": the inputs of the previous
replay may still sit in L2). fp16. Probes (--only):

  sparse   the sparse seed (B4 Hq32 Hkv8 N32000 D256, 640 positions per KV head), dense
           and in a page-16 cache
  decode   the decode seed (B8 Hq64 Hkv16 N1024 D64) and B32 Hq32 Hkv8 N4096 D128
  paged    B1 Hq32 Hkv8 N65536 D128, dense against page 16, over split counts and configs
  prefill  the program order (pairs per chunk, see _config.PREFILL_CHUNK_BYTES), eager calls
  order    (not in the default set) prefill's query tiles counted from each sequence's
           end against from the longest length, seed lengths padded and packed, and a
           packed T16384 D128 case
  empty    (not in the default set) prefill's programs past their length: the seed shape
           with every length 0, padded and packed, against seed and full lengths
  marginal (not in the default set) what programs past their length cost inside a mixed
           call: the seed lengths with more such programs (a larger max_seqlen_q or N)
  splitrule  (not in the default set) dense decode Hq32 Hkv8 D128 over --rule-batches x
           --rule-ns: the default split count vs each of --rule-splits vs cuDNN, and
           with --rule-paged the same in a page-16 cache (data for the split rule)

Rows of the sparse and decode probes:
  empty        one program of an empty Triton kernel: what the method reads for no work
  read         torch.sum over a contiguous tensor of the call's K/V bytes: a streaming read
  gather       torch.gather of the selected K and V rows (sparse): read + write
  split only   our split-KV kernel alone (the merge launch left out; output unused)
  merge only   the merge kernel alone (partials left uncomputed)
  ours         the whole call at the default split count, and at other split counts
  ours, merge without PDL   the merge launched plainly, not as a dependent launch
  sdpa-cudnn   SDPA-cuDNN (decode)

The differences place the time: (ours - split only) is what the merge adds on the
critical path, (split only - empty) the split kernel's own time. Writes
<card>-<date>-probe[-tag].{json,md} into --out.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
from datetime import date
from pathlib import Path

import torch
import triton
import triton.language as tl

from . import cases, peers
from .timing import Timer, capture_graph, card_info, cuda_unavailable_reason, gpu_time_ms


@triton.jit
def _empty_kernel(x_ptr):
    pass


@triton.jit
def _length_kernel(lens_ptr, out_ptr, batch):
    """What an empty prefill program does at least: load its sequence's length, exit."""
    n = tl.load(lens_ptr + tl.program_id(0) % batch)
    if n < 0:  # never: keeps the load
        tl.store(out_ptr, n)


class _Skipped:
    """Stands in for a jit kernel: launching it does nothing. A row that leaves the split
    kernel out lets the merge read uninitialised partials: a timing, not a result."""

    def __getitem__(self, grid):
        return lambda *args, **kwargs: None


@contextlib.contextmanager
def _patched(module_name: str, name: str, value):
    """Set a module global inside a block (process-wide: this script is single-threaded)."""
    module = importlib.import_module(module_name)
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


def _no_pdl():
    from attention_kernel_triton.kernels import tuning

    return tuning.override(pdl=False)


# How a row changes the call while it is captured: leave one of kernels.decode's two
# launches out (timing only: output unused), or launch the merge without PDL.
SETUPS = {
    None: contextlib.nullcontext,
    "no merge": lambda: _patched("attention_kernel_triton.kernels.decode", "_combine_kernel",
                                 _Skipped()),
    "no split": lambda: _patched("attention_kernel_triton.kernels.decode", "_decode_kernel",
                                 _Skipped()),
    "no pdl": _no_pdl,
}


def _time(fn, timer: Timer, setup: str | None = None) -> tuple[float, float]:
    """(cold, warm) ms of a graph replay of fn."""
    with SETUPS[setup]():
        graph, _ = capture_graph(fn)
    cold = gpu_time_ms(graph.replay, timer.warmup_ms, timer.rep_ms)
    warm = gpu_time_ms(graph.replay, timer.warmup_ms, timer.rep_ms, flush_l2=False)
    return cold, warm


def _qkv(batch, hq, hkv, n, d, q_len=None):
    """(generator, q, k, v), fp16, seeded: q [B, Hq, D] (q_len None) or [B, Hq, q_len, D];
    k, v [B, Hkv, n, D]."""
    gen = cases._gen(0)
    q_shape = (batch, hq, d) if q_len is None else (batch, hq, q_len, d)
    q = cases._randn(gen, q_shape, torch.float16)
    k = cases._randn(gen, (batch, hkv, n, d), torch.float16)
    return gen, q, k, torch.randn_like(k)


def probe_sparse(splits: list[int], configs: list[tuple], timer: Timer) -> list[dict]:
    """The sparse seed, dense cache (read floor, gather, split and merge alone, PDL) and
    the same tokens in a page-16 cache, at the default and each of `splits`, and the
    paged call under each decode config of `configs`."""
    import attention_kernel_triton as kernels
    from attention_kernel_triton.kernels import tuning
    from attention_kernel_triton.kernels._config import Config

    batch, hq, hkv, n, d, kept, page = 4, 32, 8, 32000, 256, 640, 16
    gen, q, k, v = _qkv(batch, hq, hkv, n, d)
    idx = torch.stack([torch.randperm(n, device="cuda", generator=gen)[:kept]
                       for _ in range(batch * hkv)]).view(batch, hkv, kept).to(torch.int32)
    paged = cases.make_paged(gen, [n] * batch, hkv, d, page, torch.float16)
    nbytes = cases.kv_bytes(batch * kept, hkv, d, torch.float16)
    flat = torch.randn(int(nbytes) // 2, generator=gen, device="cuda", dtype=torch.float16)
    dummy = torch.empty(1, device="cuda")
    shape = f"sparse B{batch} Hq{hq} Hkv{hkv} N{n} D{d} K{kept}"
    rows = [("empty", lambda: _empty_kernel[(1,)](dummy), None),
            ("read", lambda: flat.sum(), None),
            ("gather", lambda: (peers.gather_sparse(k, idx), peers.gather_sparse(v, idx)), None)]

    def ours(split=None):
        return lambda: kernels.sparse_decode(q, k, v, idx, num_splits=split, validate=False)

    rows += [("split only", ours(), "no merge"), ("merge only", ours(), "no split"),
             ("ours", ours(), None), ("ours, merge without PDL", ours(), "no pdl")]
    rows += [(f"ours, {s} splits", ours(s), None) for s in splits]

    def ours_paged(split=None):
        return lambda: kernels.sparse_paged_decode(
            q, paged.k_cache, paged.v_cache, paged.block_table, paged.seq_lens, idx,
            num_splits=split, validate=False)

    rows += [(f"paged P{page}, {s or 'auto'} splits", ours_paged(s), None)
             for s in (None, *splits)]
    out = [_row(shape, label, fn, setup, nbytes, timer) for label, fn, setup in rows]
    for cfg in configs:
        with tuning.override(decode_config=Config(*cfg)):
            out.append(_row(shape, f"paged P{page}, auto splits, config {cfg}", ours_paged(),
                            None, nbytes, timer))
    return out


def probe_split_rule(batches: list[int], ns: list[int], splits: list[int], paged: bool,
                     timer: Timer) -> list[dict]:
    """Dense decode at Hq32 Hkv8 D128 over batch x context: the default split count
    against each of `splits` and cuDNN (data for the split rule; probe splits, session 6:
    B32 N4096 at 1 split ties cuDNN, 4 splits is 9% slower); with `paged`, also the same
    tokens in a page-16 cache at each split count."""
    import attention_kernel_triton as kernels

    rows = []
    hq, hkv, d = 32, 8, 128
    for batch in batches:
        for n in ns:
            _, q, k, v = _qkv(batch, hq, hkv, n, d, q_len=1)
            nbytes = cases.kv_bytes(batch * n, hkv, d, torch.float16)
            shape = f"decode B{batch} Hq{hq} Hkv{hkv} N{n} D{d}"
            calls = [(f"ours, {s or 'auto'} splits",
                      lambda s=s, q=q, k=k, v=v: kernels.decode(q, k, v, num_splits=s,
                                                                validate=False))
                     for s in (None, *splits)]
            calls.append(("sdpa-cudnn", peers.sdpa("cudnn", q, k, v)))
            if paged:
                gen = cases._gen(1)
                kv = cases.make_paged(gen, [n] * batch, hkv, d, 16, torch.float16)
                calls += [(f"paged P16, {s or 'auto'} splits",
                           lambda s=s, q=q, kv=kv: kernels.paged_decode(
                               q, kv.k_cache, kv.v_cache, kv.block_table, kv.seq_lens,
                               num_splits=s, validate=False))
                          for s in (None, *splits)]
            rows += [_row(shape, label, fn, None, nbytes, timer) for label, fn in calls]
            del q, k, v, calls
    return rows


def probe_decode(splits: list[int], timer: Timer) -> list[dict]:
    """The decode seed (B8 Hq64 Hkv16 N1024 D64) and B32 Hq32 Hkv8 N4096 D128: read
    floor, split and merge alone, PDL, cuDNN; B32 also at each of `splits`."""
    import attention_kernel_triton as kernels

    rows = []
    for batch, hq, hkv, n, d in ((8, 64, 16, 1024, 64), (32, 32, 8, 4096, 128)):
        gen, q, k, v = _qkv(batch, hq, hkv, n, d, q_len=1)
        nbytes = cases.kv_bytes(batch * n, hkv, d, torch.float16)
        flat = torch.randn(int(nbytes) // 2, generator=gen, device="cuda", dtype=torch.float16)
        shape = f"decode B{batch} Hq{hq} Hkv{hkv} N{n} D{d}"

        def ours(split=None, q=q, k=k, v=v):
            return lambda: kernels.decode(q, k, v, num_splits=split, validate=False)

        cases_ = [("read", lambda flat=flat: flat.sum(), None),
                  ("split only", ours(), "no merge"), ("merge only", ours(), "no split"),
                  ("ours", ours(), None), ("ours, merge without PDL", ours(), "no pdl"),
                  ("sdpa-cudnn", peers.sdpa("cudnn", q, k, v), None)]
        if batch == 32:
            cases_ += [(f"ours, {s} splits", ours(s), None) for s in splits]
        rows += [_row(shape, label, fn, setup, nbytes, timer) for label, fn, setup in cases_]
    return rows


def probe_paged(splits: list[int], configs: list[tuple], timer: Timer) -> list[dict]:
    """B1 Hq32 Hkv8 N65536 D128: paged (page 16) against dense, at several split counts."""
    import attention_kernel_triton as kernels

    batch, hq, hkv, n, d, page = 1, 32, 8, 65536, 128, 16
    gen = cases._gen(0)
    q = cases._randn(gen, (batch, hq, d), torch.float16)
    kv = cases.make_paged(gen, [n] * batch, hkv, d, page, torch.float16)
    kc, vc, table, lens = kv.k_cache, kv.v_cache, kv.block_table, kv.seq_lens
    # the same tokens as a dense [B, Hkv, N, D] cache
    k, v = (peers.gather_paged_dense(c, table, n).contiguous() for c in (kc, vc))
    nbytes = cases.kv_bytes(batch * n, hkv, d, torch.float16)
    shape = f"B{batch} Hq{hq} Hkv{hkv} N{n} D{d}"
    rows = []
    for split in [None, *splits]:
        tag = "auto" if split is None else str(split)
        rows.append((f"dense, {tag} splits",
                     lambda s=split: kernels.decode(q, k, v, num_splits=s, validate=False)))
        rows.append((f"paged P{page}, {tag} splits",
                     lambda s=split: kernels.paged_decode(q, kc, vc, table, lens, num_splits=s,
                                                          validate=False)))
    out = [_row(shape, label, fn, None, nbytes, timer) for label, fn in rows]
    from attention_kernel_triton.kernels import tuning
    from attention_kernel_triton.kernels._config import Config

    for cfg in configs:
        def call():
            return kernels.paged_decode(q, kc, vc, table, lens, validate=False)
        with tuning.override(decode_config=Config(*cfg)):
            out.append(_row(shape, f"paged P{page}, auto splits, config {cfg}", call, None,
                            nbytes, timer))
    return out


def probe_prefill(chunk_pairs: list[str], timer: Timer) -> list[dict]:
    """Prefill's program order (tuning.prefill_chunk_pairs: (batch, head) pairs per chunk, "all"
    for one chunk, "default" for the host's choice) at the seed shape, full length and
    padded to the seed lengths, and at N4096 and N16384 D128; eager calls (the benchmark's
    way). The Triton kernel throughout: the order is its own (long causal D128 calls would
    take the Gluon kernel on Hopper)."""
    import attention_kernel_triton as kernels
    from attention_kernel_triton.kernels import tuning

    rows = []
    for batch, hq, hkv, n, d, lengths in ((8, 64, 16, 1024, 64, None),
                                          (8, 64, 16, 1024, 64, cases.SEED_LENGTHS),
                                          (4, 32, 8, 4096, 128, None),
                                          (1, 32, 8, 16384, 128, None)):
        _, q, k, v = _qkv(batch, hq, hkv, n, d, q_len=n)
        lens = None if lengths is None else torch.tensor(lengths, dtype=torch.int32,
                                                         device="cuda")
        shape = f"prefill B{batch} Hq{hq} Hkv{hkv} N{n} D{d}" + (" seed lengths" if lens
                                                                 is not None else "")
        flops = cases.causal_flops(lengths or [n] * batch, hq, d)
        for pairs in chunk_pairs:
            def call(lens=lens, q=q, k=k, v=v):
                return kernels.prefill(q, k, v, causal=True, seq_lens=lens, validate=False)
            chunk = 1 << 30 if pairs == "all" else (None if pairs == "default" else int(pairs))
            order = (contextlib.nullcontext() if chunk is None
                     else tuning.override(prefill_chunk_pairs=chunk))
            with order, tuning.override(prefill_gluon=False):
                rows.append(_row(shape, f"{pairs} pairs per chunk", call, None, flops,
                                 timer, graph=False))
    return rows


def probe_empty_programs(timer: Timer) -> list[dict]:
    """What prefill's programs past their sequence's length cost: the seed shape (B8 Hq64
    Hkv16 D64, 16 query tiles per pair) as packed varlen with every length 0 (8192
    programs that load their length and exit) and padded with every length 0 (each also
    writes its tile of zeros, 67 MB in all), against the seed lengths (3776 such programs
    among 8192) and the full length. Eager calls, last column GFLOP/s of the seed lengths."""
    import attention_kernel_triton as kernels

    batch, hq, hkv, n, d = 8, 64, 16, 1024, 64
    _, q, k, v = _qkv(batch, hq, hkv, n, d, q_len=n)
    flops = cases.causal_flops(cases.SEED_LENGTHS, hq, d)
    lens = {"seed lengths": cases.SEED_LENGTHS, "full length": [n] * batch,
            "every length 0": [0] * batch}
    packed = [t.transpose(1, 2).reshape(batch * n, t.shape[1], d) for t in (q, k, v)]
    rows = []
    for name, lengths in lens.items():
        seq_lens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
        cu = torch.tensor([0] * (batch + 1), dtype=torch.int32, device="cuda")
        cu[1:] = torch.cumsum(seq_lens, 0)
        rows.append(_row(f"prefill B{batch} Hq{hq} Hkv{hkv} N{n} D{d}", f"padded, {name}",
                         lambda s=seq_lens: kernels.prefill(q, k, v, seq_lens=s,
                                                            validate=False),
                         None, flops, timer, graph=False))
        rows.append(_row(f"prefill B{batch} Hq{hq} Hkv{hkv} N{n} D{d}", f"varlen, {name}",
                         lambda c=cu: kernels.prefill_varlen(*packed, c, max_seqlen_q=n,
                                                             validate=False),
                         None, flops, timer, graph=False))
    # The same number of programs (8192) of trivial kernels, 4 warps like prefill's D64
    # config: launch alone, and launch plus one length load.
    lens = torch.zeros(batch, dtype=torch.int32, device="cuda")
    programs = (n // 64) * batch * hq
    rows.append(_row(f"{programs} programs, 4 warps", "empty kernel",
                     lambda: _empty_kernel[(programs,)](lens, num_warps=4),
                     None, flops, timer, graph=False))
    rows.append(_row(f"{programs} programs, 4 warps", "load a length, exit",
                     lambda: _length_kernel[(programs,)](lens, lens, batch, num_warps=4),
                     None, flops, timer, graph=False))
    return rows


def _packed(lengths, hq: int, hkv: int, d: int):
    """Packed var-len fp16 q [T, Hq, D], k/v [T, Hkv, D] (seed 0) and cu_seqlens for
    `lengths`."""
    gen = cases._gen(0)
    total = sum(lengths)
    q, k, v = (cases._randn(gen, (total, h, d), torch.float16) for h in (hq, hkv, hkv))
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32,
                      device="cuda")
    return q, k, v, cu


def probe_order(timer: Timer) -> list[dict]:
    """Prefill's query-tile order with lengths (tuning.prefill_tiles_from_end): counted
    from each sequence's end (tiles past the length last) against counted from the
    longest length, A B A B, at the seed lengths (padded and packed, B8 Hq64 Hkv16 D64)
    and the packed 5-sequence T16384 Hq32 Hkv8 D128 case; eager calls, GFLOP/s."""
    import attention_kernel_triton as kernels
    from attention_kernel_triton.kernels import tuning

    rows = []
    for lengths, hq, hkv, d in ((cases.SEED_LENGTHS, 64, 16, 64),
                                ((6240, 4096, 3000, 2048, 1000), 32, 8, 128)):
        batch, n = len(lengths), max(lengths)
        flops = cases.causal_flops(lengths, hq, d)
        total = sum(lengths)
        q, k, v, cu = _packed(lengths, hq, hkv, d)
        calls = {f"packed T{total}": lambda q=q, k=k, v=v, cu=cu, n=n: kernels.prefill_varlen(
            q, k, v, cu, max_seqlen_q=n, validate=False)}
        if d == 64:  # the padded seed: [B, H, N, D] with seq_lens
            _, qp, kp, vp = _qkv(batch, hq, hkv, n, d, q_len=n)
            lens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
            calls[f"padded N{n}"] = lambda qp=qp, kp=kp, vp=vp, lens=lens: kernels.prefill(
                qp, kp, vp, seq_lens=lens, validate=False)
        for name, call in calls.items():
            shape = f"prefill {name} Hq{hq} Hkv{hkv} D{d} lengths {','.join(map(str, lengths))}"
            for from_end in (False, True, False, True):
                with tuning.override(prefill_tiles_from_end=from_end):
                    label = "tiles from each end" if from_end else "tiles from the longest"
                    rows.append(_row(shape, label, call, None, flops, timer, graph=False))
    return rows


def probe_empty_marginal(timer: Timer) -> list[dict]:
    """What programs past their length cost inside a mixed call: the seed lengths (B8 Hq64
    Hkv16 D64) packed with max_seqlen_q 1024 (8192 programs, 3776 past their length),
    2048 and 4096 (8192 and 24576 more such programs, nothing more to compute or write),
    and padded to N1024 and N2048 (the extra programs also write their tiles of zeros).
    Every row runs one chunk of all pairs (the seed's own order), A B A B; eager calls,
    GFLOP/s of the seed lengths."""
    import attention_kernel_triton as kernels
    from attention_kernel_triton.kernels import tuning

    lengths, hq, hkv, d = cases.SEED_LENGTHS, 64, 16, 64
    batch = len(lengths)
    flops = cases.causal_flops(lengths, hq, d)
    q, k, v, cu = _packed(lengths, hq, hkv, d)
    lens = torch.tensor(lengths, dtype=torch.int32, device="cuda")
    calls = {}
    for n in (1024, 2048, 4096):
        calls[f"packed, max_seqlen_q {n}"] = lambda n=n: kernels.prefill_varlen(
            q, k, v, cu, max_seqlen_q=n, validate=False)
    for n in (1024, 2048):
        _, qp, kp, vp = _qkv(batch, hq, hkv, n, d, q_len=n)
        calls[f"padded N{n}"] = lambda qp=qp, kp=kp, vp=vp: kernels.prefill(
            qp, kp, vp, seq_lens=lens, validate=False)
    shape = f"prefill B{batch} Hq{hq} Hkv{hkv} D{d} lengths {','.join(map(str, lengths))}"
    rows = []
    with tuning.override(prefill_chunk_pairs=batch * hq):
        for _ in range(2):
            for name, call in calls.items():
                rows.append(_row(shape, name, call, None, flops, timer, graph=False))
    return rows


def probe_padded_overhead(timer: Timer) -> list[dict]:
    """Where the padded kernel's extra time at full length comes from (session 9: every
    length 1024 given as seq_lens took 231 us against 219.5 without lengths): the seed
    shape (B8 Hq64 Hkv16 N1024 D64) without lengths, padded with every length 1024 and
    packed at full length, each in one chunk of all (batch, head) pairs (the var-len
    default) and pair after pair (the full-length default); the padded seed lengths for
    reference. A B A B; eager calls; the Triton kernel."""
    import attention_kernel_triton as kernels
    from attention_kernel_triton.kernels import tuning

    batch, hq, hkv, n, d = 8, 64, 16, 1024, 64
    _, q, k, v = _qkv(batch, hq, hkv, n, d, q_len=n)
    full = torch.full((batch,), n, dtype=torch.int32, device="cuda")
    seed = torch.tensor(cases.SEED_LENGTHS, dtype=torch.int32, device="cuda")
    cu = torch.arange(0, (batch + 1) * n, n, dtype=torch.int32, device="cuda")
    packed = [t.transpose(1, 2).reshape(batch * n, t.shape[1], d) for t in (q, k, v)]
    calls = {
        "no lengths": (lambda: kernels.prefill(q, k, v, validate=False), [n] * batch),
        "padded, every length 1024": (lambda: kernels.prefill(
            q, k, v, seq_lens=full, validate=False), [n] * batch),
        "packed, every length 1024": (lambda: kernels.prefill_varlen(
            *packed, cu, max_seqlen_q=n, validate=False), [n] * batch),
        "padded, seed lengths": (lambda: kernels.prefill(
            q, k, v, seq_lens=seed, validate=False), list(cases.SEED_LENGTHS)),
    }
    shape = f"prefill B{batch} Hq{hq} Hkv{hkv} N{n} D{d}"
    rows = []
    with tuning.override(prefill_gluon=False, prefill_tiles_from_end=False):
        for _ in range(2):
            for name, (call, lengths) in calls.items():
                for pairs, order in ((batch * hq, "one chunk of all pairs"),
                                     (1, "pair after pair")):
                    with tuning.override(prefill_chunk_pairs=pairs):
                        rows.append(_row(shape, f"{name}, {order}", call, None,
                                         cases.causal_flops(lengths, hq, d), timer,
                                         graph=False))
    return rows


def probe_grid(timer: Timer) -> list[dict]:
    """Prefill on one grid axis (program coordinates by runtime division) against the 3-D
    grids of its two common orders (tuning.prefill_3d_grid, session 9): the seed shape
    (B8 Hq64 Hkv16 N1024 D64) at full length, padded to the seed lengths and packed at the
    seed lengths, and B4 Hq32 Hkv8 N4096 D128 on the Triton kernel. A B A B; eager calls."""
    import attention_kernel_triton as kernels
    from attention_kernel_triton.kernels import tuning

    batch, hq, hkv, n, d = 8, 64, 16, 1024, 64
    _, q, k, v = _qkv(batch, hq, hkv, n, d, q_len=n)
    lens = torch.tensor(cases.SEED_LENGTHS, dtype=torch.int32, device="cuda")
    pq, pk, pv, cu = _packed(cases.SEED_LENGTHS, hq, hkv, d)
    _, q4, k4, v4 = _qkv(4, 32, 8, 4096, 128, q_len=4096)
    seed = f"B{batch} Hq{hq} Hkv{hkv} N{n} D{d}"
    calls = (
        (f"prefill {seed} full length", [n] * batch, hq, d,
         lambda: kernels.prefill(q, k, v, validate=False)),
        (f"prefill {seed} padded, seed lengths", cases.SEED_LENGTHS, hq, d,
         lambda: kernels.prefill(q, k, v, seq_lens=lens, validate=False)),
        (f"prefill packed seed lengths Hq{hq} Hkv{hkv} D{d}", cases.SEED_LENGTHS, hq, d,
         lambda: kernels.prefill_varlen(pq, pk, pv, cu, max_seqlen_q=n, validate=False)),
        ("prefill B4 Hq32 Hkv8 N4096 D128 (Triton)", [4096] * 4, 32, 128,
         lambda: kernels.prefill(q4, k4, v4, validate=False)),
    )
    rows = []
    with tuning.override(prefill_gluon=False):
        for shape, lengths, heads, dim, call in calls:
            for three_d in (False, True, False, True):
                with tuning.override(prefill_3d_grid=three_d):
                    rows.append(_row(shape, "3-D grid" if three_d else "one grid axis", call,
                                     None, cases.causal_flops(lengths, heads, dim), timer,
                                     graph=False))
    return rows


def _row(shape, label, fn, setup, nbytes, timer, graph: bool = True) -> dict:
    """nbytes: bytes (GB/s column) or, for prefill rows, FLOPs (TFLOP/s x 1000)."""
    try:
        if graph:
            cold, warm = _time(fn, timer, setup)
        else:
            cold = gpu_time_ms(fn, timer.warmup_ms, timer.rep_ms)
            warm = gpu_time_ms(fn, timer.warmup_ms, timer.rep_ms, flush_l2=False)
    except Exception as exc:  # reported in the row; main() exits 1 when any row failed
        print(f"  {shape} | {label}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return {"shape": shape, "what": label, "cold_us": None, "warm_us": None,
                "note": f"{type(exc).__name__}: {str(exc)[:200]}"}
    row = {"shape": shape, "what": label, "cold_us": cold * 1e3, "warm_us": warm * 1e3,
           "cold_gbps": nbytes / (cold * 1e-3) / 1e9, "note": ""}
    print(f"  {shape} | {label}: cold {row['cold_us']:.1f} us, warm {row['warm_us']:.1f} us",
          flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", default="1,4,8,16,32",
                        help="split counts to time the sparse call at (comma-separated)")
    parser.add_argument("--decode-splits", default="1,2,8",
                        help="split counts to time the B32 N4096 decode at")
    parser.add_argument("--paged-splits", default="32,64",
                        help="split counts to time the B1 N65536 dense/paged calls at")
    parser.add_argument("--sparse-configs", default="",
                        help="decode configs 'N,warps,stages;...' for the paged sparse call")
    parser.add_argument("--rule-batches", default="4,8,16,32,64",
                        help="splitrule: batch sizes")
    parser.add_argument("--rule-ns", default="1024,4096,16384", help="splitrule: contexts")
    parser.add_argument("--rule-splits", default="1,2", help="splitrule: split counts")
    parser.add_argument("--rule-paged", action="store_true",
                        help="splitrule: also time a page-16 cache of the same shape")
    parser.add_argument("--paged-configs", default="",
                        help="decode configs BN,W,S to time the paged call at, ';'-separated")
    parser.add_argument("--chunk-pairs", default="default,1,all",
                        help="prefill program orders to time: (batch, head) pairs per "
                             "chunk, 'all' or 'default'")
    parser.add_argument("--only", default="sparse,decode,paged,prefill",
                        help="which probes to run (comma-separated; also: splitrule, empty, "
                             "order, marginal, padded, grid)")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--tag", default="")
    args = parser.parse_args(argv)
    reason = cuda_unavailable_reason()
    if reason:
        print(f"benchmarks.probe: {reason}", file=sys.stderr)
        return 2
    timer = Timer()
    card = card_info()
    ints = lambda text: [int(x) for x in text.split(",") if x.strip()]
    only = set(args.only.split(","))

    def configs(text):  # "N,warps,stages;..." -> decode Config fields (block_m 16)
        return [(16, *ints(c)) for c in text.split(";") if c.strip()]

    rows = []
    if "sparse" in only:
        rows += probe_sparse(ints(args.splits), configs(args.sparse_configs), timer)
    if "decode" in only:
        rows += probe_decode(ints(args.decode_splits), timer)
    if "paged" in only:
        rows += probe_paged(ints(args.paged_splits), configs(args.paged_configs), timer)
    if "empty" in only:
        rows += probe_empty_programs(timer)
    if "splitrule" in only:
        rows += probe_split_rule(ints(args.rule_batches), ints(args.rule_ns),
                                 ints(args.rule_splits), args.rule_paged, timer)
    if "order" in only:
        rows += probe_order(timer)
    if "marginal" in only:
        rows += probe_empty_marginal(timer)
    if "padded" in only:
        rows += probe_padded_overhead(timer)
    if "grid" in only:
        rows += probe_grid(timer)
    if "prefill" in only:
        rows += probe_prefill([x.strip() for x in args.chunk_pairs.split(",") if x.strip()],
                              timer)
    stem = f"{card.slug}-{date.today().isoformat()}-probe{'-' + args.tag if args.tag else ''}"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"card": card.as_dict(), "torch": torch.__version__, "triton": triton.__version__}
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"# Time placement probe, {card.name}, {date.today().isoformat()}", "",
             "CUDA-graph replays; cold = the benchmark's method (L2 dirtied by a flush), "
             "warm = no flush. Prefill rows: eager calls, last column GFLOP/s.", "",
             "| shape | what | cold us | warm us | cold GB/s |",
             "|---|---|---|---|---|"]
    for r in rows:
        if r["cold_us"] is None:
            lines.append(f"| {r['shape']} | {r['what']} | — | — | {r['note']} |")
        else:
            lines.append(f"| {r['shape']} | {r['what']} | {r['cold_us']:.1f} | "
                         f"{r['warm_us']:.1f} | {r['cold_gbps']:.0f} |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / stem}.{{json,md}}")
    failed = [f"{r['shape']} | {r['what']}" for r in rows if r["cold_us"] is None]
    if failed:
        print(f"benchmarks.probe: {len(failed)} row(s) failed: {'; '.join(failed)}",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
