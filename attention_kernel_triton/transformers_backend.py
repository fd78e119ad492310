"""Our kernels as a Hugging Face transformers attention implementation.

    import attention_kernel_triton.transformers_backend as akt_hf
    name = akt_hf.register()                       # "attention_kernel_triton"; idempotent
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation=name)
    model.set_attn_implementation(name)            # or switch an existing model

Prefill, chunked prefill and decode (with or without a KV cache, dynamic or static), GQA,
any head dim the kernels take (16..256), fp16/bf16/fp32, left- or right-padded batches,
and the attention variants of Mistral / Qwen2 / Gemma 2 / Gemma 3 / gpt-oss: causal
sliding windows, logit soft-capping (``softcap``) and attention sinks (``s_aux``).
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
  DynamicCache, decode), or a sliding window that cuts nothing there (``kv_length <=
  sliding_window``). The attention layer then runs the kernels directly on the padded
  tensors (causal from ``is_causal`` / ``module.is_causal``, bottom-right; the layer's
  own sliding window, if it has one, as ``window=(sliding_window - 1, 0)``).
* a boolean ``[B, 1, q_length, kv_length]`` mask (True = attend), which is the exact mask
  (the one sdpa would get, never a shorthand): materialised when it must be (padding
  with causality, a StaticCache whose key tensor is longer than what was written), an
  ``expand`` view when it is only a key-padding mask (bidirectional). The masks this
  module builds carry, as a tensor attribute, the structure they were built from (which
  keys each sequence has, which query rows are real tokens, the window), so that the
  layers skip re-deriving it. ``create_sliding_window_causal_mask``'s mask function,
  ``sliding_window_causal_mask_function(w)`` = ``and_masks(sliding_window_overlay(w),
  causal_mask_function)`` (key kv_idx visible iff ``q_idx - w < kv_idx <= q_idx``, read
  from 5.25; flash attention passes ``window_size=(w - 1, w - 1)`` with causal), is
  recognised exactly (the code objects of its two closures and the captured ``w``; not
  under torch.compile) and built here too: causal with a window of left side ``w - 1``.
* for any other ``mask_function`` (chunked, packed sequences, image overlays,
  block-causal, bidirectional windows, a sliding window combined with anything ...), and
  when queries would lie past the key tensor, transformers' own ``sdpa_mask`` with the
  skips off, i.e. the full boolean mask; the attention layer then checks whether it is
  expressible.

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

* causal: ``mask[b, i, j] == key_ok[b, j] and j <= i + shift[b]``, optionally with a
  sliding window: ``and j >= i + shift[b] - left`` (left inferred from the mask: the
  largest distance from a row's own token to its first key, then verified), or
* full (non-causal): ``mask[b, i, j] == row_ok[b, i] and key_ok[b, j]``

(any set of valid keys per sequence, holes included; one shift per sequence, one window
per mask; a causal row that sees keys must have its own token inside the key tensor).
Anything else (packed sequences, chunked, prefix-LM / block masks, bidirectional
windows, masks that differ per head, additive biases) raises ``NotImplementedError``
naming it: never silently wrong. With a mask, the mask decides the window (as in eager
and sdpa); the layer's ``sliding_window`` is used only when no mask reaches it. Then,
without any assumption about where the padding is:

* q_len 1: the row's keys (window included) are the mask row: a prefix of the cache ->
  ``decode(seq_lens=...)``; one run ending at each row's last key whose start is
  ``last - left`` (clamped at 0) for a common left -> ``decode(seq_lens=, window=(left,
  0))`` (the query sits at seq_len - 1); else ``sparse_decode`` with an index row of the
  row's positions, no window (left padding, holes, a window over holes);
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

Sliding windows with q_len > 1 go through the same three paths with ``window=(left,
0)``. The kernels count the window in positions among the keys they are given: key-tensor
positions for ``prefill``, rank among the sequence's listed keys for ``paged_prefill``
/ ``prefill_varlen``. Both equal the mask's window exactly when each sequence's valid
keys form one contiguous run (left padding, right padding, a cache's unused slots,
transformers' sliding caches), since ranks are then positions minus the run's start;
keys left of every row's window count as valid when that makes the run start at 0 (a
cache that keeps every key then takes the dense path). A window over keys with holes in
the middle is refused ("sliding-window attention over keys with holes"). Windows are
causal only (bidirectional windows are refused).

Soft-capping and sinks are per score / per head, so every path passes them as they are:
``softcap`` (Gemma 2's ``attn_logit_softcapping``, passed by the model as the
``softcap`` kwarg) and ``sinks`` = ``s_aux`` (gpt-oss passes ``s_aux=module.sinks``, one
logit per query head; without ``s_aux`` a tensor ``module.sinks`` is used, as gpt-oss's
eager path does), as float32 [Hq] on q's device.

Query rows whose own token is padding (left-padding rows, which see no key, and
right-padding rows) come back as 0: finite, and they never reach a real token (no real
token attends a padding key). Every real row is exact.

Refused, with ``NotImplementedError`` naming the feature (before any kernel runs):
chunked attention (``config.layer_types`` "chunked_attention", ``attention_chunk_size``:
the kernels have no chunk mask), a sliding window on a non-causal layer or over keys
with holes (above), sinks that are not one float per query head, additive position
biases (``position_bias``; ALiBi-style biases reach us as float masks and are refused as
biases), dropout > 0, attention weights (``output_attentions``), padding-free /
continuous-batching kwargs (``cu_seq_lens_*``, ``block_table``), 2-D or 3-D masks and
BlockMasks reaching the layer. Gradients: a forward with grad enabled works, and
``backward()`` through it raises (the kernels have no backward pass; without the error a
training step would silently not train through attention or ``module.sinks``).
Non-causal attention (``module.is_causal`` False, or a bidirectional mask) is supported.

Under ``torch.compile`` (e.g. generate()'s automatic compile with a static cache on a
GPU) the kernels run as their custom ops; the masked paths read lengths on the host,
which breaks the graph there (Dynamo runs those lines eagerly), and nothing is cached on
tensors. Checked on the CPU with Dynamo's eager backend; not yet with Inductor on a GPU.
"""

