"""The dense core every oracle ends in, and the mask builders it is combined with.

attention(q, k, v, allowed) computes softmax(q k^T * sm_scale, masked by `allowed`) v
in float64 (or any dtype asked for: the same formula in the input dtype is the
"low-precision reference" of the tolerance rule). Query head h reads KV head
h // (Hq // Hkv). A row with no allowed key gives output 0 and LSE -inf.

The variants (kernels/mods.py) are small changes of it: ``softcap`` and ``bias`` (ALiBi,
``alibi_bias``) transform the scaled scores, ``window_mask`` is one more mask, and
``sinks`` add one term per query head to the softmax denominator (so an empty row gives
output 0 and LSE = the sink).
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

import math

import torch


def attention(q, k, v, allowed, *, sm_scale=None, dtype=torch.float64, softcap=None,
              bias=None, sinks=None):
    """q [B, Hq, Nq, D]; k, v [B, Hkv, Nk, D]; allowed bool, broadcastable to
    [B, Hq, Nq, Nk]; bias (float, same broadcast) added to the logits; sinks [Hq].
    Returns (out [B, Hq, Nq, D], lse [B, Hq, Nq]) in `dtype`."""
    group = q.shape[1] // k.shape[1]
    scale = 1.0 / math.sqrt(q.shape[-1]) if sm_scale is None else sm_scale
    k = k.to(dtype).repeat_interleave(group, dim=1)
    v = v.to(dtype).repeat_interleave(group, dim=1)
    s = (q.to(dtype) @ k.transpose(-1, -2)) * scale
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    if bias is not None:
        s = s + bias.to(dtype)
    allowed = allowed.expand(s.shape)
    s = s.masked_fill(~allowed, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)  # -inf on empty rows
    if sinks is not None:  # one more logit per row, with value 0
        lse = torch.logaddexp(lse, sinks.to(dtype).view(1, -1, 1).expand_as(lse))
    p = torch.exp(s - lse.unsqueeze(-1))  # NaN on empty rows (-inf - -inf) ...
    zero = torch.zeros((), dtype=dtype, device=p.device)
    p = torch.where(allowed, p, zero)  # ... -> 0
    # Value rows no query may see are never read: 0 * NaN would still be NaN.
    v = torch.where(allowed.any(dim=-2).unsqueeze(-1), v, zero)
    return p @ v, lse


def lowp_attention(q, k, v, allowed, *, sm_scale=None):
    """The same formula computed in the inputs' own dtype (no upcast)."""
    return attention(q, k, v, allowed, sm_scale=sm_scale, dtype=q.dtype)


def length_mask(q_lens, k_lens, n_q: int, n_k: int):
    """[B, 1, Nq, Nk]: query i < q_lens[b] and key j < k_lens[b]."""
    i = torch.arange(n_q, device=q_lens.device).view(1, 1, n_q, 1)
    j = torch.arange(n_k, device=q_lens.device).view(1, 1, 1, n_k)
    return (i < q_lens.view(-1, 1, 1, 1)) & (j < k_lens.view(-1, 1, 1, 1))


def causal_mask(q_lens, k_lens, n_q: int, n_k: int):
    """[B, 1, Nq, Nk], bottom-right aligned: key j <= i + (k_lens[b] - q_lens[b])."""
    i = torch.arange(n_q, device=q_lens.device).view(1, 1, n_q, 1)
    j = torch.arange(n_k, device=q_lens.device).view(1, 1, 1, n_k)
    shift = (k_lens.long() - q_lens.long()).view(-1, 1, 1, 1)
    return j <= i + shift


def window_mask(q_pos, k_pos, window):
    """Key position k_pos within query position q_pos's window (left, right); -1 =
    unbounded. Positions are aligned (bottom-right); broadcast like q_pos - k_pos."""
    left, right = window
    ok = torch.ones_like(q_pos - k_pos, dtype=torch.bool)
    if left >= 0:
        ok = ok & (k_pos >= q_pos - left)
    if right >= 0:
        ok = ok & (k_pos <= q_pos + right)
    return ok


def alibi_bias(slopes, q_pos, k_pos):
    """-slope_h * |q_pos - k_pos| (FlashAttention's ALiBi); slopes [Hq] on axis 1."""
    return -slopes.double().view(1, -1, 1, 1) * (q_pos - k_pos).abs().double()
