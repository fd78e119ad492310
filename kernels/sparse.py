"""Sparse-token decode: each query attends only a given list of token positions.

The kernel is the decode family's (``kernels.decode``, flag HAS_INDICES): the key list
of a program is its row of ``indices`` instead of 0..seq_len, so the cost follows the
number of selected tokens, never the context length. With one index row per KV head
(H_idx == Hkv) the whole query group shares each gathered K/V row; with one row per
query head (H_idx == Hq) every query head walks its own list.

indices: int32 [B, H_idx, K], logical positions in [0, seq_len); -1 marks an unused slot
anywhere in a row; order is free; a repeated position counts as often as it appears.
A row of only -1 gives output 0 and LSE -inf.
"""

from __future__ import annotations

import torch

from . import _validate as val
from .decode import check_dense_call, check_paged_call, run


def check_indices(indices, q3, num_kv_heads: int, seq_lens, n_ctx: int, validate: bool):
    batch, num_q_heads = q3.shape[:2]
    val.tensor("indices", indices)
    if indices.dtype != torch.int32:
        raise ValueError(f"indices must be int32, got {indices.dtype}")
    if indices.dim() != 3 or indices.shape[0] != batch:
        raise ValueError(f"indices must have shape ({batch}, H_idx, K), got "
                         f"{tuple(indices.shape)}")
    if indices.shape[1] not in (num_kv_heads, num_q_heads):
        raise ValueError(f"indices.shape[1] (H_idx) must be Hkv={num_kv_heads} or "
                         f"Hq={num_q_heads}, got {indices.shape[1]}")
    if indices.device != q3.device:
        raise ValueError(f"indices must be on {q3.device} like q, got {indices.device}")
    if validate and indices.numel():
        limit = (seq_lens.long() if seq_lens is not None
                 else torch.full((batch,), n_ctx, device=q3.device)).view(-1, 1, 1)
        bad = (indices < -1) | (indices >= limit)
        if bool(bad.any()):
            b, h, i = (int(x) for x in bad.nonzero()[0])
            raise ValueError(f"indices[{b}, {h}, {i}] = {int(indices[b, h, i])} is outside "
                             f"[-1, {int(limit[b])}) (the sequence length; -1 = unused)")


def sparse_decode(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    indices: torch.Tensor,
    *,
    seq_lens: torch.Tensor | None = None,
    num_splits: int | None = None,
    sm_scale: float | None = None,
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    validate: bool = True,
):
    """Sparse decode over a dense cache. q: [B, Hq, D] or [B, Hq, 1, D];
    k, v: [B, Hkv, N, D]; indices: int32 [B, H_idx, K] with H_idx in {Hkv, Hq};
    seq_lens: int32 [B] (default N) bounds the valid positions. With validate=False,
    positions outside [0, seq_len) are skipped, never read."""
    q3, out_shape = check_dense_call(q, k, v, seq_lens, num_splits, validate)
    check_indices(indices, q3, k.shape[1], seq_lens, k.shape[2], validate)
    return run(q3, out_shape, k, v, out=out, return_lse=return_lse, sm_scale=sm_scale,
               seq_lens=seq_lens, block_table=None, indices=indices, n_ctx=k.shape[2],
               num_splits=num_splits)


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
    return_lse: bool = False,
    out: torch.Tensor | None = None,
    validate: bool = True,
):
    """Sparse decode over a paged cache ([num_pages, page_size, Hkv, D], as
    ``paged_decode``); indices hold logical positions, looked up through block_table."""
    q3, out_shape = check_paged_call(q, k_cache, v_cache, block_table, seq_lens, num_splits,
                                     validate)
    check_indices(indices, q3, k_cache.shape[2], seq_lens, 0, validate)
    return run(q3, out_shape, k_cache, v_cache, out=out, return_lse=return_lse,
               sm_scale=sm_scale, seq_lens=seq_lens, block_table=block_table, indices=indices,
               n_ctx=block_table.shape[1] * k_cache.shape[1], num_splits=num_splits)


__all__ = ["sparse_decode", "sparse_paged_decode"]
