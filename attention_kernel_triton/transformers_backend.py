"""Our kernels as a Hugging Face transformers attention implementation.

    import attention_kernel_triton.transformers_backend as akt_hf
    name = akt_hf.register()                       # "attention_kernel_triton"; idempotent
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation=name)
    model.set_attn_implementation(name)            # or switch an existing model

Prefill, chunked prefill and decode (with or without a KV cache, dynamic or static), GQA,
any head dim the kernels take (16..256), fp16/bf16/fp32, left- or right-padded batches.
transformers is imported only inside :func:`register` (it is an optional extra); importing
this package, or this module, imports no transformers.

How the mask reaches us (read from transformers 5.17 and 5.24, the same in both)
--------------------------------------------------------------------------------
A model builds its mask once per forward with ``masking_utils.create_causal_mask`` (or
``create_bidirectional_mask``, ``create_sliding_window_causal_mask`` ...), which calls the
function that ``AttentionMaskInterface`` holds under ``config._attn_implementation`` with
``(batch_size, q_length, kv_length, q_offset, kv_offset, mask_function, attention_mask=the
2-D padding mask, **extras)``, and hands its result to every attention layer. An
implementation *without* an entry there gets ``None`` (``_preprocess_mask_arguments``
exits early: "for TGI/vLLM backends ... we don't need a mask"), which would lose the
padding of a left-padded batch. So :func:`register` also registers :func:`build_mask`,
which returns one of

* ``None``: plain causal attention with no padding whose diagonal is bottom-right aligned
  on the key tensor (``q_offset + q_length == kv_offset + kv_length``: no cache, a
  DynamicCache, decode). The attention layer then runs the kernels directly on the
  padded tensors (causal from ``is_causal`` / ``module.is_causal``, bottom-right).
* a boolean ``[B, 1, q_length, kv_length]`` mask (True = attend), which is the exact mask
  (the one sdpa would get, never a shorthand): materialised when it must be (padding
  with causality, a StaticCache whose key tensor is longer than what was written), an
  ``expand`` view when it is only a key-padding mask (bidirectional). The masks this
  module builds carry, as a tensor attribute, the structure they were built from (which
  keys each sequence has, which query rows are real tokens), so that the layers skip
  re-deriving it.
* for any other ``mask_function`` (sliding window, chunked, packed sequences, image
  overlays, block-causal ...), transformers' own ``sdpa_mask`` with the skips off, i.e.
  the full boolean mask; the attention layer then checks whether it is expressible.

Why not the flash-attention mask function (which returns the 2-D padding mask or None):
it drops ``mask_function`` (a packed-sequence or overlay mask would be computed as plain
causal: silently wrong) and ``q_offset`` (a StaticCache's empty slots must then be cut by
mask length, and a StaticCache with no 2-D mask attends them). Why not ``sdpa_mask``
for everything: its ``None`` means two different things (``is_causal`` upper-left for a
StaticCache's first prefill, bottom-right elsewhere).

What the attention layer does with a mask
-----------------------------------------
Every 4-D mask (ours, or one the user passed to the model: bool, or additive float with
values 0 and <= -1e4) is reduced, once per forward (cached on the mask tensor, keyed by
its version), to a per-sequence structure, and verified to be exactly that structure:

* causal: ``mask[b, i, j] == key_ok[b, j] and j <= i + shift[b]``, or
* full (non-causal): ``mask[b, i, j] == row_ok[b, i] and key_ok[b, j]``

(any set of valid keys per sequence, holes included; one shift per sequence). Anything
else (packed sequences, sliding windows, prefix-LM / block masks, masks that differ per
head, additive biases) raises ``NotImplementedError`` naming it: never silently wrong.
Then, without any assumption about where the padding is:

* q_len 1: the row's keys, a prefix of the cache -> ``decode(seq_lens=...)``, else
  ``sparse_decode`` with an index row of the valid positions (left padding, holes);
* q_len > 1, keys and real query rows both prefixes (right padding, StaticCache) ->
  ``prefill(seq_lens=, kv_seq_lens=)`` in place on the padded tensors;
* otherwise (left padding, holes, prefill on top of a cache) the real query rows are
  packed and ``paged_prefill`` reads the keys where they lie: the layer's K/V tensor
  [B, Hkv, Lk, D] is a paged cache of one-token pages (page b * (batch stride / row
  stride) + j is key j of sequence b) and each sequence's table row lists its valid
  key positions, so no K/V row is copied. The rows are scattered back. This keeps the
  causal mask exact: the real query rows of a sequence are its last valid keys, so
  bottom-right alignment on (query rows, valid keys) is the mask's diagonal. A K/V
  tensor whose batch stride is not a multiple of its row stride (or a full mask with
  more real rows than keys) packs the keys too and runs ``prefill_varlen``.

Query rows whose own token is padding (left-padding rows, which see no key, and
right-padding rows) come back as 0: finite, and they never reach a real token (no real
token attends a padding key). Every real row is exact.

Refused, with ``NotImplementedError`` naming the feature (before any kernel runs):
sliding-window or chunked attention on the layer (``sliding_window`` argument or module
attribute, ``config.layer_types``, ``attention_chunk_size``), logit soft-capping
(``softcap``), attention sinks (``s_aux`` / ``module.sinks``), additive position biases
(``position_bias``), dropout > 0, attention weights (``output_attentions``),
padding-free / continuous-batching kwargs (``cu_seq_lens_*``, ``block_table``), 2-D or
3-D masks and BlockMasks reaching the layer. Gradients: a forward with grad enabled
works, and ``backward()`` through it raises (the kernels have no backward pass; without
the error a training step would silently not train through attention). Non-causal
attention (``module.is_causal`` False, or a bidirectional mask) is supported.

Under ``torch.compile`` (e.g. generate()'s automatic compile with a static cache on a
GPU) the kernels run as their custom ops; the masked paths read lengths on the host,
which breaks the graph there (Dynamo runs those lines eagerly), and nothing is cached on
tensors. Checked on the CPU with Dynamo's eager backend; not yet with Inductor on a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

NAME = "attention_kernel_triton"

# float masks: a value <= this is "masked" (transformers writes finfo(dtype).min). exp()
# of it underflows to 0 in every float format once any key of the row is unmasked, so
# the softmax is the same as with -inf; anything between it and 0 is an additive bias.
_MASKED_BELOW = -1.0e4


class UnsupportedFeatureError(NotImplementedError):
    """A transformers attention feature this backend does not implement."""


def _refuse(feature: str, detail: str = "") -> None:
    raise UnsupportedFeatureError(
        f"{NAME} attention does not support {feature}{': ' + detail if detail else ''}. "
        f"Use attn_implementation='sdpa' or 'eager' for this model or call.")


# --------------------------------------------------------------------------- structure


@dataclass
class _Structure:
    """Which keys each sequence attends and which query rows are real tokens.
    causal: row i of sequence b sees key j iff keys[b, j] and j <= i + shift[b];
    full: every real row sees every valid key. rows: the rows computed (the others are 0)."""
    causal: bool
    keys: torch.Tensor  # bool [B, Lk]
    rows: torch.Tensor  # bool [B, Lq]


@dataclass
class _Plan:
    kind: str  # "dense" (no mask), "decode", "sparse", "padded", "varlen", "empty"
    causal: bool = True
    q_lens: torch.Tensor | None = None  # int32 [B]
    k_lens: torch.Tensor | None = None  # int32 [B]
    positions: torch.Tensor | None = None  # int32 [B, 1, K] (sparse)
    q_rows: tuple | None = None  # (batch, row) int64 index tensors of the packed queries
    k_rows: tuple | None = None
    cu_q: torch.Tensor | None = None
    cu_k: torch.Tensor | None = None
    max_q: int = 0
    max_k: int = 0
    k_pos: torch.Tensor | None = None  # int32 [B, max(max_k, 1)]: valid key positions
    pages: bool = False  # "varlen" through paged_prefill (every sequence: rows <= keys)
    _indices: dict = field(default_factory=dict)  # Hkv -> int32 [B, Hkv, K]
    _tables: dict = field(default_factory=dict)  # sequence stride in rows -> block table

    def table(self, rows_per_sequence: int) -> torch.Tensor:
        """block_table of the one-token-page view: key t of sequence b is page
        b * rows_per_sequence + k_pos[b, t]."""
        if rows_per_sequence not in self._tables:
            b = torch.arange(self.k_pos.shape[0], device=self.k_pos.device)[:, None]
            self._tables[rows_per_sequence] = (b * rows_per_sequence + self.k_pos).to(
                torch.int32).contiguous()
        return self._tables[rows_per_sequence]

    def indices(self, num_kv_heads: int) -> torch.Tensor:
        if num_kv_heads not in self._indices:
            b, _, k = self.positions.shape
            self._indices[num_kv_heads] = self.positions.expand(b, num_kv_heads, k).contiguous()
        return self._indices[num_kv_heads]


def _causal_structure(keys: torch.Tensor, shift: torch.Tensor, q_len: int) -> _Structure:
    """keys: bool [B, Lk]; shift: int64 [B] (row i's own token is key i + shift)."""
    k_len = keys.shape[1]
    own = torch.arange(q_len, device=keys.device)[None, :] + shift[:, None]
    in_range = (own >= 0) & (own < k_len)
    rows = in_range & keys.gather(1, own.clamp(0, max(k_len - 1, 0))) if k_len else in_range
    return _Structure(True, keys, rows)


def _structure_from_dense(mask: torch.Tensor, batch: int, q_len: int, k_len: int) -> _Structure:
    """Reduce a 4-D mask to a _Structure and verify it is exactly that, or raise."""
    if mask.dtype == torch.bool:
        keep = mask
    elif mask.is_floating_point():
        bias = (mask != 0) & ~(mask <= _MASKED_BELOW)  # NaN counts as a bias too
        if bool(bias.any()):
            _refuse("additive attention biases", "a float attention mask may hold only 0 "
                    f"(attend) and values <= {_MASKED_BELOW:g} or -inf (masked)")
        keep = mask == 0
    else:
        raise TypeError(f"{NAME}: a 4-D attention mask must be bool (True = attend) or "
                        f"float (additive), got {mask.dtype}")
    mb, mh, mq, mk = keep.shape
    if mk != k_len or mq not in (1, q_len) or mb not in (1, batch):
        raise ValueError(f"{NAME}: attention mask of shape {tuple(mask.shape)} does not fit "
                         f"batch {batch}, {q_len} queries and {k_len} keys")
    if mh != 1:
        if not bool((keep == keep[:, :1]).all()):
            _refuse("attention masks that differ between heads")
        keep = keep[:, :1]
    keep = keep[:, 0].expand(batch, q_len, k_len)
    keys = keep.any(1)  # [B, Lk]: attended by some row
    row_any = keep.any(2)  # [B, Lq]
    if bool((keep == (row_any[:, :, None] & keys[:, None, :])).all()):
        return _Structure(False, keys, row_any)  # every real row sees the same keys
    # causal: a real row's last key is its own token (i + shift); other rows' last key is
    # earlier, so the shift is the largest (last key - row) over rows that see a key.
    j = torch.arange(k_len, device=keep.device)
    i = torch.arange(q_len, device=keep.device)
    last = (k_len - 1) - keep.to(torch.uint8).flip(-1).argmax(-1)  # [B, Lq]
    low = -(q_len + k_len + 1)
    shift = torch.where(row_any, last - i[None, :], torch.full_like(last, low)).amax(1)
    expected = keys[:, None, :] & (j[None, None, :] <= i[None, :, None] + shift[:, None, None])
    if bool((keep == expected).all()):
        return _causal_structure(keys, shift, q_len)
    _refuse("this attention mask pattern", "a mask must be causal or full attention over "
            "each sequence's valid (non-padding) keys; packed sequences, sliding windows, "
            "chunked, prefix-LM or block masks are not expressible")


def _plan(structure: _Structure, q_len: int, k_len: int) -> _Plan:
    keys, rows = structure.keys, structure.rows
    dev = keys.device
    if q_len == 1:
        keyset = keys & rows[:, :1]
        n = keyset.sum(1, dtype=torch.int32)
        prefix = torch.arange(k_len, device=dev)[None, :] < n[:, None]
        if bool((keyset == prefix).all()):
            return _Plan("decode", k_lens=n)
        width = max(int(n.max()), 1)
        pos = torch.where(keyset, torch.arange(k_len, device=dev)[None, :], k_len)
        pos = pos.sort(dim=1).values[:, :width]
        pos = torch.where(pos < k_len, pos, -1).to(torch.int32)
        return _Plan("sparse", positions=pos[:, None, :].contiguous())
    nq = rows.sum(1, dtype=torch.int32)
    nk = keys.sum(1, dtype=torch.int32)
    if not bool(nq.any()):
        return _Plan("empty")
    q_prefix = bool((rows == (torch.arange(q_len, device=dev)[None, :] < nq[:, None])).all())
    k_prefix = bool((keys == (torch.arange(k_len, device=dev)[None, :] < nk[:, None])).all())
    if q_prefix and k_prefix:
        # bottom-right on (nq, nk) is the mask's diagonal: shift == nk - nq on real rows
        if bool((nq == q_len).all()) and bool((nk == k_len).all()):
            return _Plan("dense", causal=structure.causal)
        return _Plan("padded", causal=structure.causal, q_lens=nq, k_lens=nk)
    zero = torch.zeros(1, dtype=torch.int32, device=dev)
    width = max(int(nk.max()), 1)
    pos = torch.where(keys, torch.arange(k_len, device=dev)[None, :], k_len)
    pos = pos.sort(dim=1).values[:, :width]
    return _Plan("varlen", causal=structure.causal, k_lens=nk,
                 k_pos=torch.where(pos < k_len, pos, 0).to(torch.int32),
                 pages=structure.causal or bool((nq <= nk).all()),
                 q_rows=tuple(rows.nonzero(as_tuple=True)),
                 k_rows=tuple(keys.nonzero(as_tuple=True)),
                 cu_q=torch.cat([zero, nq.cumsum(0, dtype=torch.int32)]),
                 cu_k=torch.cat([zero, nk.cumsum(0, dtype=torch.int32)]),
                 max_q=int(nq.max()), max_k=int(nk.max()))


def _plan_for_mask(mask: torch.Tensor, batch: int, q_len: int, k_len: int,
                   device: torch.device) -> _Plan:
    """The plan of a 4-D mask, computed once and cached on the tensor (all layers of a
    forward get the same mask object)."""
    if torch.compiler.is_compiling():  # no tensor attributes under Dynamo: plain values
        structure = _structure_from_dense(mask, batch, q_len, k_len)
        return _plan(_Structure(structure.causal, structure.keys.to(device),
                                structure.rows.to(device)), q_len, k_len)
    key = (batch, q_len, k_len, str(device))
    cached = getattr(mask, "_akt_plans", None)
    if cached is not None and cached[0] == mask._version and key in cached[1]:
        return cached[1][key]
    hint = getattr(mask, "_akt_structure", None)
    if hint is not None and hint[0] == mask._version and hint[1].keys.shape == (batch, k_len) \
            and hint[1].rows.shape == (batch, q_len):
        structure = hint[1]
    else:
        structure = _structure_from_dense(mask, batch, q_len, k_len)
    structure = _Structure(structure.causal, structure.keys.to(device),
                           structure.rows.to(device))
    plan = _plan(structure, q_len, k_len)
    if cached is None or cached[0] != mask._version:
        cached = (mask._version, {})
        mask._akt_plans = cached
    cached[1][key] = plan
    return plan


# --------------------------------------------------------------------------- mask function


def build_mask(batch_size: int, q_length: int, kv_length: int, q_offset=0, kv_offset: int = 0,
               mask_function=None, attention_mask: torch.Tensor | None = None, **kwargs):
    """The AttentionMaskInterface entry (see the module docstring): None, or the exact
    boolean [B, 1, q_length, kv_length] mask (True = attend)."""
    from transformers import masking_utils as mu

    device = kwargs.get("device", attention_mask.device if attention_mask is not None else "cpu")
    causal = mask_function is None or mask_function is mu.causal_mask_function
    full = mask_function is mu.bidirectional_mask_function
    if not (causal or full):  # sliding, chunked, packed, overlays: the plain full mask
        extra = {k: v for k, v in kwargs.items()
                 if k not in ("allow_is_causal_skip", "allow_is_bidirectional_skip", "device")}
        return mu.sdpa_mask(batch_size=batch_size, q_length=q_length, kv_length=kv_length,
                            q_offset=q_offset, kv_offset=kv_offset, mask_function=mask_function,
                            attention_mask=attention_mask, allow_is_causal_skip=False,
                            allow_is_bidirectional_skip=False, device=device, **extra)
    q_offset, kv_offset = int(q_offset), int(kv_offset)  # a StaticCache's is a tensor
    pad = None  # bool [B, kv_length]: key j (position kv_offset + j) is a real token
    if attention_mask is not None:
        am = attention_mask.to(device=device, dtype=torch.bool)
        end = kv_offset + kv_length
        if am.shape[-1] < end:  # a StaticCache's slots past what was written
            am = torch.nn.functional.pad(am, (0, end - am.shape[-1]), value=False)
        pad = am[:, kv_offset:end]
        if bool(pad.all()):
            pad = None
    if full:
        keys = pad if pad is not None else torch.ones(1, kv_length, dtype=torch.bool,
                                                      device=device)
        keys = keys.expand(batch_size, kv_length)
        mask = keys[:, None, None, :].expand(batch_size, 1, q_length, kv_length)
        rows = keys.any(1, keepdim=True).expand(batch_size, q_length)
        structure = _Structure(False, keys, rows)
    else:
        if pad is None and q_offset + q_length == kv_offset + kv_length:
            return None  # bottom-right causal, no padding: the kernels' own convention
        q_pos = torch.arange(q_length, device=device) + q_offset
        k_pos = torch.arange(kv_length, device=device) + kv_offset
        mask = (k_pos[None, :] <= q_pos[:, None])[None, None]
        if pad is not None:
            mask = mask & pad[:, None, None, :]
        mask = mask.expand(batch_size, 1, q_length, kv_length)
        seen = k_pos <= q_offset + q_length - 1  # keys some query row can see
        keys = (pad & seen[None, :]) if pad is not None else seen[None, :]
        keys = keys.expand(batch_size, kv_length)
        shift = torch.full((batch_size,), q_offset - kv_offset, dtype=torch.long,
                           device=device)
        structure = _causal_structure(keys, shift, q_length)
    if not torch.compiler.is_compiling():
        mask._akt_structure = (mask._version, structure)
    return mask


# --------------------------------------------------------------------------- attention


def _check_supported(module, dropout, kwargs) -> None:
    config = getattr(module, "config", None)
    layer = getattr(module, "layer_idx", None)
    window = kwargs.get("sliding_window")
    if window is None:
        window = getattr(module, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    layer_type = None
    if layer_types is not None and layer is not None and 0 <= layer < len(layer_types):
        layer_type = layer_types[layer]
    if window is not None or layer_type == "sliding_attention":
        _refuse("sliding-window attention", f"layer {layer} has sliding_window="
                f"{window if window is not None else getattr(config, 'sliding_window', None)}")
    if layer_type == "chunked_attention" or getattr(config, "attention_chunk_size", None):
        _refuse("chunked attention", f"layer {layer} (attention_chunk_size="
                f"{getattr(config, 'attention_chunk_size', None)})")
    if kwargs.get("softcap") is not None:
        _refuse("logit soft-capping", f"softcap={kwargs['softcap']} (attn_logit_softcapping)")
    if kwargs.get("s_aux") is not None or getattr(module, "sinks", None) is not None:
        _refuse("attention sinks", "module.sinks / s_aux")
    if kwargs.get("position_bias") is not None:
        _refuse("additive position biases", "position_bias")
    if dropout:
        _refuse("attention dropout", f"dropout={dropout} (the module is in training mode "
                "with attention_dropout > 0; call model.eval() or set attention_dropout=0)")
    want_weights = kwargs["output_attentions"] if "output_attentions" in kwargs \
        else getattr(config, "output_attentions", False)
    if want_weights:
        _refuse("returning attention weights", "output_attentions=True")
    for name in ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k",
                 "block_table"):
        if kwargs.get(name) is not None:
            _refuse("padding-free / continuous-batching inputs", f"{name} was passed")


def attention_forward(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask, dropout: float = 0.0, scaling: float | None = None,
                      is_causal: bool | None = None, **kwargs):
    """The AttentionInterface entry. query [B, Hq, Lq, D], key/value [B, Hkv, Lk, D];
    returns (attn_output [B, Lq, Hq, D], None)."""
    import attention_kernel_triton as akt

    _check_supported(module, dropout, kwargs)
    batch, num_q_heads, q_len, head_dim = query.shape
    k_len = key.shape[2]
    if key.shape[-1] != head_dim:
        raise ValueError(f"{NAME}: query and key head dims differ ({head_dim} vs "
                         f"{key.shape[-1]})")
    if scaling is None:
        scaling = 1.0 / math.sqrt(head_dim)
    v_dim = value.shape[-1]
    if v_dim != head_dim:  # e.g. MLA: pad the narrower side with zeros (exact), crop below
        width = max(v_dim, head_dim)
        pad = torch.nn.functional.pad
        query, key = pad(query, (0, width - head_dim)), pad(key, (0, width - head_dim))
        value = pad(value, (0, width - v_dim))

    if attention_mask is None:
        causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
        plan = _Plan("dense", causal=bool(causal))
    elif isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 4:
        plan = _plan_for_mask(attention_mask, batch, q_len, k_len, query.device)
    elif isinstance(attention_mask, torch.Tensor):
        raise NotImplementedError(
            f"{NAME}: got a {attention_mask.dim()}-D attention mask in the attention layer; "
            "this backend takes the 4-D masks its registered mask function builds (call "
            "attention_kernel_triton.transformers_backend.register() before loading the "
            "model) or 4-D bool/float masks")
    else:
        raise NotImplementedError(f"{NAME}: an attention_mask of type "
                                  f"{type(attention_mask).__name__} is not supported")

    if query.is_cuda and query.device.index != torch.cuda.current_device():
        with torch.cuda.device(query.device):  # a model spread over several GPUs
            out = _run(akt, plan, query, key, value, scaling)
    else:
        out = _run(akt, plan, query, key, value, scaling)
    if v_dim != head_dim:
        out = out[..., :v_dim]
    if torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value)):
        out = _NoBackward.apply(out, query, key, value)
    return out, None


