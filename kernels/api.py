"""The seven public functions (re-exported as ``attention_kernel_triton.<name>``).

Each checks its arguments once (kernels/_validate.py; ``validate=False`` skips the checks
that read tensor values on the host), allocates what it returns, and runs its custom op
(kernels/ops.py): the kernel family's one path of layout -> plan -> launch. Under
``torch.compile`` pass ``validate=False``: the value checks need a host-device sync, so
validate=True there is an explicit graph break (the checks and the call then run eagerly;
with fullgraph=True, Dynamo's Unsupported error, whose message says to pass
validate=False).
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

import torch

from . import _validate as val
from . import ops

# Every public function takes the variant options, keyword-only (kernels/mods.py has the
# formulas; FlashAttention's conventions):
#   window=(left, right): query i attends key j iff i_al - left <= j <= i_al + right on the
#     bottom-right aligned positions (i_al = i + Lk - Lq; a decode query sits at
#     seq_len - 1); -1 = unbounded. Under causal the right side is bounded by the causal
#     mask (FlashAttention sets it to 0); for decode it bounds nothing.
#   softcap=c > 0: logits c * tanh(q.k * sm_scale / c) (Gemma 2).
#   sinks: float32 [Hq], a logit per query head in the softmax denominator only
#     (gpt-oss); the LSE includes it; a row with no key gives 0 and LSE = the sink.
#   alibi_slopes: float32 [Hq]: logit -= slope_h * |i_al - j| (FlashAttention's ALiBi).


def _result(out, lse, return_lse: bool):
    return (out, lse) if return_lse else out


def prefill(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    causal: bool = True,
    seq_lens: torch.Tensor | None = None,
    kv_seq_lens: torch.Tensor | None = None,
    sm_scale: float | None = None,
    window: tuple[int, int] | None = None,
    softcap: float | None = None,
    sinks: torch.Tensor | None = None,
    alibi_slopes: torch.Tensor | None = None,
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    validate: bool = True,
):
    """Attention over a padded batch.

    q: [B, Hq, Nq, D]; k, v: [B, Hkv, Nk, D] with Hq % Hkv == 0 (query head h reads KV
    head h // (Hq // Hkv)); fp16, bf16 or fp32; any strides with a contiguous last dim.
    seq_lens: int32 [B], valid query lengths (padded var-len); kv_seq_lens: int32 [B],
    valid key lengths (defaults to seq_lens when seq_lens is given, else Nk).
    Rows >= seq_lens[b] of the output are 0; keys >= kv_seq_lens[b] are never read.
    causal: bottom-right aligned on the valid lengths. Returns out [B, Hq, Nq, D]
    (and lse [B, Hq, Nq] float32, natural log, -inf on rows that see no key).
    validate=False skips the checks that need a host-device sync.
    """
    val.flags(causal=causal, return_lse=return_lse, validate=validate)
    out, scale, kv_seq_lens = val.prefill_call(q, k, v, seq_lens=seq_lens,
                                               kv_seq_lens=kv_seq_lens, sm_scale=sm_scale,
                                               out=out, validate=validate)
    mods = val.score_mods(q, window=window, softcap=softcap, sinks=sinks,
                          alibi_slopes=alibi_slopes, validate=validate)
    lse = ops.call("prefill", q, k, v, seq_lens, kv_seq_lens, bool(causal), scale,
                   *mods.op_args(), bool(return_lse), out)
    return _result(out, lse, return_lse)


def prefill_varlen(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor | None = None,
    *,
    max_seqlen_q: int,
    max_seqlen_k: int | None = None,
    causal: bool = True,
    sm_scale: float | None = None,
    window: tuple[int, int] | None = None,
    softcap: float | None = None,
    sinks: torch.Tensor | None = None,
    alibi_slopes: torch.Tensor | None = None,
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    validate: bool = True,
):
    """Attention over packed sequences (FlashAttention's varlen convention).

    q: [Tq, Hq, D]; k, v: [Tk, Hkv, D]; sequence b's queries are rows
    cu_seqlens_q[b]:cu_seqlens_q[b+1] (int32 [B+1], non-decreasing, starting at 0), its
    keys likewise with cu_seqlens_k (defaults to cu_seqlens_q). max_seqlen_q must bound
    every query length. Returns out [Tq, Hq, D] (and lse [Hq, Tq]).
    The grid has cdiv(max_seqlen_q, BLOCK_M) query tiles per (sequence, head), so a loose
    bound launches programs that find no rows and exit, and those cost GPU time (about
    2.3 ns each on an H200: max_seqlen_q 4096 instead of 1024 at the seed lengths,
    158.8 us instead of 101.8; benchmarks/NOTES.md, session 8). With validate=True the
    lengths are read on the host anyway, and the grid uses the longest length instead.
    max_seqlen_k is accepted for FlashAttention compatibility; it is only checked.
    Packed rows past cu_seqlens_q[-1] belong to no sequence and are left as they are
    (not written; uninitialised when out= is not given), as in FlashAttention.
    """
    val.flags(causal=causal, return_lse=return_lse, validate=validate)
    out, scale, cu_seqlens_k, max_q = val.prefill_varlen_call(
        q, k, v, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_k,
        max_seqlen_q=max_seqlen_q, max_seqlen_k=max_seqlen_k, sm_scale=sm_scale, out=out,
        validate=validate)
    mods = val.score_mods(q, window=window, softcap=softcap, sinks=sinks,
                          alibi_slopes=alibi_slopes, validate=validate)
    lse = ops.call("prefill_varlen", q, k, v, cu_seqlens_q, cu_seqlens_k, max_q, bool(causal),
                   scale, *mods.op_args(), bool(return_lse), out)
    return _result(out, lse, return_lse)


def decode(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    seq_lens: torch.Tensor | None = None,
    num_splits: int | None = None,
    sm_scale: float | None = None,
    k_scale: torch.Tensor | None = None,
    v_scale: torch.Tensor | None = None,
    window: tuple[int, int] | None = None,
    softcap: float | None = None,
    sinks: torch.Tensor | None = None,
    alibi_slopes: torch.Tensor | None = None,
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    validate: bool = True,
):
    """Decode over a dense cache.

    q: [B, Hq, D] or [B, Hq, 1, D] (the output mirrors it); k, v: [B, Hkv, N, D];
    seq_lens: int32 [B] valid cache lengths (default N; keys past it are never read).
    num_splits: split-KV count (default: a heuristic from B x Hkv and N).
    Returns out (and lse [B, Hq] float32, natural log; -inf for a length-0 row).
    fp8 caches (every decode function and paged_prefill): k and v float8_e4m3fn or
    float8_e5m2 with q (and out) float16 or bfloat16; k_scale, v_scale: float32 tensors of
    shape [] / [1] (per tensor) or [Hkv] (per KV head), on q's device, both or neither
    (neither: scale 1), with vLLM's convention stored = real / scale, i.e. real K =
    k.float() * k_scale. ``quantize_kv`` makes such a cache and its scale.
    """
    val.flags(return_lse=return_lse, validate=validate)
    out, scale = val.decode_call(q, k, v, seq_lens=seq_lens, num_splits=num_splits,
                                 sm_scale=sm_scale, k_scale=k_scale, v_scale=v_scale,
                                 out=out, validate=validate)
    mods = val.score_mods(q, window=window, softcap=softcap, sinks=sinks,
                          alibi_slopes=alibi_slopes, validate=validate)
    lse = ops.call("decode", q, k, v, seq_lens, num_splits, scale, k_scale, v_scale,
                   *mods.op_args(), bool(return_lse), out)
    return _result(out, lse, return_lse)


def paged_decode(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    *,
    num_splits: int | None = None,
    sm_scale: float | None = None,
    k_scale: torch.Tensor | None = None,
    v_scale: torch.Tensor | None = None,
    window: tuple[int, int] | None = None,
    softcap: float | None = None,
    sinks: torch.Tensor | None = None,
    alibi_slopes: torch.Tensor | None = None,
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    validate: bool = True,
):
    """Decode over a paged cache.

    q: [B, Hq, D] or [B, Hq, 1, D]; k_cache, v_cache: [num_pages, page_size, Hkv, D]
    (any strides with a contiguous last dim); block_table: int32 [B, max_pages];
    seq_lens: int32 [B]. Token t of sequence b is cache[block_table[b, t // P], t % P];
    table entries past a sequence's last page are never read and may hold anything.
    fp8 caches and k_scale / v_scale: as ``decode``.
    """
    val.flags(return_lse=return_lse, validate=validate)
    out, scale = val.decode_call(q, k_cache, v_cache, block_table=block_table,
                                 seq_lens=seq_lens, num_splits=num_splits, sm_scale=sm_scale,
                                 k_scale=k_scale, v_scale=v_scale, out=out, validate=validate)
    mods = val.score_mods(q, window=window, softcap=softcap, sinks=sinks,
                          alibi_slopes=alibi_slopes, validate=validate)
    lse = ops.call("paged_decode", q, k_cache, v_cache, block_table, seq_lens, num_splits,
                   scale, k_scale, v_scale, *mods.op_args(), bool(return_lse), out)
    return _result(out, lse, return_lse)


def sparse_decode(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    indices: torch.Tensor,
    *,
    seq_lens: torch.Tensor | None = None,
    num_splits: int | None = None,
    sm_scale: float | None = None,
    k_scale: torch.Tensor | None = None,
    v_scale: torch.Tensor | None = None,
    window: tuple[int, int] | None = None,
    softcap: float | None = None,
    sinks: torch.Tensor | None = None,
    alibi_slopes: torch.Tensor | None = None,
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    validate: bool = True,
):
    """Sparse decode over a dense cache: each query attends only the token positions of
    its index row. q: [B, Hq, D] or [B, Hq, 1, D]; k, v: [B, Hkv, N, D];
    indices: int32 [B, H_idx, K] with H_idx in {Hkv, Hq} (one row per KV head, shared by
    its query group, or one per query head): logical positions in [0, seq_len), -1 marks
    an unused slot anywhere in a row, order is free, a repeated position counts as often
    as it appears; a row of only -1 gives output 0 and LSE -inf. seq_lens: int32 [B]
    (default N) bounds the valid positions. With validate=False, positions outside
    [0, seq_len) are skipped, never read. fp8 caches and k_scale / v_scale: as ``decode``."""
    val.flags(return_lse=return_lse, validate=validate)
    out, scale = val.decode_call(q, k, v, seq_lens=seq_lens, idx=indices,
                                 num_splits=num_splits, sm_scale=sm_scale, k_scale=k_scale,
                                 v_scale=v_scale, out=out, validate=validate)
    mods = val.score_mods(q, window=window, softcap=softcap, sinks=sinks,
                          alibi_slopes=alibi_slopes, validate=validate)
    lse = ops.call("sparse_decode", q, k, v, indices, seq_lens, num_splits, scale, k_scale,
                   v_scale, *mods.op_args(), bool(return_lse), out)
    return _result(out, lse, return_lse)


def sparse_paged_decode(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    indices: torch.Tensor,
    *,
    num_splits: int | None = None,
    sm_scale: float | None = None,
    k_scale: torch.Tensor | None = None,
    v_scale: torch.Tensor | None = None,
    window: tuple[int, int] | None = None,
    softcap: float | None = None,
    sinks: torch.Tensor | None = None,
    alibi_slopes: torch.Tensor | None = None,
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    validate: bool = True,
):
    """Sparse decode over a paged cache ([num_pages, page_size, Hkv, D], as
    ``paged_decode``); indices hold logical positions (as ``sparse_decode``), looked up
    through block_table. fp8 caches and k_scale / v_scale: as ``decode``."""
    val.flags(return_lse=return_lse, validate=validate)
    out, scale = val.decode_call(q, k_cache, v_cache, block_table=block_table,
                                 seq_lens=seq_lens, idx=indices, num_splits=num_splits,
                                 sm_scale=sm_scale, k_scale=k_scale, v_scale=v_scale, out=out,
                                 validate=validate)
    mods = val.score_mods(q, window=window, softcap=softcap, sinks=sinks,
                          alibi_slopes=alibi_slopes, validate=validate)
    lse = ops.call("sparse_paged_decode", q, k_cache, v_cache, block_table, seq_lens, indices,
                   num_splits, scale, k_scale, v_scale, *mods.op_args(), bool(return_lse), out)
    return _result(out, lse, return_lse)


def paged_prefill(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_table: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    seq_lens: torch.Tensor,
    *,
    max_seqlen_q: int,
    causal: bool = True,
    num_splits: int | None = None,
    sm_scale: float | None = None,
    k_scale: torch.Tensor | None = None,
    v_scale: torch.Tensor | None = None,
    window: tuple[int, int] | None = None,
    softcap: float | None = None,
    sinks: torch.Tensor | None = None,
    alibi_slopes: torch.Tensor | None = None,
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    validate: bool = True,
):
    """New query tokens against their whole context in a paged cache (chunked prefill,
    prefix caching, speculative verification; decode rows and chunks in one call).

    q: packed [Tq, Hq, D]; sequence b's q_len_b new tokens are rows
    cu_seqlens_q[b]:cu_seqlens_q[b+1] (int32 [B+1], non-decreasing, from 0).
    k_cache, v_cache: [num_pages, page_size, Hkv, D] (any strides with a contiguous last
    dim); block_table: int32 [B, max_pages]; seq_lens: int32 [B], each sequence's whole
    context *including* its new tokens, whose K/V are already in the cache at positions
    seq_lens[b] - q_len_b .. seq_lens[b] - 1 (so q_len_b <= seq_lens[b]). Token t of
    sequence b is cache[block_table[b, t // P], t % P]; table entries past its last page
    are never read. causal: query i of sequence b attends key j iff
    j <= seq_lens[b] - q_len_b + i (bottom-right); else every j < seq_lens[b].
    max_seqlen_q must bound every q_len_b (with validate=True the longest is used).
    num_splits: split-KV count (default: a heuristic). Returns out [Tq, Hq, D] (and lse
    [Hq, Tq] float32). Packed rows past cu_seqlens_q[-1] belong to no sequence and are
    left as they are, as in prefill_varlen. fp8 caches and k_scale / v_scale: as ``decode``.
    """
    val.flags(causal=causal, return_lse=return_lse, validate=validate)
    out, scale, max_q = val.paged_prefill_call(
        q, k_cache, v_cache, block_table, cu_seqlens_q, seq_lens, max_seqlen_q=max_seqlen_q,
        num_splits=num_splits, sm_scale=sm_scale, k_scale=k_scale, v_scale=v_scale, out=out,
        validate=validate)
    mods = val.score_mods(q, window=window, softcap=softcap, sinks=sinks,
                          alibi_slopes=alibi_slopes, validate=validate)
    lse = ops.call("paged_prefill", q, k_cache, v_cache, block_table, cu_seqlens_q, seq_lens,
                   max_q, bool(causal), num_splits, scale, k_scale, v_scale, *mods.op_args(),
                   bool(return_lse), out)
    return _result(out, lse, return_lse)


__all__ = ["prefill", "prefill_varlen", "decode", "paged_decode", "sparse_decode",
           "sparse_paged_decode", "paged_prefill"]
