"""Build a case's tensors from its seed: on the CPU with a torch.Generator, then moved.

Each builder returns a plain dict of the kernel's arguments (tensors on `device`,
layouts as the case asks: transposed storage gives non-contiguous views).
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

import torch

from .cases import DecodeCase, PagedPrefillCase, PrefillCase


def torch_dtype(name: str) -> torch.dtype:
    return {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
            "float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2}[name]


# Largest finite and smallest normal magnitude of each fp8 format.
FP8_MAX = {torch.float8_e4m3fn: 448.0, torch.float8_e5m2: 57344.0}
FP8_MIN_NORMAL = {torch.float8_e4m3fn: 2.0**-6, torch.float8_e5m2: 2.0**-14}


def _fp8_caches(case, args: dict, names: tuple[str, str], head_axis: int) -> dict:
    """The case's K/V caches (drawn in q's dtype) stored as fp8 with vLLM's convention,
    stored = saturate(real / scale), in the same layout (NaN gaps stay NaN), with the
    scales the case asks for (its kv_scale and scale_fit: strategies/cases.py).
    Written here, not with kernels.quant.quantize_kv, so the suite builds its inputs
    without the code it tests."""
    if case.kv_dtype is None:
        return args
    dt = torch_dtype(case.kv_dtype)
    for name, scale_name in zip(names, ("k_scale", "v_scale"), strict=True):
        real = args[name].float()  # the view's values (the gaps are not in it)
        per_head = case.fp8.kv_scale == "head"
        if real.numel() == 0:
            amax = real.new_zeros((real.shape[head_axis],) if per_head else ())
        elif per_head:
            amax = real.abs().amax(dim=[a for a in range(real.dim()) if a != head_axis])
        else:
            amax = real.abs().amax()
        fit = {"amax": FP8_MAX[dt], "saturate": 8 * FP8_MAX[dt],
               "subnormal": FP8_MIN_NORMAL[dt]}[case.fp8.scale_fit]
        scale = torch.where(amax > 0, amax / fit, torch.ones_like(amax))
        if case.fp8.kv_scale == "none":
            scale = torch.ones_like(scale)
        shape = [1] * real.dim()
        if per_head:
            shape[head_axis] = -1
        stored = (real / scale.view(shape)).clamp(-FP8_MAX[dt], FP8_MAX[dt]).to(dt)
        args[name] = relayout_like(stored, args[name])
        if case.fp8.kv_scale != "none":
            args[scale_name] = scale.to(torch.float32)
    return args


def _laid_out(t, *, device, perm=None, gap=0, fill=float("nan"), step=1):
    """`t` (CPU, in storage order) moved to `device` in a storage whose rows hold `gap`
    elements of `fill` after their values, and (step > 1) `step - 1` of `fill` between
    consecutive values; then viewed through `perm`. The view's values are t's, whatever
    the gap and step; the fill is the memory a kernel must never read."""
    if gap or step > 1:
        n = t.shape[-1]
        store = torch.full((*t.shape[:-1], n * step + gap), fill, dtype=t.dtype)
        store[..., :n * step:step] = t
        t = store.to(device)[..., :n * step:step]
    else:
        t = t.contiguous().to(device)
    return t.permute(*perm) if perm is not None else t


def _moved(t, device):
    """`t` on `device` with its strides, storage offset and gaps (Tensor.to packs a view
    with gaps into fresh contiguous memory)."""
    store = torch.empty(0, dtype=t.dtype).set_(t.untyped_storage()).to(device)
    return store.as_strided(t.shape, t.stride(), t.storage_offset())


def _randn(gen, shape, *, scale=1.0, dtype, device, perm=None, gap=0):
    """randn storage of `shape`, scaled, cast, moved, then viewed through `perm`. With
    gap > 0 each row of the storage has `gap` NaN columns after its values (the view
    hides them; the values are the same as without a gap)."""
    t = (torch.randn(shape, generator=gen, dtype=torch.float32) * scale).to(dtype)
    return _laid_out(t, device=device, perm=perm, gap=gap)


def relayout_like(values: torch.Tensor, like: torch.Tensor,
                  fill=float("nan")) -> torch.Tensor:
    """`values` (any layout) copied into fresh storage with `like`'s strides and storage
    offset: the same order of dimensions in memory and the same gaps (after each row,
    between strided elements), holding `fill` (NaN; integer tensors need another fill).
    Poisoned copies keep the layout of the tensors they replace (a layout change could
    change the kernel's load path, and unread_memory compares bits). `values` may have
    another size along dim 0 when dim 0 is `like`'s outermost (the poisoned paged cache's
    extra page)."""
    if values.numel() == 0 or like.numel() == 0:
        return values
    if values.shape[1:] != like.shape[1:] or (
            values.shape[0] != like.shape[0] and like.stride(0) != max(like.stride())):
        raise ValueError(f"cannot lay out {tuple(values.shape)} like {tuple(like.shape)} "
                         f"with strides {like.stride()}")

    def extent(shape):  # elements from the storage offset to the last one, inclusive
        return sum((n - 1) * st for n, st in zip(shape, like.stride(), strict=True)) + 1

    tail = like.untyped_storage().nbytes() // like.element_size() \
        - like.storage_offset() - extent(like.shape)  # the last row's gap, and any slack
    store = torch.full((like.storage_offset() + extent(values.shape) + tail,), fill,
                       dtype=values.dtype, device=values.device)
    out = store.as_strided(values.shape, like.stride(), like.storage_offset())
    out.copy_(values)
    return out


def _lens(values, device):
    return torch.tensor(values, dtype=torch.int32, device=device)


def _cu(lens, device):
    """cu_seqlens int32 [B + 1] of lengths: 0, then their running sums."""
    return _lens([0] + torch.tensor(lens, dtype=torch.int64).cumsum(0).tolist(), device)


def alibi_slopes(num_heads: int) -> list[float]:
    """The ALiBi paper's slopes (Press et al. 2022): for n heads, a power of two, the
    geometric series 2^(-8/n), 2^(-16/n), ...; otherwise the series of the power of two
    below n, then every other slope of the series of twice that, until there are n."""
    def series(n):
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    low = 1 << (num_heads.bit_length() - 1) if num_heads else 0
    if low == num_heads:
        return series(num_heads)
    return series(low) + series(2 * low)[0::2][:num_heads - low]


def _variant_args(case, device) -> dict:
    """The variant keywords of a case (kernels/mods.py): window, softcap, and sinks and
    ALiBi slopes per query head, built from the case's seed with a generator of their own
    (the other tensors stay those of the same case without variants)."""
    args = {}
    if case.variants.window is not None:
        args["window"] = tuple(case.variants.window)
    if case.variants.softcap is not None:
        args["softcap"] = case.variants.softcap
    hq = case.num_q_heads
    g = torch.Generator().manual_seed(case.seed + 11)
    if case.variants.sinks is not None:
        choices = torch.stack([torch.randn(hq, generator=g) * 3,
                               torch.full((hq,), float("-inf")), torch.full((hq,), 20.0)])
        kind = {"random": torch.zeros(hq, dtype=torch.long),
                "neg_inf": torch.ones(hq, dtype=torch.long),
                "large": torch.full((hq,), 2, dtype=torch.long),
                "mixed": torch.randint(0, 3, (hq,), generator=g)}[case.variants.sinks]
        args["sinks"] = choices.gather(0, kind.view(1, -1))[0].to(device)
    if case.variants.alibi is not None:
        slopes = torch.tensor(alibi_slopes(hq)) if case.variants.alibi == "geometric" \
            else torch.rand(hq, generator=g)
        args["alibi_slopes"] = slopes.to(torch.float32).to(device)
    return args


def prefill_inputs(case: PrefillCase, device) -> dict:
    """Arguments of `prefill`: q, k, v [+ seq_lens, kv_seq_lens], causal."""
    g = torch.Generator().manual_seed(case.seed)
    dt = torch_dtype(case.dtype)
    b, hq, hkv, d = case.batch, case.num_q_heads, case.num_kv_heads, case.head_dim
    def make(h, n, transposed, scale=1.0):  # [B, H, N, D], from [B, N, H, D] storage if asked
        if transposed:
            return _randn(g, (b, n, h, d), scale=scale, dtype=dt, device=device,
                          perm=(0, 2, 1, 3), gap=case.layout.row_gap)
        return _randn(g, (b, h, n, d), scale=scale, dtype=dt, device=device,
                      gap=case.layout.row_gap)

    q = make(hq, case.n_q, case.layout.transposed, case.scale)
    k = make(hkv, case.n_k, case.layout.transposed)
    v = make(hkv, case.n_k, case.layout.transposed != case.layout.v_transposed)
    args = dict(q=q, k=k, v=v, causal=case.causal)
    if case.sm_scale is not None:
        args["sm_scale"] = case.sm_scale
    if case.q_lens is not None:
        args["seq_lens"] = _lens(case.q_lens, device)
        if case.kv_lens is not None:
            args["kv_seq_lens"] = _lens(case.kv_lens, device)
    return {**args, **_variant_args(case, device)}


def prefill_varlen_inputs(case: PrefillCase, device) -> dict:
    """Arguments of `prefill_varlen`: packed q [Tq, Hq, D], k/v [Tk, Hkv, D], cu_seqlens."""
    g = torch.Generator().manual_seed(case.seed)
    dt = torch_dtype(case.dtype)
    q_lens = list(case.q_lens)
    kv_lens = list(case.kv_lens) if case.kv_lens is not None else q_lens
    tq = sum(q_lens) + case.slack_rows
    tk = sum(kv_lens) + case.slack_rows
    hq, hkv, d = case.num_q_heads, case.num_kv_heads, case.head_dim
    def make(t, h, transposed, scale=1.0):  # [T, H, D], from [H, T, D] storage if asked
        if transposed:
            return _randn(g, (h, t, d), scale=scale, dtype=dt, device=device, perm=(1, 0, 2),
                          gap=case.layout.row_gap)
        return _randn(g, (t, h, d), scale=scale, dtype=dt, device=device, gap=case.layout.row_gap)

    q = make(tq, hq, case.layout.transposed, case.scale)
    k = make(tk, hkv, case.layout.transposed)
    v = make(tk, hkv, case.layout.transposed != case.layout.v_transposed)

    args = dict(q=q, k=k, v=v, cu_seqlens_q=_cu(q_lens, device), max_seqlen_q=max(q_lens),
                causal=case.causal)
    if case.kv_lens is not None:
        args["cu_seqlens_k"] = _cu(kv_lens, device)
    if case.sm_scale is not None:
        args["sm_scale"] = case.sm_scale
    return {**args, **_variant_args(case, device)}


def _seq_lens(case: DecodeCase | PagedPrefillCase):
    return list(case.seq_lens) if case.seq_lens is not None else [case.n_ctx] * case.batch


def page_table(case: DecodeCase | PagedPrefillCase, gen) -> tuple[torch.Tensor, int]:
    """(block_table int32 [B, max_pages] on the CPU, num_pages) built directly: used pages
    are a random permutation of [page_id_offset, num_pages); with shared_pages (a count;
    True is 1) every later sequence's first pages, up to that many, are sequence 0's; tails
    hold garbage (-1, out of range) or other valid ids. With table_gap > 0 the table is
    the column slice wide[:, :max_pages] of a [B, max_pages + table_gap] table (a row
    stride above max_pages); the extra columns hold valid ids, so that a kernel reading
    them (a row offset from the shape, not the stride) reads wrong pages, never memory
    past the cache (a crash, not a failed property); the poisoned copies point them at
    an all-NaN page."""
    t, lens = case.pages, _seq_lens(case)
    p = t.page_size
    needed = [-(-n // p) for n in lens]
    total = sum(needed)
    num_pages = t.page_id_offset + total + t.extra_pages
    ids = torch.randperm(total + t.extra_pages, generator=gen)[:total] + t.page_id_offset
    wide = torch.empty((case.batch, case.max_pages + t.table_gap), dtype=torch.int32)
    table = wide[:, :case.max_pages]
    if t.tail == "garbage":
        table.copy_(torch.randint(-3, num_pages + 1000, table.shape, generator=gen))
    else:
        table.copy_(torch.randint(0, max(num_pages, 1), table.shape, generator=gen))
    if t.table_gap:
        wide[:, case.max_pages:] = torch.randint(0, max(num_pages, 1), (case.batch,
                                                 t.table_gap), generator=gen)
    at = 0
    for b, n in enumerate(needed):
        table[b, :n] = ids[at:at + n].to(torch.int32)
        at += n
    for b in range(1, case.batch):  # sequence b's first pages are sequence 0's
        shared = min(int(t.shared_pages), needed[0], needed[b])
        table[b, :shared] = table[0, :shared]
    return table, num_pages


def _paged_cache(case: DecodeCase | PagedPrefillCase, gen, device) -> dict:
    """k_cache, v_cache [num_pages, P, Hkv, D] (from [num_pages, Hkv, P, D] storage where
    the case says transposed), block_table and seq_lens, drawn in that order after q."""
    table, num_pages = page_table(case, gen)
    dt, hkv, d = torch_dtype(case.dtype), case.num_kv_heads, case.head_dim

    def cache(transposed):
        if transposed:
            return _randn(gen, (num_pages, hkv, case.page_size, d), dtype=dt, device=device,
                          perm=(0, 2, 1, 3), gap=case.layout.row_gap)
        return _randn(gen, (num_pages, case.page_size, hkv, d), dtype=dt, device=device,
                      gap=case.layout.row_gap)

    return dict(k_cache=cache(case.layout.transposed),
                v_cache=cache(case.layout.transposed != case.layout.v_transposed),
                block_table=_moved(table, device), seq_lens=_lens(_seq_lens(case), device))


# Index slots in the storage gaps of a laid-out index tensor: out of range, so a kernel
# that reads one skips it (the poisoned copies put a valid position there instead).
INDEX_GAP_FILL = 2**31 - 1


def index_rows(case: DecodeCase, gen) -> torch.Tensor:
    """indices int32 [B, H_idx, K] (CPU), each row built for its sequence length, laid
    out as the case asks: rows index_gap slots apart past their K, slots index_step apart,
    from [H_idx, B, K] storage (index_transposed); the gaps hold INDEX_GAP_FILL."""
    ix = case.indices
    h_idx = case.num_q_heads if ix.per_query_head else case.num_kv_heads
    kk, kind = ix.num_indices, ix.index_kind
    out = torch.full((case.batch, h_idx, kk), -1, dtype=torch.int32)
    for b, length in enumerate(_seq_lens(case)):
        for h in range(h_idx):
            if length == 0:
                continue
            if kind == "all_neg_rows" and bool(torch.randint(0, 2, (1,), generator=gen)):
                continue  # this row stays all -1
            if kind == "every_token":
                row = torch.arange(min(kk, length))
            elif kind == "duplicates":
                row = torch.randint(0, length, (kk,), generator=gen)
            elif kind == "single":
                row = torch.randint(0, length, (1,), generator=gen)
            elif kind.startswith("neg_"):  # at least one -1 hole
                row = torch.randperm(length, generator=gen)[:max(kk - 1, 0)]
            else:
                row = torch.randperm(length, generator=gen)[:kk]
            if kind == "sorted":
                row = row.sort().values
            row = row.to(torch.int32)
            n = len(row)
            if kind == "single":
                out[b, h, int(torch.randint(0, kk, (1,), generator=gen))] = row[0]
            elif kind == "neg_start":
                out[b, h, kk - n:] = row
            elif kind == "neg_middle":
                half = n // 2
                out[b, h, :half] = row[:half]
                out[b, h, kk - (n - half):] = row[half:]
            else:
                out[b, h, :n] = row
    if ix.index_transposed:  # [H_idx, B, K] storage
        return _laid_out(out.transpose(0, 1), device="cpu", perm=(1, 0, 2),
                         gap=ix.index_gap, fill=INDEX_GAP_FILL, step=ix.index_step)
    return _laid_out(out, device="cpu", gap=ix.index_gap, fill=INDEX_GAP_FILL,
                     step=ix.index_step)


def decode_inputs(case: DecodeCase, device) -> dict:
    """Arguments of decode / paged_decode / sparse_decode / sparse_paged_decode."""
    g = torch.Generator().manual_seed(case.seed)
    dt = torch_dtype(case.dtype)
    b, hq, hkv, d = case.batch, case.num_q_heads, case.num_kv_heads, case.head_dim
    if case.layout.q_transposed:  # [Hq, B, (1,) D] storage: q's batch and head strides swap roles
        q_shape, q_perm = ((hq, b, 1, d), (1, 0, 2, 3)) if case.q_rank4 else \
            ((hq, b, d), (1, 0, 2))
    else:
        q_shape, q_perm = ((b, hq, 1, d) if case.q_rank4 else (b, hq, d)), None
    args = dict(q=_randn(g, q_shape, scale=case.scale, dtype=dt, device=device, perm=q_perm,
                         gap=case.layout.row_gap))
    if case.page_size is None:
        def dense(transposed):
            if transposed:
                return _randn(g, (b, case.n_ctx, hkv, d), dtype=dt, device=device,
                              perm=(0, 2, 1, 3), gap=case.layout.row_gap)
            return _randn(g, (b, hkv, case.n_ctx, d), dtype=dt, device=device,
                          gap=case.layout.row_gap)

        args["k"] = dense(case.layout.transposed)
        args["v"] = dense(case.layout.transposed != case.layout.v_transposed)
        if case.seq_lens is not None:
            args["seq_lens"] = _lens(case.seq_lens, device)
    else:
        args.update(_paged_cache(case, g, device))
    _fp8_caches(case, args, ("k", "v") if case.page_size is None else ("k_cache", "v_cache"),
                head_axis=1 if case.page_size is None else 2)
    if case.indices is not None:
        args["indices"] = _moved(index_rows(case, g), device)
    if case.num_splits is not None:
        args["num_splits"] = case.num_splits
    if case.sm_scale is not None:
        args["sm_scale"] = case.sm_scale
    return {**args, **_variant_args(case, device)}


def paged_prefill_inputs(case: PagedPrefillCase, device) -> dict:
    """Arguments of `paged_prefill`: packed q [Tq, Hq, D] (Tq = sum(q_lens) + slack_rows,
    from [Hq, Tq, D] storage if asked), the paged caches and table, cu_seqlens_q,
    seq_lens, max_seqlen_q, causal."""
    g = torch.Generator().manual_seed(case.seed)
    tq, hq, d = sum(case.q_lens) + case.slack_rows, case.num_q_heads, case.head_dim
    shape, perm = ((hq, tq, d), (1, 0, 2)) if case.layout.q_transposed else ((tq, hq, d), None)
    args = dict(q=_randn(g, shape, scale=case.scale, dtype=torch_dtype(case.dtype),
                         device=device, perm=perm, gap=case.layout.row_gap))
    args.update(_paged_cache(case, g, device))
    _fp8_caches(case, args, ("k_cache", "v_cache"), head_axis=2)
    args.update(cu_seqlens_q=_cu(case.q_lens, device), max_seqlen_q=case.n_q,
                causal=case.causal)
    if case.num_splits is not None:
        args["num_splits"] = case.num_splits
    if case.sm_scale is not None:
        args["sm_scale"] = case.sm_scale
    return {**args, **_variant_args(case, device)}