class _NoBackward(torch.autograd.Function):
    """Forward: the output as is. Backward: a clear error. The kernels have no backward
    pass; without this, a training step would silently leave attention's inputs (and so
    the q/k/v projections) without gradients from this path."""

    @staticmethod
    def forward(ctx, out, *inputs):
        return out

    @staticmethod
    def backward(ctx, *grads):
        _refuse("gradients (training)", "the kernels have no backward pass; train with "
                "attn_implementation='sdpa' and switch with model.set_attn_implementation")


def _one_token_pages(t: torch.Tensor):
    """t [B, Hkv, Lk, D] as a paged cache [pages, 1, Hkv, D] of one-token pages, page
    b * m + j holding key j of sequence b (m = batch stride / row stride), and m; None
    when the batch stride is not a multiple of the row stride. The view ends at t's last
    element, so it addresses nothing outside t's storage range."""
    batch, num_kv_heads, k_len, width = t.shape
    s_b, s_h, s_l, _ = t.stride()
    if s_l <= 0 or s_b % s_l or t.stride(-1) != 1:
        return None
    m = s_b // s_l
    pages = (batch - 1) * m + k_len
    return t.as_strided((pages, 1, num_kv_heads, width), (s_l, s_l, s_h, 1)), m


def _run(akt, plan: _Plan, q, k, v, scale: float) -> torch.Tensor:
    batch, num_q_heads, q_len, width = q.shape
    if plan.kind in ("empty", "varlen") or q.numel() == 0 or k.shape[2] == 0:
        out = q.new_zeros(batch, q_len, num_q_heads, width)
    else:
        out = q.new_empty(batch, q_len, num_q_heads, width)
    if q.numel() == 0 or plan.kind == "empty" or k.shape[2] == 0:
        return out
    view = out.transpose(1, 2)  # [B, Hq, Lq, D] view of the [B, Lq, Hq, D] result
    kw = dict(sm_scale=scale, validate=False)
    if q_len == 1 and plan.kind == "dense":
        akt.decode(q, k, v, out=view, **kw)
    elif plan.kind == "dense":
        akt.prefill(q, k, v, causal=plan.causal, out=view, **kw)
    elif plan.kind == "decode":
        akt.decode(q, k, v, seq_lens=plan.k_lens, out=view, **kw)
    elif plan.kind == "sparse":
        akt.sparse_decode(q, k, v, plan.indices(k.shape[1]), out=view, **kw)
    elif plan.kind == "padded":
        akt.prefill(q, k, v, causal=plan.causal, seq_lens=plan.q_lens,
                    kv_seq_lens=plan.k_lens, out=view, **kw)
    elif plan.kind == "varlen":
        qp = q.transpose(1, 2)[plan.q_rows]  # [Tq, Hq, D]
        pages = _one_token_pages(k), _one_token_pages(v)
        if plan.pages and pages[0] is not None and pages[1] is not None \
                and pages[0][1] == pages[1][1]:
            packed = akt.paged_prefill(qp, pages[0][0], pages[1][0], plan.table(pages[0][1]),
                                       plan.cu_q, plan.k_lens, max_seqlen_q=plan.max_q,
                                       causal=plan.causal, **kw)
        else:
            kp = k.transpose(1, 2)[plan.k_rows]  # [Tk, Hkv, D]
            vp = v.transpose(1, 2)[plan.k_rows]
            packed = akt.prefill_varlen(qp, kp, vp, plan.cu_q, plan.cu_k,
                                        max_seqlen_q=plan.max_q, max_seqlen_k=plan.max_k,
                                        causal=plan.causal, **kw)
        out[plan.q_rows] = packed
    else:  # pragma: no cover
        raise AssertionError(plan.kind)
    return out


# --------------------------------------------------------------------------- registration


def register(name: str = NAME) -> str:
    """Register the attention function and its mask function with transformers under
    `name` (idempotent); returns `name`, to pass as ``attn_implementation``."""
    try:
        from transformers.masking_utils import AttentionMaskInterface
        from transformers.modeling_utils import AttentionInterface
    except ImportError as e:  # transformers is an optional extra
        raise ImportError(f"{NAME}.transformers_backend needs transformers>=5 "
                          "(pip install 'attention-kernel-triton[hf]')") from e
    if not isinstance(name, str) or not name or "/" in name or name in (
            "eager", "sdpa", "flex_attention") or name.startswith("flash_attention"):
        raise ValueError(f"name must be a new attention implementation name (no '/', not a "
                         f"built-in one), got {name!r}")
    AttentionInterface.register(name, attention_forward)
    AttentionMaskInterface.register(name, build_mask)
    return name


__all__ = ["NAME", "UnsupportedFeatureError", "attention_forward", "build_mask", "register"]
