"""Shared ``@triton.jit`` helpers used by every kernel family.

* ``online_softmax_step``: one step of the streaming softmax (FlashAttention-2), in
  base 2: scores arrive already multiplied by ``sm_scale * log2(e)``.
* ``finalize``: divides by the running sum and turns ``(m, l)`` into a natural-log LSE;
  rows that saw no key give output 0 and LSE -inf (never NaN).
* ``page_lookup``: logical token -> (page, slot) of a paged cache.
* ``mm``: the one matrix product every kernel uses; exact fp32 (no tf32) for fp32 tiles.
* ``dim_ok``: the head-dim column mask, a compile-time constant when D is a power of two.
* ``aligned``: marks a stride as a multiple of 16 (one flag instead of per-value
  specialisation).
* ``kv_values``: a loaded K/V tile in the dtype of the tensor-core operands (fp8 caches
  are converted, exactly); ``kv_scale``: a KV head's fp8 dequantisation scale.
* The attention variants (kernels/mods.py): ``modded_scores`` (softcap, ALiBi),
  ``in_window`` (sliding window), ``add_sink`` (a sink logit in the denominator),
  ``head_values`` (a per-query-head fp32 vector: sinks, slopes), ``window_tiles`` (a
  query tile's key range and edge tiles under a window).

Reference: Dao, "FlashAttention-2" (2023), Algorithm 1; Triton tutorial 06.
"""

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

import triton
import triton.language as tl
from triton.language.extra.cuda import gdc_launch_dependents

from ._config import interpreting

# log2(e) and ln(2): scores are scaled into base 2 once so the inner loop uses exp2.
LOG2E_HOST = 1.4426950408889634  # the wrappers fold it into qk_scale
LN2 = tl.constexpr(0.6931471805599453)
LOG2E = tl.constexpr(1.4426950408889634)
# The running max's start in the prefill kernels: finite, so a row whose keys so far are
# all masked needs no -inf guard in online_softmax_step (MAY_BE_EMPTY=False).
FLT_MAX_NEG = tl.constexpr(-3.4028234663852886e38)  # the most negative finite float32
# Triton's interpreter converts fp8 through its own tables, which are wrong for e4m3fn's
# NaN (0x7F/0xFF read as +-480) and for e5m2's subnormals (flushed); there the bits are
# decoded by hand (``_fp8_decoded``). On a GPU the hardware converts.
INTERPRET = tl.constexpr(interpreting())