from __future__ import annotations

import math
import operator
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
    causal: row i of sequence b sees key j iff keys[b, j] and j <= i + shift[b] (and, with
    a window, j >= i + shift[b] - window); full: every real row sees every valid key.
    rows: the rows computed (the others are 0)."""
    causal: bool
    keys: torch.Tensor  # bool [B, Lk]
    rows: torch.Tensor  # bool [B, Lq]
    shift: torch.Tensor | None = None  # int64 [B] (causal): row i's own token is key i + shift
    window: int | None = None  # causal: a sliding window's left side (None: unbounded)

    def to(self, device) -> _Structure:
        return _Structure(self.causal, self.keys.to(device), self.rows.to(device),
                          None if self.shift is None else self.shift.to(device), self.window)


@dataclass
class _Plan:
    kind: str  # "dense" (no mask), "decode", "sparse", "padded", "varlen", "empty"
    causal: bool = True
    window: tuple | None = None  # the kernels' window=(left, right), or None
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


def _causal_structure(keys: torch.Tensor, shift: torch.Tensor, q_len: int,
                      window: int | None = None) -> _Structure:
    """keys: bool [B, Lk]; shift: int64 [B] (row i's own token is key i + shift)."""
    k_len = keys.shape[1]
    own = torch.arange(q_len, device=keys.device)[None, :] + shift[:, None]
    in_range = (own >= 0) & (own < k_len)
    rows = in_range & keys.gather(1, own.clamp(0, max(k_len - 1, 0))) if k_len else in_range
    return _Structure(True, keys, rows, shift, window)


def _runs(m: torch.Tensor):
    """m: bool [B, L] -> (first, count, one_run): each row's first True (0 if none), its
    number of Trues, and whether they are one contiguous run (True for an empty row)."""
    count = m.sum(1)
    first = m.to(torch.uint8).argmax(1) if m.shape[1] else torch.zeros_like(count)
    pos = torch.arange(m.shape[1], device=m.device)[None, :]
    run = (pos >= first[:, None]) & (pos < (first + count)[:, None])
    return first, count, (m == run).all(1)


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
    own = i[None, :, None] + shift[:, None, None]  # [B, Lq, 1]
    expected = keys[:, None, :] & (j[None, None, :] <= own)
    window = None
    if not bool((keep == expected).all()):
        # a sliding window: row i also needs j >= i + shift - left. A row's first key is
        # at least its window's left edge, so left is the largest (own token - first
        # key); verified like the rest (a smaller one that reproduces the mask is as exact)
        first = keep.to(torch.uint8).argmax(-1)  # [B, Lq]
        window = int(torch.where(row_any, own[..., 0] - first, torch.zeros_like(first)).amax())
        if not bool((keep == (expected & (j[None, None, :] >= own - window))).all()):
            _refuse("this attention mask pattern", "a mask must be causal (optionally with "
                    "a sliding window) or full attention over each sequence's valid "
                    "(non-padding) keys; packed sequences, chunked, prefix-LM, block or "
                    "bidirectional sliding-window masks are not expressible")
    # A row whose own token is a padding key comes back 0 (it never reaches a real token);
    # a row whose own token would lie past the key tensor is no padding, and the kernels
    # cannot place a query there: such a row must see nothing (e.g. |i - j| <= w, a
    # bidirectional window, reads as causal with shift w and window 2w: refused here).
    if bool((row_any & (own[..., 0] >= k_len)).any()):
        _refuse("this attention mask pattern", "query rows that see keys lie past the last "
                "key of a causal diagonal (bidirectional sliding windows and masks aligned "
                "past the key tensor are not expressible)")
    return _causal_structure(keys, shift, q_len, window=window)


def _plan(structure: _Structure, q_len: int, k_len: int) -> _Plan:
    keys, rows = structure.keys, structure.rows
    dev = keys.device
    if k_len == 0:
        return _Plan("empty")
    if q_len == 1:
        # the row's keys are the mask row itself (a window included): no window to pass
        # unless it makes a dense call possible. decode's query sits at seq_len - 1, and
        # window=(left, 0) keeps keys from seq_len - 1 - left on.
        keyset = keys & rows[:, :1]
        first, n, one_run = _runs(keyset)
        end = (first + n).to(torch.int32)  # n == 0: end 0, output 0
        if bool(one_run.all()):
            if bool((first == 0).all()):
                return _Plan("decode", k_lens=end)
            left = int((end.long() - 1 - first).amax())
            if bool((first == (end.long() - 1 - left).clamp(min=0)).all()):
                return _Plan("decode", k_lens=end, window=(left, 0))
        width = max(int(n.max()), 1)
        pos = torch.where(keyset, torch.arange(k_len, device=dev)[None, :], k_len)
        pos = pos.sort(dim=1).values[:, :width]
        pos = torch.where(pos < k_len, pos, -1).to(torch.int32)
        return _Plan("sparse", positions=pos[:, None, :].contiguous())
    window = None
    if structure.window is not None:
        # The kernels count a window in positions among the keys they are given: the
        # padded and dense paths in key-tensor positions, the packed / paged paths in
        # rank among the sequence's valid keys. Both are the mask's window when each
        # sequence's valid keys are one contiguous run (ranks are then positions minus
        # the run's start). Keys left of every row's window (j < shift - left) may count
        # as valid (the mask is the same); that makes the run start at 0 where it can.
        left = structure.window
        j = torch.arange(k_len, device=dev)[None, :]
        widened = keys | (j < (structure.shift - left)[:, None])
        keys = torch.where(_runs(widened)[2][:, None], widened, keys)
        if not bool(_runs(keys)[2].all()):
            _refuse("sliding-window attention over keys with holes", "with a window, each "
                    "sequence's valid (non-padding) keys must be one contiguous run (left "
                    "or right padding, a cache's unused slots); padding in the middle of a "
                    "sequence changes which keys the window counts")
        window = (left, 0)
    nq = rows.sum(1, dtype=torch.int32)
    nk = keys.sum(1, dtype=torch.int32)
    if not bool(nq.any()):
        return _Plan("empty")
    q_prefix = bool((rows == (torch.arange(q_len, device=dev)[None, :] < nq[:, None])).all())
    k_prefix = bool((keys == (torch.arange(k_len, device=dev)[None, :] < nk[:, None])).all())
    if q_prefix and k_prefix:
        # bottom-right on (nq, nk) is the mask's diagonal: shift == nk - nq on real rows
        if bool((nq == q_len).all()) and bool((nk == k_len).all()):
            return _Plan("dense", causal=structure.causal, window=window)
        return _Plan("padded", causal=structure.causal, window=window, q_lens=nq, k_lens=nk)
    zero = torch.zeros(1, dtype=torch.int32, device=dev)
    width = max(int(nk.max()), 1)
    pos = torch.where(keys, torch.arange(k_len, device=dev)[None, :], k_len)
    pos = pos.sort(dim=1).values[:, :width]
    return _Plan("varlen", causal=structure.causal, window=window, k_lens=nk,
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
        return _plan(_structure_from_dense(mask, batch, q_len, k_len).to(device), q_len, k_len)
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
    plan = _plan(structure.to(device), q_len, k_len)
    if cached is None or cached[0] != mask._version:
        cached = (mask._version, {})
        mask._akt_plans = cached
    cached[1][key] = plan
    return plan


# --------------------------------------------------------------------------- mask function


_MASK_CODES: tuple | None = None  # (and_masks' inner code, sliding_window_overlay's)


def _sliding_window_of(mask_function, mu) -> int | None:
    """sliding_window if mask_function is exactly masking_utils'
    ``sliding_window_causal_mask_function(sliding_window)`` (``and_masks(
    sliding_window_overlay(w), causal_mask_function)``: key kv_idx is visible iff
    q_idx - w < kv_idx <= q_idx), else None. Recognised by the code objects of the two
    closures and their captured values, so anything combined with it (an or/and mask
    function, packed sequences) is not mistaken for it."""
    global _MASK_CODES
    if _MASK_CODES is None:
        try:
            _MASK_CODES = (mu.and_masks(mu.causal_mask_function).__code__,
                           mu.sliding_window_overlay(1).__code__)
        except (AttributeError, TypeError):  # another layout: the full mask, checked there
            _MASK_CODES = (None, None)
    if _MASK_CODES[0] is None:
        return None

    def captured(fn, code, name):
        if getattr(fn, "__code__", None) is not code or name not in code.co_freevars:
            return None
        return fn.__closure__[code.co_freevars.index(name)].cell_contents

    parts = captured(mask_function, _MASK_CODES[0], "mask_functions")
    if not isinstance(parts, tuple) or len(parts) != 2 or parts[1] is not mu.causal_mask_function:
        return None
    window = captured(parts[0], _MASK_CODES[1], "sliding_window")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        return None
    return window


def build_mask(batch_size: int, q_length: int, kv_length: int, q_offset=0, kv_offset: int = 0,
               mask_function=None, attention_mask: torch.Tensor | None = None, **kwargs):
    """The AttentionMaskInterface entry (see the module docstring): None, or the exact
    boolean [B, 1, q_length, kv_length] mask (True = attend)."""
    from transformers import masking_utils as mu

    device = kwargs.get("device", attention_mask.device if attention_mask is not None else "cpu")
    causal = mask_function is None or mask_function is mu.causal_mask_function
    full = mask_function is mu.bidirectional_mask_function
    sliding = None
    if not (causal or full) and not torch.compiler.is_compiling():
        sliding = _sliding_window_of(mask_function, mu)
    if (causal or sliding) and int(q_offset) + q_length > int(kv_offset) + kv_length:
        causal, sliding = False, None  # queries past the key tensor: the full mask, checked
    if not (causal or full or sliding):  # chunked, packed, overlays: the plain full mask
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
        # a sliding window of w keeps key positions > q - w, i.e. >= q - left
        left = None if sliding is None else sliding - 1
        # bottom-right causal, no padding (a window that cuts nothing): no mask, unless
        # the model asked for one (allow_is_causal_skip=False: Falcon adds its ALiBi bias
        # to the mask it gets, other models read it themselves), as sdpa_mask does
        if pad is None and q_offset + q_length == kv_offset + kv_length \
                and (left is None or kv_length - 1 <= left) \
                and kwargs.get("allow_is_causal_skip", True):
            return None
        q_pos = torch.arange(q_length, device=device) + q_offset
        k_pos = torch.arange(kv_length, device=device) + kv_offset
        mask = k_pos[None, :] <= q_pos[:, None]
        seen = k_pos <= q_offset + q_length - 1  # keys some query row can see
        if left is not None:
            mask = mask & (k_pos[None, :] >= q_pos[:, None] - left)
            seen = seen & (k_pos >= q_offset - left)
        mask = mask[None, None]
        if pad is not None:
            mask = mask & pad[:, None, None, :]
        mask = mask.expand(batch_size, 1, q_length, kv_length)
        keys = (pad & seen[None, :]) if pad is not None else seen[None, :]
        keys = keys.expand(batch_size, kv_length)
        shift = torch.full((batch_size,), q_offset - kv_offset, dtype=torch.long,
                           device=device)
        structure = _causal_structure(keys, shift, q_length, window=left)
    if not torch.compiler.is_compiling():
        mask._akt_structure = (mask._version, structure)
    return mask


# --------------------------------------------------------------------------- attention


def _layer_options(module, num_q_heads: int, dropout, kwargs):
    """The layer's variants, (sliding_window or None, softcap or None, sinks or None), after
    refusing what the kernels cannot do (before any kernel runs)."""
    config = getattr(module, "config", None)
    layer = getattr(module, "layer_idx", None)
    layer_types = getattr(config, "layer_types", None)
    layer_type = None
    if layer_types is not None and layer is not None and 0 <= layer < len(layer_types):
        layer_type = layer_types[layer]
    if layer_type == "chunked_attention" or getattr(config, "attention_chunk_size", None):
        _refuse("chunked attention", f"layer {layer} (attention_chunk_size="
                f"{getattr(config, 'attention_chunk_size', None)})")
    # sliding window: the kwarg (Mistral, Qwen2, Gemma 2/3, gpt-oss pass it), the module
    # attribute, or config.layer_types; used when no mask reaches the layer (with a mask,
    # the mask decides, as in eager / sdpa)
    window = kwargs.get("sliding_window")
    if window is None:
        window = getattr(module, "sliding_window", None)
    if window is None and layer_type == "sliding_attention":
        window = getattr(config, "sliding_window", None)
        if window is None:
            _refuse("sliding-window attention", f"layer {layer} is a 'sliding_attention' "
                    "layer but neither it nor its config has a sliding_window")
    if window is not None:
        given = window
        try:
            window = None if isinstance(window, bool) else operator.index(window)
        except TypeError:
            window = None
        if window is None or window < 1:
            raise ValueError(f"{NAME}: layer {layer} has sliding_window={given!r}; expected "
                             "an int >= 1")
    softcap = kwargs.get("softcap")
    if softcap is not None:
        softcap = float(softcap)  # the kernels check it: finite and > 0
    sinks = kwargs.get("s_aux")
    if sinks is None:
        sinks = getattr(module, "sinks", None)  # gpt-oss's eager path reads module.sinks
        if sinks is not None and not isinstance(sinks, torch.Tensor):
            _refuse("attention sinks", f"module.sinks is a {type(sinks).__name__}, not a "
                    "tensor of one logit per query head")
    if sinks is not None and (not isinstance(sinks, torch.Tensor) or sinks.numel() != num_q_heads
                              or not sinks.is_floating_point()):
        got = f"{tuple(sinks.shape)} {sinks.dtype}" if isinstance(sinks, torch.Tensor) \
            else type(sinks).__name__
        _refuse("attention sinks", f"s_aux / module.sinks must hold one float logit per "
                f"query head ({num_q_heads}), got {got}")
    if kwargs.get("position_bias") is not None:
        _refuse("additive position biases", "position_bias")
    # DeepSeek-V3.2-style top-k selection: transformers adds it to the mask only for
    # 'eager' and 'sdpa' and passes the selected keys to any other backend instead
    for name in ("indices", "block_indices"):
        if kwargs.get(name) is not None:
            _refuse("sparse (indexed) attention", f"{name} was passed (the layer attends "
                    "only to selected keys)")
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
    return window, softcap, sinks


def attention_forward(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                      attention_mask, dropout: float = 0.0, scaling: float | None = None,
                      is_causal: bool | None = None, **kwargs):
    """The AttentionInterface entry. query [B, Hq, Lq, D], key/value [B, Hkv, Lk, D];
    returns (attn_output [B, Lq, Hq, D], None)."""
    import attention_kernel_triton as akt

    batch, num_q_heads, q_len, head_dim = query.shape
    window, softcap, sinks = _layer_options(module, num_q_heads, dropout, kwargs)
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
        if window is not None and not causal:
            _refuse("sliding-window attention on a non-causal layer",
                    f"sliding_window={window} with is_causal=False")
        plan = _Plan("dense", causal=bool(causal),
                     window=None if window is None else (window - 1, 0))
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

    mods = dict(softcap=softcap)
    if sinks is not None:  # float32 [Hq] on q's device; gradients: see _NoBackward
        mods["sinks"] = sinks.detach().reshape(-1).to(device=query.device,
                                                      dtype=torch.float32).contiguous()
    if query.is_cuda and query.device.index != torch.cuda.current_device():
        with torch.cuda.device(query.device):  # a model spread over several GPUs
            out = _run(akt, plan, query, key, value, scaling, mods)
    else:
        out = _run(akt, plan, query, key, value, scaling, mods)
    if v_dim != head_dim:
        out = out[..., :v_dim]
    inputs = (query, key, value) if sinks is None else (query, key, value, sinks)
    if torch.is_grad_enabled() and any(t.requires_grad for t in inputs):
        out = _NoBackward.apply(out, *inputs)
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


def _run(akt, plan: _Plan, q, k, v, scale: float, mods: dict) -> torch.Tensor:
    batch, num_q_heads, q_len, width = q.shape
    if plan.kind in ("empty", "varlen") or q.numel() == 0 or k.shape[2] == 0:
        out = q.new_zeros(batch, q_len, num_q_heads, width)
    else:
        out = q.new_empty(batch, q_len, num_q_heads, width)
    if q.numel() == 0 or plan.kind == "empty" or k.shape[2] == 0:
        return out
    view = out.transpose(1, 2)  # [B, Hq, Lq, D] view of the [B, Lq, Hq, D] result
    kw = dict(sm_scale=scale, validate=False, window=plan.window, **mods)
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
