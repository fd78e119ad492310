"""Oracles for each public kernel: gather into dense tensors, build a mask, call the core.

Every function takes the kernel's own arguments, never modifies them, and returns
(out, lse) shaped like the kernel's, in float64 by default (`dtype=` runs the same
formula in another dtype for the low-precision reference). An fp8 cache is dequantised
first, in float64 (``dequantize``): the low-precision reference then runs on those
values rounded to `dtype`, which is what fp8 storage has already lost plus q's format.
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

import itertools

import torch

from .core import alibi_bias, attention, causal_mask, length_mask, window_mask


def dequantize(cache, scale, head_axis: int):
    """An fp8 cache's real values, float64: stored x scale (one scale, or one per index of
    head_axis; None: 1). Any other cache is returned as it is."""
    if cache.dtype not in (torch.float8_e4m3fn, torch.float8_e5m2):
        return cache
    real = cache.double()
    if scale is None:
        return real
    shape = [1] * cache.dim()
    if scale.numel() > 1:
        shape[head_axis] = -1
    return real * scale.double().reshape(shape)


def _variants(allowed, q_pos, k_pos, *, window, softcap, sinks, alibi_slopes) -> tuple:
    """(allowed with the window, the core's variant keywords) from aligned positions."""
    if window is not None:
        allowed = allowed & window_mask(q_pos, k_pos, window)
    bias = alibi_bias(alibi_slopes, q_pos, k_pos) if alibi_slopes is not None else None
    return allowed, dict(softcap=softcap, bias=bias, sinks=sinks)


def _full(n: int, batch: int, device):
    return torch.full((batch,), n, dtype=torch.int64, device=device)


def prefill_ref(q, k, v, *, causal=True, seq_lens=None, kv_seq_lens=None, sm_scale=None,
                dtype=torch.float64, window=None, softcap=None, sinks=None,
                alibi_slopes=None):
    """q [B, Hq, Nq, D], k/v [B, Hkv, Nk, D] -> out [B, Hq, Nq, D], lse [B, Hq, Nq]."""
    batch, _, n_q, _ = q.shape
    n_k = k.shape[2]
    q_lens = _full(n_q, batch, q.device) if seq_lens is None else seq_lens.long()
    k_lens = (_full(n_k, batch, q.device) if seq_lens is None else q_lens) \
        if kv_seq_lens is None else kv_seq_lens.long()
    allowed = length_mask(q_lens, k_lens, n_q, n_k)
    if causal:
        allowed = allowed & causal_mask(q_lens, k_lens, n_q, n_k)
    q_pos = torch.arange(n_q, device=q.device).view(1, 1, n_q, 1) \
        + (k_lens - q_lens).view(-1, 1, 1, 1)  # aligned bottom-right
    k_pos = torch.arange(n_k, device=q.device).view(1, 1, 1, n_k)
    allowed, mods = _variants(allowed, q_pos, k_pos, window=window, softcap=softcap,
                              sinks=sinks, alibi_slopes=alibi_slopes)
    out, lse = attention(q, k, v, allowed, sm_scale=sm_scale, dtype=dtype, **mods)
    # padding rows (i >= q_len) are no query: 0 and -inf, sinks or not
    row = torch.arange(n_q, device=q.device).view(1, 1, n_q) < q_lens.view(-1, 1, 1)
    return out * row.unsqueeze(-1), lse.masked_fill(~row, float("-inf"))


def prefill_varlen_ref(q, k, v, cu_seqlens_q, cu_seqlens_k=None, *, causal=True,
                       sm_scale=None, dtype=torch.float64, **variants):
    """Packed q [Tq, Hq, D], k/v [Tk, Hkv, D] -> out [Tq, Hq, D], lse [Hq, Tq].
    Rows past cu_seqlens_q[-1] belong to no sequence: 0 and -inf here."""
    cu_k = cu_seqlens_q if cu_seqlens_k is None else cu_seqlens_k
    out = torch.zeros(q.shape, dtype=dtype, device=q.device)
    lse = torch.full((q.shape[1], q.shape[0]), float("-inf"), dtype=dtype, device=q.device)
    for b in range(len(cu_seqlens_q) - 1):
        q0, q1 = int(cu_seqlens_q[b]), int(cu_seqlens_q[b + 1])
        k0, k1 = int(cu_k[b]), int(cu_k[b + 1])
        o, s = prefill_ref(q[q0:q1].transpose(0, 1)[None], k[k0:k1].transpose(0, 1)[None],
                           v[k0:k1].transpose(0, 1)[None], causal=causal, sm_scale=sm_scale,
                           dtype=dtype, **variants)
        out[q0:q1] = o[0].transpose(0, 1)
        lse[:, q0:q1] = s[0]
    return out, lse


def decode_ref(q, k, v, *, seq_lens=None, sm_scale=None, k_scale=None, v_scale=None,
               dtype=torch.float64, window=None, softcap=None, sinks=None, alibi_slopes=None):
    """q [B, Hq, D] (or [B, Hq, 1, D]), k/v [B, Hkv, N, D] -> out like q, lse [B, Hq]."""
    k, v = dequantize(k, k_scale, 1), dequantize(v, v_scale, 1)
    q4 = q if q.dim() == 4 else q.unsqueeze(2)
    batch, n_k = q.shape[0], k.shape[2]
    k_lens = _full(n_k, batch, q.device) if seq_lens is None else seq_lens.long()
    allowed = length_mask(_full(1, batch, q.device), k_lens, 1, n_k)
    q_pos = (k_lens - 1).view(-1, 1, 1, 1)  # the query is the sequence's last token
    k_pos = torch.arange(n_k, device=q.device).view(1, 1, 1, n_k)
    allowed, mods = _variants(allowed, q_pos, k_pos, window=window, softcap=softcap,
                              sinks=sinks, alibi_slopes=alibi_slopes)
    out, lse = attention(q4, k, v, allowed, sm_scale=sm_scale, dtype=dtype, **mods)
    return out.reshape(q.shape), lse[:, :, 0]


def paged_gather(cache, block_table, seq_lens):
    """[num_pages, P, Hkv, D] cache -> dense [B, Hkv, max(seq_lens), D] (zeros past the end).
    Token t of sequence b is cache[block_table[b, t // P], t % P]."""
    page_size = cache.shape[1]
    n = int(seq_lens.max()) if len(seq_lens) else 0
    dense = torch.zeros((len(seq_lens), cache.shape[2], n, cache.shape[3]),
                        dtype=cache.dtype, device=cache.device)
    for b, length in enumerate(seq_lens.tolist()):
        t = torch.arange(length, device=cache.device)
        pages = block_table[b, t // page_size].long()
        dense[b, :, :length] = cache[pages, t % page_size].transpose(0, 1)
    return dense


def paged_decode_ref(q, k_cache, v_cache, block_table, seq_lens, *, sm_scale=None,
                     k_scale=None, v_scale=None, dtype=torch.float64, **variants):
    k_cache, v_cache = dequantize(k_cache, k_scale, 2), dequantize(v_cache, v_scale, 2)
    k = paged_gather(k_cache, block_table, seq_lens)
    v = paged_gather(v_cache, block_table, seq_lens)
    return decode_ref(q, k, v, seq_lens=seq_lens, sm_scale=sm_scale, dtype=dtype, **variants)


def paged_prefill_ref(q, k_cache, v_cache, block_table, cu_seqlens_q, seq_lens, *,
                      causal=True, sm_scale=None, k_scale=None, v_scale=None,
                      dtype=torch.float64, **variants):
    """Packed new query tokens q [Tq, Hq, D] over a paged cache -> out [Tq, Hq, D], lse
    [Hq, Tq]. Sequence b's rows cu_seqlens_q[b]:cu_seqlens_q[b+1] are the last tokens of
    its seq_lens[b]: its context, gathered and packed, is prefill_varlen's keys (causal
    bottom-right). Rows past cu_seqlens_q[-1]: 0 and -inf."""
    k_cache, v_cache = dequantize(k_cache, k_scale, 2), dequantize(v_cache, v_scale, 2)
    lens = seq_lens.tolist()
    cu_k = torch.tensor([0, *itertools.accumulate(lens)], dtype=torch.int64, device=q.device)

    def packed(cache):  # [sum(seq_lens), Hkv, D]: each sequence's tokens in order
        dense = paged_gather(cache, block_table, seq_lens)
        return torch.cat([dense[b, :, :n].transpose(0, 1) for b, n in enumerate(lens)])

    return prefill_varlen_ref(q, packed(k_cache), packed(v_cache), cu_seqlens_q, cu_k,
                              causal=causal, sm_scale=sm_scale, dtype=dtype, **variants)


def sparse_gather(k, indices):
    """k [B, Hkv, N, D], indices [B, H_idx, K] (-1 = unused) -> (rows [B, H_idx, K, D],
    used [B, H_idx, K]). Index head h reads KV head h // (H_idx // Hkv)."""
    group = indices.shape[1] // k.shape[1]
    used = indices >= 0
    src = k.repeat_interleave(group, dim=1)  # [B, H_idx, N, D]
    idx = indices.clamp(min=0).long().unsqueeze(-1).expand(-1, -1, -1, k.shape[-1])
    if src.shape[2] == 0:  # no positions at all (every length 0): every index is -1
        return src.new_zeros(idx.shape), used
    return torch.gather(src, 2, idx), used


def sparse_decode_ref(q, k, v, indices, *, seq_lens=None, sm_scale=None, k_scale=None,
                      v_scale=None, dtype=torch.float64, window=None, softcap=None, sinks=None,
                      alibi_slopes=None):
    """Each query attends exactly the listed positions (duplicates count twice).
    seq_lens bounds valid indices and places the query (at seq_len - 1) for a window and
    ALiBi."""
    k, v = dequantize(k, k_scale, 1), dequantize(v, v_scale, 1)
    q4 = q if q.dim() == 4 else q.unsqueeze(2)
    kg, used = sparse_gather(k, indices)
    vg, _ = sparse_gather(v, indices)
    group = q.shape[1] // indices.shape[1]  # 1 when there is one index row per query head
    allowed = used.repeat_interleave(group, dim=1).unsqueeze(2)  # [B, Hq, 1, K]
    k_lens = _full(k.shape[2], q.shape[0], q.device) if seq_lens is None else seq_lens.long()
    q_pos = (k_lens - 1).view(-1, 1, 1, 1)
    k_pos = indices.long().repeat_interleave(group, dim=1).unsqueeze(2)  # [B, Hq, 1, K]
    allowed, mods = _variants(allowed, q_pos, k_pos, window=window, softcap=softcap,
                              sinks=sinks, alibi_slopes=alibi_slopes)
    out, lse = attention(q4, kg, vg, allowed, sm_scale=sm_scale, dtype=dtype, **mods)
    return out.reshape(q.shape), lse[:, :, 0]


def sparse_paged_decode_ref(q, k_cache, v_cache, block_table, seq_lens, indices, *,
                            sm_scale=None, k_scale=None, v_scale=None, dtype=torch.float64,
                            **variants):
    k_cache, v_cache = dequantize(k_cache, k_scale, 2), dequantize(v_cache, v_scale, 2)
    k = paged_gather(k_cache, block_table, seq_lens)
    v = paged_gather(v_cache, block_table, seq_lens)
    return sparse_decode_ref(q, k, v, indices, seq_lens=seq_lens, sm_scale=sm_scale,
                             dtype=dtype, **variants)