@triton.jit
def aligned(stride, ALIGNED: tl.constexpr):
    """The stride, marked a multiple of 16 elements when the host checked that it is.

    Strides are not specialised per value (that compiles a variant for every new mix of
    divisible and non-divisible strides); this one flag restores what vectorised,
    16-byte loads need to know."""
    if ALIGNED:
        # tl.multiple_of is dropped on scalars; (x // 16) * 16 carries the same fact
        # through the compiler's divisibility analysis at the cost of two scalar ops.
        stride = (stride // 16) * 16
    return stride


@triton.jit
def dim_ok(offs_d, head_dim, EVEN_D: tl.constexpr):
    """[HEAD_DIM_PAD] mask of the head-dim columns that exist.

    With EVEN_D (head_dim == HEAD_DIM_PAD) it is a constant all-true mask: the compiler
    then knows every 8 neighbouring columns share one mask value and keeps loads and
    stores as 16-byte vectors (cp.async, st.global.v4). ``offs_d < head_dim`` with a
    runtime head_dim gives it no such fact, and each element becomes its own 2-byte
    access."""
    if EVEN_D:
        return tl.full([offs_d.shape[0]], 1, tl.int1)
    else:
        return offs_d < head_dim


@triton.jit
def mm(a, b, acc, FP32: tl.constexpr):
    """acc + a @ b with fp32 accumulation; fp32 operands use full IEEE precision."""
    if FP32:
        return tl.dot(a, b, acc, input_precision="ieee")
    else:
        return tl.dot(a, b, acc)


@triton.jit
def online_softmax_step(acc, m_i, l_i, s, v, qk_scale, MAY_BE_EMPTY: tl.constexpr,
                        FP32: tl.constexpr):
    """Fold one key tile into the running state.

    acc: [M, D] fp32   m_i, l_i: [M] fp32 (running max of scaled base-2 logits; sum)
    s:   [M, N] fp32 raw scores q.k, -inf where masked
    v:   [N, D] input dtype
    qk_scale = sm_scale * log2(e) > 0 is applied here, fused into the exponent's
    multiply-add (the exp is the costly part of the loop, not the matmuls).
    MAY_BE_EMPTY: the tile may hold rows with no valid key so far.
    """
    m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
    if MAY_BE_EMPTY:
        # A row that has seen only masked keys keeps m = -inf (decode starts m there;
        # prefill starts at -FLT_MAX and needs no guard); subtracting 0 instead of -inf
        # keeps exp2 at exp2(-inf) = 0 rather than exp2(nan).
        m_sub = tl.where(m_new == float("-inf"), 0.0, m_new)
    else:
        m_sub = m_new
    alpha = tl.exp2(m_i - m_sub)  # [M]
    p = tl.exp2(s * qk_scale - m_sub[:, None])  # [M, N] fp32
    l_i = l_i * alpha + tl.sum(p, 1)
    acc = acc * alpha[:, None]
    acc = mm(p.to(v.dtype), v, acc, FP32)
    return acc, m_new, l_i


@triton.jit
def finalize(acc, m_i, l_i):
    """Normalise the accumulator; return (out [M, D] fp32, lse [M] fp32, natural log)."""
    empty = l_i == 0.0
    l_safe = tl.where(empty, 1.0, l_i)
    out = acc / l_safe[:, None]
    lse = tl.where(empty, float("-inf"), (m_i + tl.log2(l_safe)) * LN2)
    return out, lse


@triton.jit
def page_lookup(table_row_ptr, t, mask, page_size):
    """Physical (page, slot) of logical tokens ``t`` in a paged cache, both int64.

    table_row_ptr: block_table[b, :] (int32); t: [N] int32 logical positions.
    Token t lives at cache[table[t // page_size], t % page_size]. Masked lanes read no
    table entry and get page 0, so table slots past a sequence's end are never read.
    page_size is a runtime value: a constexpr would compile a variant per page size.
    """
    tu = t.to(tl.uint32)  # unsigned: no sign fix-ups in the division (masked lanes may be -1)
    pu = page_size.to(tl.uint32)
    page_idx = tu // pu
    page = tl.load(table_row_ptr + page_idx, mask=mask, other=0)
    return page.to(tl.int64), (tu - page_idx * pu).to(tl.int64)


@triton.jit
def _fp8_decoded(x):
    """fp32 values of an fp8 tile (e4m3fn or e5m2), from its bits: the interpreter's
    conversion, done right (IEEE-style subnormals; e4m3fn has NaN and no inf)."""
    bits = x.to(tl.uint8, bitcast=True).to(tl.int32)
    sign = tl.where(bits >= 128, -1.0, 1.0)
    if x.dtype == tl.float8e4nv:  # 1-4-3, bias 7
        e = (bits >> 3) & 15
        m = (bits & 7).to(tl.float32)
        mag = tl.where(e == 0, m * 0.001953125,  # m x 2^-9
                       (8.0 + m) * tl.exp2((e - 10).to(tl.float32)))
        mag = tl.where((bits & 127) == 127, float("nan"), mag)
    else:  # 1-5-2, bias 15
        e = (bits >> 2) & 31
        m = (bits & 3).to(tl.float32)
        mag = tl.where(e == 0, m * 0.0000152587890625,  # m x 2^-16
                       (4.0 + m) * tl.exp2((e - 17).to(tl.float32)))
        mag = tl.where(e == 31, tl.where(m == 0.0, float("inf"), float("nan")), mag)
    return sign * mag


@triton.jit
def kv_values(x, dtype: tl.constexpr):
    """A loaded K or V tile as tensor-core operands of `dtype` (q's): an fp8 tile is
    converted (exactly: every e4m3fn and e5m2 value is an fp16 and a bf16 value; its scale
    is applied to the scores and the output, not here), any other tile is returned as is."""
    if x.dtype == tl.float8e4nv or x.dtype == tl.float8e5:
        if INTERPRET:
            return _fp8_decoded(x).to(dtype)
        else:
            return x.to(dtype)
    else:
        return x


@triton.jit
def kv_scale(scale_ptr, kv_head, stride, HAS_SCALES: tl.constexpr):
    """KV head `kv_head`'s dequantisation scale (real = stored x scale; stride 0 for one
    scale per tensor); 1.0 without scales."""
    if HAS_SCALES:
        return tl.load(scale_ptr + kv_head * stride)
    else:
        return 1.0


@triton.jit
def tanh(x):
    """tanh in fp32 to a few ulp, without libdevice (the interpreter runs it too): below
    |x| = 1/4 its Taylor series to x^9 (the next term is < 1e-8 of x there); above,
    sign(x) (1 - 2 / (exp(2|x|) + 1)), whose cancellation costs < 3e-7 relative there
    (exp2 overflowing to inf gives +-1). The plain formula alone loses |x| ~ 1e-4 to
    cancellation (relative error ~1e-3), and a huge soft-cap c multiplies that by c.
    A rational fit, x P(x^2) / Q(x^2) (degree 4/4, one reciprocal, no exp2, no branch;
    ~4e-7), was measured slower: 2.152 ms against 1.893 on the fp16 soft-cap prefill row
    (H100, session 19). It puts all its work on the FMA pipe, which is the full one; this
    form puts part of it on MUFU. A NaN stays NaN (both branches give NaN)."""
    a = tl.abs(x)
    # div.full (2 ulp), not IEEE division: a dozen instructions fewer per score
    big = 1.0 - tl.fdiv(tl.full(a.shape, 2.0, tl.float32),
                        tl.exp2(a * 2.8853900817779268) + 1.0)  # 2 log2(e)
    x2 = x * x
    small = x * (1.0 + x2 * (-0.3333333333333333 + x2 * (0.13333333333333333 + x2 * (
        -0.05396825396825397 + x2 * 0.021869488536155203))))
    return tl.where(a < 0.25, small, tl.where(x < 0, -big, big))


@triton.jit
def tanh_approx(x):
    """The hardware's tanh (PTX tanh.approx.f32, sm_75+): one MUFU op, relative error
    about 2^-11. For 16-bit inputs only (kernels/mods.py SOFTCAP_FAST); the interpreter
    cannot run it."""
    return tl.inline_asm_elementwise("tanh.approx.f32 $0, $1;", "=f,f", [x],
                                     dtype=tl.float32, is_pure=True, pack=1)


@triton.jit
def modded_scores(s, q_pos, k_pos, slopes, softcap_in, softcap_out, alibi_scale,
                  SOFTCAP: tl.constexpr, ALIBI: tl.constexpr):
    """Raw scores s [M, N] (q.k) after the soft-cap and the ALiBi bias, still in raw units
    (kernels/mods.py): softcap_out * tanh(s * softcap_in) - slope * alibi_scale *
    |q_pos - k_pos|. q_pos [M] aligned query positions, k_pos [N] key positions, slopes
    [M] fp32. Applied before the mask: a masked score must stay -inf. SOFTCAP: 0 off,
    1 the fp32-accurate tanh, 2 the hardware's (kernels/mods.py SOFTCAP_*)."""
    if SOFTCAP == 2:
        s = softcap_out * tanh_approx(s * softcap_in)
    elif SOFTCAP == 1:
        s = softcap_out * tanh(s * softcap_in)
    if ALIBI:
        dist = tl.abs(q_pos[:, None] - k_pos[None, :]).to(tl.float32)
        s = s - (slopes * alibi_scale)[:, None] * dist
    return s


@triton.jit
def in_window(q_pos, k_pos, win_left, win_right):
    """[M, N]: key position k_pos[n] lies in query q_pos[m]'s window
    [q_pos - win_left, q_pos + win_right] (an unbounded side is mods.UNBOUNDED)."""
    return (k_pos[None, :] >= q_pos[:, None] - win_left) \
        & (k_pos[None, :] <= q_pos[:, None] + win_right)


@triton.jit
def window_tiles(first_al, last_al, hi, mask_from, win_left, win_right,
                 BLOCK_N: tl.constexpr):
    """A query tile's key range under a window. Row r sees keys [r_al - win_left,
    r_al + win_right]; the tile's valid rows sit at aligned positions [first_al, last_al],
    so it needs keys in [first_al - win_left, last_al + win_right] at most. Returns
    (lo, hi, mask_from, mask_below): lo rounded down to a whole tile (tiles stay aligned),
    hi cut at the right edge, and the tiles that may hold a key outside some row's window
    masked: those from the tile holding first_al + win_right + 1 on (mask_from), and those
    starting below last_al - win_left (mask_below). Unbounded sides are mods.UNBOUNDED."""
    lo = tl.maximum(first_al - win_left, 0) // BLOCK_N * BLOCK_N
    hi = tl.maximum(tl.minimum(hi, last_al + win_right + 1), lo)
    mask_from = tl.minimum(mask_from,
                           tl.maximum(first_al + win_right + 1, 0) // BLOCK_N * BLOCK_N)
    return lo, hi, mask_from, last_al - win_left


@triton.jit
def head_values(ptr, heads, mask, ENABLED: tl.constexpr):
    """ptr[heads] (fp32 per query head: sinks, ALiBi slopes); zeros when not ENABLED."""
    if ENABLED:
        return tl.load(ptr + heads, mask=mask, other=0.0)
    else:
        return tl.zeros(heads.shape, dtype=tl.float32)


@triton.jit
def add_sink(acc, m_i, l_i, sink):
    """Fold a sink logit (natural log, [M]; -inf: none) into the running state as one more
    key whose value is 0: it adds exp(sink) to the denominator and nothing to acc. A row
    that saw no key then finalises to output 0 and LSE sink."""
    s2 = sink * LOG2E
    m_new = tl.maximum(m_i, s2)
    m_sub = tl.where(m_new == float("-inf"), 0.0, m_new)  # no key and no sink: stays empty
    alpha = tl.exp2(m_i - m_sub)
    l_i = l_i * alpha + tl.exp2(s2 - m_sub)
    return acc * alpha[:, None], m_new, l_i


@triton.jit
def signal_dependents(pdl, PDL_OK: tl.constexpr):
    """Programmatic dependent launch: let the merge grid be scheduled (it waits for this
    grid's results) once every program of this one has started. pdl: a runtime 0/1 (this
    launch has a dependent); PDL_OK: the device has griddepcontrol (sm_90+), fixed per
    device: ptxas rejects the instruction below sm_90 even in a branch never taken."""
    if PDL_OK:
        if pdl != 0:
            gdc_launch_dependents()
