"""The implementations ours is compared with, all from torch, all in the same process.

- torch SDPA pinned to one backend (flash or cuDNN) with ``enable_gqa=True``. A backend
  that refuses a case raises ``Refused`` with torch's own reasons.
- FlexAttention, compiled once with ``torch.compile`` (it recompiles per shape and mask),
  with block masks for causal, padding and packed documents.
- torch ``varlen_attn`` (FlashAttention varlen) where this torch has it.
- FlashInfer's ``BatchPrefillWithPagedKVCacheWrapper`` where ``import flashinfer`` works.
- A naive reference like the seeds': matmul, mask, softmax, matmul, in the input dtype.
- Gathers for the paged and sparse cases (token rows, then SDPA), capturable in a graph.

SDPA's causal mask is top-left aligned, so SDPA causal is used only where Nq == Nk.
Every function here builds its setup (masks, compile) once and returns a closure that
does only the timed work.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .timing import sync


class Refused(Exception):
    """The implementation does not support this case (its own reason)."""


class Skipped(Exception):
    """Not run on purpose (memory estimate, time budget, filter)."""


# --------------------------------------------------------------------------- SDPA

def _first_lines(messages, limit: int = 300) -> str:
    seen: list[str] = []
    for m in messages:
        line = str(m).strip().splitlines()[0] if str(m).strip() else ""
        if line and line not in seen:
            seen.append(line)
    return "; ".join(seen)[:limit]


def probe(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """Call ``fn`` once; a RuntimeError (with torch's warnings saying why) -> Refused."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fn()
            sync()
        except torch.cuda.OutOfMemoryError:
            raise
        except (RuntimeError, NotImplementedError, ValueError) as exc:
            reasons = _first_lines([w.message for w in caught])
            why = _first_lines([exc]) + (f" ({reasons})" if reasons else "")
            raise Refused(why[:400]) from exc
    return fn


def sdpa(backend: str | None, q, k, v, *, causal=False, attn_mask=None, scale=None):
    """Closure of F.scaled_dot_product_attention; backend 'flash', 'cudnn' or None (any)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}

    def call():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=causal,
                                              scale=scale, enable_gqa=True)

    if backend is None:
        return probe(call)

    chosen = backends[backend]

    def pinned():
        with sdpa_kernel(chosen):
            return call()

    return probe(pinned)


# --------------------------------------------------------------------------- FlexAttention

_FLEX = None


def compiled_flex():
    """flex_attention compiled once; each new shape or mask is a recompile, so raise the
    recompile limit well above the number of benchmark cases."""
    global _FLEX
    if _FLEX is None:
        import torch._dynamo.config as dynamo_config
        from torch.nn.attention.flex_attention import flex_attention

        for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                     "accumulated_cache_size_limit"):
            if hasattr(dynamo_config, name):
                setattr(dynamo_config, name, max(getattr(dynamo_config, name), 256))
        _FLEX = torch.compile(flex_attention, dynamic=False)
    return _FLEX


def block_mask(mask_mod, batch, heads, n_q, n_k, device):
    from torch.nn.attention.flex_attention import create_block_mask

    return create_block_mask(mask_mod, batch, heads, n_q, n_k, device=device)


def flex_causal_mask(n_q: int, n_k: int, device):
    """Bottom-right aligned causal (the project's convention)."""
    shift = n_k - n_q

    def causal(b, h, q_idx, kv_idx):
        return kv_idx <= q_idx + shift

    return block_mask(causal, None, None, n_q, n_k, device)


def flex_sliding_window_mask(n: int, left: int, device):
    """Causal with a window of `left` keys before each query (issue 23's convention)."""

    def sliding(b, h, q_idx, kv_idx):
        return (kv_idx <= q_idx) & (kv_idx >= q_idx - left)

    return block_mask(sliding, None, None, n, n, device)


def flex_padded_causal_mask(lengths: torch.Tensor, n: int, device):
    """Padded var-len, equal query and key lengths per sequence, causal."""

    def padded_causal(b, h, q_idx, kv_idx):
        length = lengths[b]
        return (q_idx < length) & (kv_idx < length) & (kv_idx <= q_idx)

    return block_mask(padded_causal, lengths.numel(), None, n, n, device)


def flex_document_causal_mask(doc_ids: torch.Tensor, device):
    """Packed sequences: a token sees earlier tokens of its own document."""
    total = doc_ids.numel()

    def document_causal(b, h, q_idx, kv_idx):
        return (doc_ids[q_idx] == doc_ids[kv_idx]) & (kv_idx <= q_idx)

    return block_mask(document_causal, None, None, total, total, device)


def flex(q, k, v, *, mask=None, scale=None):
    fn = compiled_flex()

    def call():
        return fn(q, k, v, block_mask=mask, scale=scale, enable_gqa=True)

    return probe(call)


# --------------------------------------------------------------------------- torch varlen

def varlen_attn_params() -> set[str] | None:
    """Keyword names of torch.nn.attention.varlen.varlen_attn, or None if this torch
    has none."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return set(inspect.signature(varlen_attn).parameters)


def torch_varlen(q, k, v, cu_q, cu_k, max_q, max_k, *, causal=True, scale=None,
                 expand_gqa=False, **extra):
    """FlashAttention varlen through torch (packed [T, H, D]); extra: seqused_k,
    block_table for paged caches, where this torch accepts them.

    Older torch (2.10/2.11) has no enable_gqa: with expand_gqa=True the KV heads are then
    repeated once, untimed (fine for compute-bound prefill; the closure's ``bench_note``
    says so), else the case is refused."""
    params = varlen_attn_params()
    if params is None:
        raise Refused("torch.nn.attention.varlen.varlen_attn is not in this torch")
    from torch.nn.attention.varlen import varlen_attn

    kwargs = {}
    note = ""
    if scale is not None and "scale" in params:
        kwargs["scale"] = scale
    group = q.shape[-2] // k.shape[-2]
    if group > 1:
        if "enable_gqa" in params:
            kwargs["enable_gqa"] = True
        elif expand_gqa:
            k = k.repeat_interleave(group, dim=-2)
            v = v.repeat_interleave(group, dim=-2)
            note = "KV heads pre-expanded (this torch's varlen_attn has no enable_gqa)"
        else:
            raise Refused("varlen_attn in this torch has no enable_gqa")
    if causal:
        if "is_causal" in params:
            kwargs["is_causal"] = True
        elif "window_size" in params:
            kwargs["window_size"] = (-1, 0)
        else:
            raise Refused("varlen_attn in this torch has no causal option")
    for name, value in extra.items():
        if name not in params:
            raise Refused(f"varlen_attn in this torch has no {name}")
        kwargs[name] = value

    def call():
        return varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, **kwargs)

    probe(call)
    call.bench_note = note
    return call


# --------------------------------------------------------------------------- naive

NAIVE_MAX_SCORE_BYTES = 6e9  # scores, masked scores and probabilities must all fit


def naive_attention(q, k, v, *, scale, not_allowed=None, zero_empty_rows=False):
    """The seeds' reference, eager: repeat KV heads, q @ k^T, mask, softmax, @ v, all in
    the input dtype. not_allowed: bool, broadcastable to [B, Hq, Nq, Nk]."""
    group = q.shape[1] // k.shape[1]
    if group > 1:
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    if not_allowed is not None:
        s = s.masked_fill(not_allowed, float("-inf"))
    p = torch.softmax(s, dim=-1)
    if zero_empty_rows:  # a row with no allowed key is NaN after softmax
        p = p.nan_to_num(0.0)
    return torch.matmul(p, v)


def naive(q, k, v, *, scale, allowed=None, zero_empty_rows=False):
    """Closure of naive_attention; the mask is inverted here, once, untimed.
    Skipped when the score matrix would not fit comfortably."""
    batch, heads, n_q, _ = q.shape
    score_bytes = batch * heads * n_q * k.shape[2] * q.element_size()
    if score_bytes > NAIVE_MAX_SCORE_BYTES:
        raise Skipped(f"score matrix alone would take {score_bytes / 1e9:.1f} GB")
    not_allowed = None if allowed is None else ~allowed

    def call():
        return naive_attention(q, k, v, scale=scale, not_allowed=not_allowed,
                               zero_empty_rows=zero_empty_rows)

    return call


# --------------------------------------------------------------------------- gathers

def paged_slots(block_table: torch.Tensor, positions: torch.Tensor, page_size: int):
    """Physical row (page * page_size + offset) of logical positions.

    block_table int32 [B, max_pages]; positions int64 [B, ...] -> int64 like positions.
    """
    batch = positions.shape[0]
    flat = positions.reshape(batch, -1)
    pages = block_table.long().gather(1, flat // page_size)
    return (pages * page_size + flat % page_size).reshape(positions.shape)


def gather_paged_dense(k_cache, block_table, n: int):
    """[num_pages, P, Hkv, D] -> [B, Hkv, n, D] (positions 0..n-1 of every sequence)."""
    page_size, heads, dim = k_cache.shape[1:]
    positions = torch.arange(n, device=k_cache.device).expand(block_table.shape[0], n)
    slots = paged_slots(block_table, positions, page_size)
    return k_cache.reshape(-1, heads, dim)[slots].transpose(1, 2)


def packed_slots(block_table: torch.Tensor, lengths, page_size: int) -> torch.Tensor:
    """int64 [sum(lengths)]: physical rows of tokens 0..lengths[b]-1 of every sequence b,
    sequence after sequence (the packed var-len order)."""
    rows = []
    for b, n in enumerate(lengths):
        t = torch.arange(n, device=block_table.device)
        rows.append(block_table[b, t // page_size].long() * page_size + t % page_size)
    if not rows:
        return torch.zeros(0, dtype=torch.int64, device=block_table.device)
    return torch.cat(rows)


def gather_paged_packed(k_cache, slots):
    """[num_pages, P, Hkv, D] cache, rows from packed_slots -> [len(slots), Hkv, D]."""
    return k_cache.reshape(-1, *k_cache.shape[2:])[slots]


def gather_sparse(k, indices):
    """k [B, Hkv, N, D], indices int32 [B, Hkv, K] (-1 clamped to 0) -> [B, Hkv, K, D]."""
    idx = indices.clamp(min=0).long().unsqueeze(-1).expand(-1, -1, -1, k.shape[-1])
    return torch.gather(k, 2, idx)


def gather_sparse_paged(k_cache, block_table, indices):
    """Cache [num_pages, P, Hkv, D], indices [B, Hkv, K] -> [B, Hkv, K, D]."""
    page_size, heads, dim = k_cache.shape[1:]
    slots = paged_slots(block_table, indices.clamp(min=0).long(), page_size)
    head_ids = torch.arange(heads, device=k_cache.device).view(1, heads, 1)
    return k_cache.reshape(-1, heads, dim)[slots, head_ids]


# --------------------------------------------------------------------------- FlashInfer

FLASHINFER_WORKSPACE_BYTES = 128 * 1024 * 1024  # the size FlashInfer's docs recommend


def flashinfer_paged_prefill(q, k_cache, v_cache, block_table, cu_seqlens_q, seq_lens, *,
                             causal=True, scale=None):
    """FlashInfer's batch prefill over a paged cache, planned once (untimed), then run.

    q packed [Tq, Hq, D]; caches [num_pages, P, Hkv, D] (FlashInfer's "NHD" layout, passed
    as a (k, v) tuple); FlashInfer's page table is CSR: indptr into a flat list of page
    ids, and the last page's fill (1..P). Its causal mask is bottom-right aligned, as
    ours (query i of a sequence sees keys j <= kv_len - qo_len + i). Skipped when
    flashinfer does not import; plan() (>= 0.2) or begin_forward() (older)."""
    try:
        import flashinfer
    except Exception as exc:  # not installed, or built for another torch/CUDA
        raise Skipped(f"flashinfer does not import ({type(exc).__name__}: "
                      f"{_first_lines([exc], 160)})") from exc
    num_q_heads, head_dim = q.shape[1], q.shape[2]
    page_size, num_kv_heads = k_cache.shape[1], k_cache.shape[2]
    lens = [int(n) for n in seq_lens.tolist()]
    if any(n == 0 for n in lens):
        raise Refused("FlashInfer's page table needs at least one page per sequence")
    pages = [-(-n // page_size) for n in lens]
    device = q.device
    indptr = torch.tensor([0, *_cumsum(pages)], dtype=torch.int32, device=device)
    indices = torch.cat([block_table[b, :count] for b, count in enumerate(pages)]).to(
        torch.int32).contiguous()
    last = torch.tensor([n - (count - 1) * page_size for n, count in zip(lens, pages, strict=True)],
                        dtype=torch.int32, device=device)
    workspace = torch.zeros(FLASHINFER_WORKSPACE_BYTES, dtype=torch.uint8, device=device)
    wrapper = flashinfer.BatchPrefillWithPagedKVCacheWrapper(workspace, "NHD")
    cache = (k_cache, v_cache)
    common = (cu_seqlens_q.to(torch.int32), indptr, indices, last, num_q_heads, num_kv_heads,
              head_dim, page_size)
    try:
        if hasattr(wrapper, "plan"):
            wrapper.plan(*common, **_accepted(wrapper.plan, causal=bool(causal),
                                              sm_scale=scale, q_data_type=q.dtype,
                                              kv_data_type=k_cache.dtype))

            def call():
                return wrapper.run(q, cache)
        else:  # flashinfer < 0.2: begin_forward / forward(causal=...)
            wrapper.begin_forward(*common, **_accepted(wrapper.begin_forward,
                                                       q_data_type=q.dtype))

            def call():
                return wrapper.forward(q, cache, causal=bool(causal), sm_scale=scale)
    except (RuntimeError, NotImplementedError, ValueError, TypeError) as exc:
        raise Refused(f"flashinfer plan: {_first_lines([exc])}") from exc
    call = probe(call)
    call.bench_note = f"flashinfer {getattr(flashinfer, '__version__', '?')}, planned untimed"
    return call


def _cumsum(values):
    total, out = 0, []
    for v in values:
        total += v
        out.append(total)
    return out


def _accepted(fn, **kwargs) -> dict:
    """The keyword arguments fn takes (FlashInfer's signatures moved between versions);
    None values are left out so fn's defaults apply."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {k: v for k, v in kwargs.items() if v is not None}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return {k: v for k, v in kwargs.items() if v is not None}
    return {k: v for k, v in kwargs.items() if k in params and v is not None}
