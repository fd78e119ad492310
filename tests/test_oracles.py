"""Tests of the oracles themselves, against independent formulas (DESIGN.md, "Oracles").

The kernels are judged by the oracles, so the oracles are judged here by something
simpler still: a per-row softmax written with math.exp over Python floats, hand-built
masks and caches, and the definition's corner cases. Everything is float64 and tiny.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from attention_kernel_triton.oracles import core as oracle_core
from attention_kernel_triton.oracles import reference as oracles
from attention_kernel_triton.oracles.reference import paged_gather

F64 = torch.float64


def _randn(gen, *shape, dtype=F64):
    return torch.randn(shape, generator=gen, dtype=F64).to(dtype)


def _i32(values):
    return torch.tensor(values, dtype=torch.int32)


def loop_attention(q, k, v, allowed, scale):
    """Independent reference: nested Python lists, one softmax per row with math.exp.

    q [B][Hq][Nq][D], k/v [B][Hkv][Nk][D], allowed [B][Hq][Nq][Nk] (bools).
    Returns (out [B][Hq][Nq][D], lse [B][Hq][Nq]); an empty row gives zeros and -inf."""
    n_b, n_hq, n_q, d = len(q), len(q[0]), len(q[0][0]), len(q[0][0][0])
    group = n_hq // len(k[0])
    out = [[[[0.0] * d for _ in range(n_q)] for _ in range(n_hq)] for _ in range(n_b)]
    lse = [[[-math.inf] * n_q for _ in range(n_hq)] for _ in range(n_b)]
    for b in range(n_b):
        for h in range(n_hq):
            kh = h // group
            for i in range(n_q):
                keys = [j for j in range(len(k[b][kh])) if allowed[b][h][i][j]]
                if not keys:
                    continue
                scores = []
                for j in keys:
                    dot = 0.0
                    for x in range(d):
                        dot += q[b][h][i][x] * k[b][kh][j][x]
                    scores.append(dot * scale)
                top = max(scores)
                weights = [math.exp(s - top) for s in scores]
                total = sum(weights)
                lse[b][h][i] = top + math.log(total)
                for x in range(d):
                    acc = 0.0
                    for w, j in zip(weights, keys, strict=True):
                        acc += w * v[b][kh][j][x]
                    out[b][h][i][x] = acc / total
    return out, lse


def _loop(q, k, v, allowed, scale):
    allowed = allowed.expand(q.shape[0], q.shape[1], q.shape[2], k.shape[2])
    out, lse = loop_attention(q.tolist(), k.tolist(), v.tolist(), allowed.tolist(), scale)
    return torch.tensor(out, dtype=F64), torch.tensor(lse, dtype=F64)


def _close(actual, expected, tol=1e-12):
    """Equal within tol (relative to max(1, |expected|)); infinities must match exactly."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    assert not torch.isnan(actual).any(), "NaN in the oracle's result"
    inf = torch.isinf(expected)
    assert torch.equal(torch.isinf(actual), inf)
    assert torch.equal(actual[inf], expected[inf])
    err = (actual[~inf] - expected[~inf]).abs()
    bound = tol * expected[~inf].abs().clamp(min=1.0)
    assert bool((err <= bound).all()), f"max error {err.max().item():.3e}"


def _nan_report(t):
    nan = torch.isnan(t)
    return f"{int(nan.sum())} NaN in out, first at {nan.nonzero()[0].tolist()}" if nan.any() else ""


# ------------------------------------------------------------------------ (a) core vs loop
@st.composite
def dense_cases(draw):
    batch = draw(st.integers(1, 2))
    hkv = draw(st.integers(1, 2))
    group = draw(st.integers(1, 3))
    n_q = draw(st.integers(1, 4))
    n_k = draw(st.integers(1, 5))
    d = draw(st.integers(1, 5))
    density = draw(st.sampled_from([0.0, 0.3, 0.7, 1.0]))
    scale = draw(st.one_of(st.none(), st.floats(0.05, 4.0)))
    value_scale = draw(st.sampled_from([1.0, 10.0, 50.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    return batch, hkv, group, n_q, n_k, d, density, scale, value_scale, seed


@given(dense_cases())
def test_attention_matches_python_softmax_loop(case):
    batch, hkv, group, n_q, n_k, d, density, scale, value_scale, seed = case
    g = torch.Generator().manual_seed(seed)
    q = _randn(g, batch, hkv * group, n_q, d) * value_scale
    k = _randn(g, batch, hkv, n_k, d)
    v = _randn(g, batch, hkv, n_k, d)
    allowed = torch.rand((batch, hkv * group, n_q, n_k), generator=g) < density
    out, lse = oracle_core.attention(q, k, v, allowed, sm_scale=scale)
    assert out.dtype == F64 and lse.dtype == F64
    exp_out, exp_lse = _loop(q, k, v, allowed, 1 / math.sqrt(d) if scale is None else scale)
    _close(out, exp_out)
    _close(lse, exp_lse)


@pytest.mark.parametrize("seed", range(3))
def test_attention_gqa_random_mask(seed):
    """Hq=4, Hkv=2: query heads 0, 1 read KV head 0 and heads 2, 3 read KV head 1."""
    g = torch.Generator().manual_seed(100 + seed)
    q, k, v = _randn(g, 2, 4, 3, 4), _randn(g, 2, 2, 5, 4), _randn(g, 2, 2, 5, 4)
    allowed = torch.rand((2, 4, 3, 5), generator=g) < 0.6
    out, lse = oracle_core.attention(q, k, v, allowed)
    exp_out, exp_lse = _loop(q, k, v, allowed, 0.5)
    _close(out, exp_out)
    _close(lse, exp_lse)
    # GQA equals MHA on repeat-interleaved KV (head h reads KV head h // 2, not h % 2).
    mhak, mhav = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)
    assert torch.equal(oracle_core.attention(q, mhak, mhav, allowed)[0], out)


def test_attention_broadcast_mask():
    """A [B, 1, Nq, Nk] mask applies to every head."""
    g = torch.Generator().manual_seed(7)
    q, k, v = _randn(g, 1, 2, 3, 4), _randn(g, 1, 1, 4, 4), _randn(g, 1, 1, 4, 4)
    mask = _i32([[1, 0, 1, 0], [0, 1, 1, 1], [1, 1, 0, 0]]).bool().view(1, 1, 3, 4)
    out, lse = oracle_core.attention(q, k, v, mask)
    exp_out, exp_lse = _loop(q, k, v, mask, 0.5)
    _close(out, exp_out)
    _close(lse, exp_lse)


def test_lowp_attention_runs_in_input_dtype():
    g = torch.Generator().manual_seed(3)
    q, k, v = (_randn(g, 1, 2, 3, 16, dtype=torch.float16) for _ in range(3))
    allowed = torch.ones(1, 1, 3, 3, dtype=torch.bool)
    out, lse = oracle_core.lowp_attention(q, k, v, allowed)
    assert out.dtype == torch.float16 and lse.dtype == torch.float16
    ref, _ = oracle_core.attention(q, k, v, allowed)
    assert (out.double() - ref).abs().max() < 1e-2


# ------------------------------------------------------------------------ (b) corner cases
def test_empty_row_gives_zero_and_minus_inf():
    g = torch.Generator().manual_seed(11)
    q, k, v = _randn(g, 1, 2, 3, 4) * 30, _randn(g, 1, 1, 4, 4), _randn(g, 1, 1, 4, 4)
    allowed = torch.ones(1, 2, 3, 4, dtype=torch.bool)
    allowed[0, 0, 1] = False  # one empty row
    allowed[0, 1] = False  # a whole head of empty rows
    out, lse = oracle_core.attention(q, k, v, allowed)
    assert not torch.isnan(out).any() and not torch.isnan(lse).any()
    assert torch.equal(out[0, 0, 1], torch.zeros(4, dtype=F64))
    assert torch.equal(out[0, 1], torch.zeros(3, 4, dtype=F64))
    assert lse[0, 0, 1].item() == -math.inf
    assert bool((lse[0, 1] == -math.inf).all())
    assert torch.isfinite(lse[0, 0, [0, 2]]).all() and torch.isfinite(out).all()


def test_all_rows_empty():
    q = torch.ones(2, 1, 2, 4, dtype=F64)
    out, lse = oracle_core.attention(q, q, q, torch.zeros(1, 1, 1, 2, dtype=torch.bool))
    assert torch.equal(out, torch.zeros_like(out))
    assert bool((lse == -math.inf).all())


@pytest.mark.parametrize("j", range(4))
def test_single_allowed_key_gives_its_value_row(j):
    g = torch.Generator().manual_seed(20 + j)
    q, k, v = _randn(g, 1, 1, 1, 8) * 10, _randn(g, 1, 1, 4, 8), _randn(g, 1, 1, 4, 8)
    allowed = torch.zeros(1, 1, 1, 4, dtype=torch.bool)
    allowed[..., j] = True
    out, lse = oracle_core.attention(q, k, v, allowed, sm_scale=0.3)
    assert torch.equal(out[0, 0, 0], v[0, 0, j])  # weight exp(0) = 1 exactly
    score = sum(a * b for a, b in zip(q[0, 0, 0].tolist(), k[0, 0, j].tolist(), strict=True)) * 0.3
    assert lse.item() == pytest.approx(score, rel=1e-13, abs=1e-13)


@pytest.mark.parametrize("offset", [0.0, 800.0])
def test_equal_scores_give_the_mean_of_allowed_values(offset):
    """Identical keys give identical scores (large ones too): the output is the plain
    mean of the allowed value rows, the LSE score + log(count)."""
    g = torch.Generator().manual_seed(5)
    d = 4
    q = torch.full((1, 1, 2, d), 1.0, dtype=F64)
    k = torch.full((1, 1, 5, d), offset / d * math.sqrt(d), dtype=F64)  # score = offset
    v = _randn(g, 1, 1, 5, d)
    allowed = torch.tensor([[1, 0, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool).view(1, 1, 2, 5)
    out, lse = oracle_core.attention(q, k, v, allowed)
    for row, keys in ((0, [0, 2, 3]), (1, [0, 1, 2, 3, 4])):
        mean = [sum(v[0, 0, j, x].item() for j in keys) / len(keys) for x in range(d)]
        # exp(s - lse) carries lse's rounding (~|lse| * eps): 1e-12 covers offset 800.
        _close(out[0, 0, row], torch.tensor(mean, dtype=F64), tol=1e-12)
        assert lse[0, 0, row].item() == pytest.approx(offset + math.log(len(keys)), rel=1e-14)


def test_large_logits_do_not_overflow():
    q = torch.tensor([[[[300.0, 0.0]]]], dtype=F64)
    k = torch.tensor([[[[10.0, 0.0], [9.0, 0.0]]]], dtype=F64)
    v = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]], dtype=F64)
    every = torch.ones(1, 1, 1, 2, dtype=torch.bool)
    out, lse = oracle_core.attention(q, k, v, every, sm_scale=1.0)
    exp_out, exp_lse = _loop(q, k, v, every, 1.0)
    _close(out, exp_out)
    _close(lse, exp_lse)
    assert lse.item() == pytest.approx(3000.0 + math.log1p(math.exp(-300.0)))


# ------------------------------------------------------------------------ (c) causal mask
def _mask(q_len, k_len, n_q=None, n_k=None):
    m = oracle_core.causal_mask(_i32([q_len]), _i32([k_len]), n_q or q_len, n_k or k_len)
    return m[0, 0].int().tolist()


def test_causal_mask_is_bottom_right_aligned():
    assert _mask(2, 4) == [[1, 1, 1, 0],
                           [1, 1, 1, 1]]
    assert _mask(4, 2) == [[0, 0],
                           [0, 0],
                           [1, 0],
                           [1, 1]]
    assert _mask(3, 3) == [[1, 0, 0],
                           [1, 1, 0],
                           [1, 1, 1]]
    assert _mask(1, 5) == [[1, 1, 1, 1, 1]]


def test_causal_mask_per_sequence_lengths():
    """The shift is taken per sequence from its valid lengths, not from Nq and Nk."""
    m = oracle_core.causal_mask(_i32([1, 3]), _i32([3, 2]), 3, 4).int()
    assert m.shape == (2, 1, 3, 4)
    assert m[0, 0].tolist() == [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]]  # shift +2
    assert m[1, 0].tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0]]  # shift -1


def test_length_mask():
    m = oracle_core.length_mask(_i32([1, 2]), _i32([2, 0]), 2, 3).int()
    assert m[0, 0].tolist() == [[1, 1, 0], [0, 0, 0]]
    assert m[1, 0].tolist() == [[0, 0, 0], [0, 0, 0]]


def test_prefill_ref_causal_rows_without_keys_are_empty():
    g = torch.Generator().manual_seed(9)
    q, k, v = _randn(g, 1, 2, 4, 4), _randn(g, 1, 1, 2, 4), _randn(g, 1, 1, 2, 4)
    out, lse = oracles.prefill_ref(q, k, v, causal=True)
    assert torch.equal(out[0, :, :2], torch.zeros(2, 2, 4, dtype=F64))
    assert bool((lse[0, :, :2] == -math.inf).all())
    allowed = torch.tensor([[0, 0], [0, 0], [1, 0], [1, 1]], dtype=torch.bool)
    exp_out, exp_lse = _loop(q, k, v, allowed, 0.5)
    _close(out, exp_out)
    _close(lse, exp_lse)


# ------------------------------------------------------------------------ (d) padding
def _padded_case(seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = _randn(g, 2, 4, 4, 4), _randn(g, 2, 2, 6, 4), _randn(g, 2, 2, 6, 4)
    return q, k, v, _i32([3, 1]), _i32([5, 2])


@pytest.mark.parametrize("causal", [True, False])
def test_prefill_ref_padding_rows_zero_and_valid_rows_per_sequence(causal):
    q, k, v, q_lens, k_lens = _padded_case()
    out, lse = oracles.prefill_ref(q, k, v, causal=causal, seq_lens=q_lens, kv_seq_lens=k_lens)
    for b, (lq, lk) in enumerate(zip(q_lens.tolist(), k_lens.tolist(), strict=True)):
        assert torch.equal(out[b, :, lq:], torch.zeros_like(out[b, :, lq:]))
        assert bool((lse[b, :, lq:] == -math.inf).all())
        qs, ks, vs = q[b:b + 1, :, :lq], k[b:b + 1, :, :lk], v[b:b + 1, :, :lk]
        allowed = torch.ones(lq, lk, dtype=torch.bool)
        if causal:
            allowed = torch.tensor([[j <= i + lk - lq for j in range(lk)] for i in range(lq)])
        exp_out, exp_lse = _loop(qs, ks, vs, allowed, 0.5)
        _close(out[b:b + 1, :, :lq], exp_out)
        _close(lse[b:b + 1, :, :lq], exp_lse)


def test_prefill_ref_kv_lens_default_to_seq_lens():
    q, k, v, q_lens, _ = _padded_case(1)
    k, v = k[:, :, :4], v[:, :, :4]
    a = oracles.prefill_ref(q, k, v, seq_lens=q_lens)
    b = oracles.prefill_ref(q, k, v, seq_lens=q_lens, kv_seq_lens=q_lens)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("poison", ["query-rows", "keys", "values", "keys-and-values"])
@pytest.mark.parametrize("causal", [True, False])
def test_prefill_ref_never_reads_padding(poison, causal):
    """NaN in padding (query rows >= seq_lens, keys/values >= kv_seq_lens) must not reach
    the result: valid rows stay finite and equal, padding rows stay 0 / -inf."""
    q, k, v, q_lens, k_lens = _padded_case(2)
    clean = oracles.prefill_ref(q, k, v, causal=causal, seq_lens=q_lens, kv_seq_lens=k_lens)
    q, k, v = q.clone(), k.clone(), v.clone()
    for b in range(2):
        if poison == "query-rows":
            q[b, :, q_lens[b]:] = math.nan
        if poison in ("keys", "keys-and-values"):
            k[b, :, k_lens[b]:] = math.nan
        if poison in ("values", "keys-and-values"):
            v[b, :, k_lens[b]:] = math.nan
    out, lse = oracles.prefill_ref(q, k, v, causal=causal, seq_lens=q_lens, kv_seq_lens=k_lens)
    assert not torch.isnan(out).any(), _nan_report(out)
    assert not torch.isnan(lse).any()
    assert torch.equal(out, clean[0]) and torch.equal(lse, clean[1])


@pytest.mark.parametrize("oracle", ["decode_ref", "sparse_decode_ref"])
def test_decode_refs_never_read_past_seq_len(oracle):
    """Keys/values past seq_lens (decode) or outside the index set (sparse, with -1
    slots) filled with NaN must not reach the result."""
    g = torch.Generator().manual_seed(4)
    q, k, v = _randn(g, 2, 2, 4), _randn(g, 2, 1, 6, 4), _randn(g, 2, 1, 6, 4)
    lens = _i32([2, 4])
    if oracle == "decode_ref":
        args, kw = (), dict(seq_lens=lens)
    else:
        args, kw = (_i32([[[-1, 3, 1]], [[2, -1, -1]]]),), {}
    clean = getattr(oracles, oracle)(q, k, v, *args, **kw)
    k, v = k.clone(), v.clone()
    if oracle == "decode_ref":
        k[0, :, 2:], v[0, :, 2:], k[1, :, 4:], v[1, :, 4:] = (math.nan,) * 4
    else:
        unread = [[0, 2, 4, 5], [0, 1, 3, 4, 5]]  # includes position 0 behind the -1 slots
        for b, rows in enumerate(unread):
            k[b, :, rows], v[b, :, rows] = math.nan, math.nan
    out, lse = getattr(oracles, oracle)(q, k, v, *args, **kw)
    assert not torch.isnan(out).any(), _nan_report(out)
    assert torch.equal(out, clean[0]) and torch.equal(lse, clean[1])


# ------------------------------------------------------------------------ (e) paged
PAGE = 3
LENS = [5, 7, 0]
TABLE = [[4, 1, -1], [5, 0, 2], [-7, 99, 3]]  # -1, -7, 99 sit past the sequence's last page


def _paged_case(seed=0, hkv=2, d=4):
    """A dense cache [B, Hkv, N=7, D] and the same tokens in a paged cache whose pages are
    permuted; unused slots and the unused page 3 hold NaN."""
    g = torch.Generator().manual_seed(seed)
    dense_k, dense_v = _randn(g, 3, hkv, 7, d), _randn(g, 3, hkv, 7, d)
    k_cache = torch.full((6, PAGE, hkv, d), math.nan, dtype=F64)
    v_cache = torch.full((6, PAGE, hkv, d), math.nan, dtype=F64)
    # Hand placement: token t of sequence b goes to page TABLE[b][t // 3], slot t % 3.
    placement = {(0, 0): (4, 0), (0, 1): (4, 1), (0, 2): (4, 2), (0, 3): (1, 0), (0, 4): (1, 1),
                 (1, 0): (5, 0), (1, 1): (5, 1), (1, 2): (5, 2), (1, 3): (0, 0), (1, 4): (0, 1),
                 (1, 5): (0, 2), (1, 6): (2, 0)}
    for (b, t), (page, slot) in placement.items():
        k_cache[page, slot] = dense_k[b, :, t]
        v_cache[page, slot] = dense_v[b, :, t]
    return dense_k, dense_v, k_cache, v_cache, _i32(TABLE), _i32(LENS)


def test_paged_gather_matches_hand_built_dense_cache():
    dense_k, _, k_cache, _, table, lens = _paged_case()
    gathered = paged_gather(k_cache, table, lens)
    assert gathered.shape == (3, 2, 7, 4)
    for b, n in enumerate(LENS):
        assert torch.equal(gathered[b, :, :n], dense_k[b, :, :n])
        assert torch.equal(gathered[b, :, n:], torch.zeros_like(gathered[b, :, n:]))


@pytest.mark.parametrize("hq", [2, 4])
def test_paged_decode_ref_matches_dense_decode(hq):
    dense_k, dense_v, k_cache, v_cache, table, lens = _paged_case(1)
    q = _randn(torch.Generator().manual_seed(2), 3, hq, 4)
    out, lse = oracles.paged_decode_ref(q, k_cache, v_cache, table, lens)
    assert out.shape == (3, hq, 4) and lse.shape == (3, hq)
    ref_out, ref_lse = oracles.decode_ref(q, dense_k, dense_v, seq_lens=lens)
    _close(out, ref_out, tol=1e-14)
    _close(lse, ref_lse, tol=1e-14)
    allowed = torch.tensor([[j < n for j in range(7)] for n in LENS]).view(3, 1, 1, 7)
    exp_out, exp_lse = _loop(q[:, :, None], dense_k, dense_v, allowed, 0.5)
    _close(out, exp_out[:, :, 0])
    _close(lse, exp_lse[:, :, 0])
    assert torch.equal(out[2], torch.zeros(hq, 4, dtype=F64))  # length 0


def test_decode_ref_4d_query_mirrors_shape():
    g = torch.Generator().manual_seed(6)
    q, k, v = _randn(g, 2, 4, 1, 4), _randn(g, 2, 2, 5, 4), _randn(g, 2, 2, 5, 4)
    out4, lse4 = oracles.decode_ref(q, k, v)
    out3, lse3 = oracles.decode_ref(q[:, :, 0], k, v)
    assert out4.shape == (2, 4, 1, 4) and out3.shape == (2, 4, 4)
    assert torch.equal(out4[:, :, 0], out3) and torch.equal(lse4, lse3)
    _close(out4, oracles.prefill_ref(q, k, v, causal=True)[0])  # last row of prefill


# ------------------------------------------------------------------------ (f) sparse
@pytest.mark.parametrize("with_lens", [False, True])
def test_sparse_every_position_in_order_equals_decode(with_lens):
    g = torch.Generator().manual_seed(8)
    q, k, v = _randn(g, 2, 4, 4), _randn(g, 2, 2, 6, 4), _randn(g, 2, 2, 6, 4)
    lens = _i32([4, 6]) if with_lens else _i32([6, 6])
    idx = torch.tensor([[[t if t < n else -1 for t in range(6)]] * 2 for n in lens.tolist()],
                       dtype=torch.int32)
    out, lse = oracles.sparse_decode_ref(q, k, v, idx, seq_lens=lens)
    ref_out, ref_lse = oracles.decode_ref(q, k, v, seq_lens=lens)
    _close(out, ref_out, tol=1e-14)
    _close(lse, ref_lse, tol=1e-14)


def _hand_softmax(q_row, pairs, scale):
    """out, lse of sum_i w_i v_i / sum_i w_i over (k_row, v_row) pairs (repeats counted)."""
    scores = [scale * sum(a * b for a, b in zip(q_row, kr, strict=True)) for kr, _ in pairs]
    top = max(scores)
    w = [math.exp(s - top) for s in scores]
    out = [sum(wi * vr[x] for wi, (_, vr) in zip(w, pairs, strict=True)) / sum(w)
           for x in range(len(q_row))]
    return out, top + math.log(sum(w))


def test_sparse_duplicates_count_twice():
    g = torch.Generator().manual_seed(12)
    q, k, v = _randn(g, 1, 1, 4) * 3, _randn(g, 1, 1, 5, 4), _randn(g, 1, 1, 5, 4)
    j, m = 3, 1
    krow = lambda t: k[0, 0, t].tolist()  # noqa: E731
    vrow = lambda t: v[0, 0, t].tolist()  # noqa: E731
    qr = q[0, 0].tolist()
    twice = oracles.sparse_decode_ref(q, k, v, _i32([[[j, m, j]]]))
    once = oracles.sparse_decode_ref(q, k, v, _i32([[[j, m, -1]]]))
    exp_twice = _hand_softmax(qr, [(krow(j), vrow(j))] * 2 + [(krow(m), vrow(m))], 0.5)
    exp_once = _hand_softmax(qr, [(krow(j), vrow(j)), (krow(m), vrow(m))], 0.5)
    for (out, lse), (e_out, e_lse) in ((twice, exp_twice), (once, exp_once)):
        _close(out[0, 0], torch.tensor(e_out, dtype=F64))
        assert lse.item() == pytest.approx(e_lse, rel=1e-13, abs=1e-13)
    assert not torch.allclose(twice[0], once[0])
    # Alone, [j, j] is still exactly v_j, with LSE = score + log 2.
    out, lse = oracles.sparse_decode_ref(q, k, v, _i32([[[j, j]]]))
    single, single_lse = oracles.sparse_decode_ref(q, k, v, _i32([[[j]]]))
    _close(out, single, tol=1e-15)
    assert lse.item() == pytest.approx(single_lse.item() + math.log(2), rel=1e-14)


def test_sparse_order_and_minus_one_slots_do_not_matter():
    g = torch.Generator().manual_seed(13)
    q, k, v = _randn(g, 1, 2, 4), _randn(g, 1, 1, 6, 4), _randn(g, 1, 1, 6, 4)
    a = oracles.sparse_decode_ref(q, k, v, _i32([[[0, 2, 5]]]))
    b = oracles.sparse_decode_ref(q, k, v, _i32([[[-1, 5, -1, 0, 2, -1]]]))
    _close(b[0], a[0], tol=1e-14)
    _close(b[1], a[1], tol=1e-14)
    empty = oracles.sparse_decode_ref(q, k, v, _i32([[[-1, -1]]]))
    assert torch.equal(empty[0], torch.zeros_like(empty[0]))
    assert bool((empty[1] == -math.inf).all())


def test_sparse_per_query_head_form():
    """indices [B, Hq, K]: every query head its own set, against the Python loop."""
    g = torch.Generator().manual_seed(14)
    q, k, v = _randn(g, 2, 4, 1, 4), _randn(g, 2, 2, 6, 4), _randn(g, 2, 2, 6, 4)
    sets = [[[0, 3, -1], [5, -1, -1], [1, 2, 4], [-1, -1, -1]],
            [[2, 1, 0], [4, -1, 3], [0, -1, -1], [5, 4, 3]]]
    out, lse = oracles.sparse_decode_ref(q, k, v, _i32(sets))
    allowed = torch.tensor([[[[j in row for j in range(6)]] for row in heads] for heads in sets])
    exp_out, exp_lse = _loop(q, k, v, allowed, 0.5)
    _close(out, exp_out)
    _close(lse, exp_lse[:, :, 0])
    # Identical rows across each query group == the per-KV-head form.
    per_kv = _i32([[[0, 3, 5]] * 2, [[2, -1, 4]] * 2])
    a = oracles.sparse_decode_ref(q, k, v, per_kv)
    b = oracles.sparse_decode_ref(q, k, v, per_kv.repeat_interleave(2, dim=1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_sparse_paged_matches_sparse_dense():
    dense_k, dense_v, k_cache, v_cache, table, lens = _paged_case(3)
    q = _randn(torch.Generator().manual_seed(4), 3, 4, 4)
    idx = _i32([[[4, 0, -1]] * 2, [[6, 6, 2]] * 2, [[-1, -1, -1]] * 2])
    out, lse = oracles.sparse_paged_decode_ref(q, k_cache, v_cache, table, lens, idx)
    ref_out, ref_lse = oracles.sparse_decode_ref(q, dense_k, dense_v, idx)
    _close(out, ref_out, tol=1e-14)
    _close(lse, ref_lse, tol=1e-14)


# ------------------------------------------------------------------------ (g) no mutation
def _all_oracle_calls():
    g = torch.Generator().manual_seed(15)
    f32 = torch.float32
    q4, k4, v4 = _randn(g, 2, 4, 3, 16, dtype=f32), _randn(g, 2, 2, 5, 16, dtype=f32), \
        _randn(g, 2, 2, 5, 16, dtype=f32)
    qd = _randn(g, 2, 4, 16, dtype=f32)
    pk, pv = _randn(g, 4, 3, 2, 16, dtype=f32), _randn(g, 4, 3, 2, 16, dtype=f32)
    table, plens = _i32([[2, 0], [3, -1]]), _i32([5, 2])
    idx = _i32([[[0, -1, 4]] * 2, [[1, 1, -1]] * 2])
    qv, kv, vv = _randn(g, 5, 4, 16, dtype=f32), _randn(g, 6, 2, 16, dtype=f32), \
        _randn(g, 6, 2, 16, dtype=f32)
    mask = torch.rand((2, 4, 3, 5), generator=g) < 0.5
    lens_q, lens_k = _i32([3, 1]), _i32([5, 2])
    return [
        ("attention", oracle_core.attention, (q4, k4, v4, mask), {}),
        ("lowp_attention", oracle_core.lowp_attention, (q4.half(), k4.half(), v4.half(), mask), {}),
        ("causal_mask", oracle_core.causal_mask, (lens_q, lens_k, 3, 5), {}),
        ("length_mask", oracle_core.length_mask, (lens_q, lens_k, 3, 5), {}),
        ("prefill_ref", oracles.prefill_ref, (q4, k4, v4),
         dict(seq_lens=lens_q, kv_seq_lens=lens_k)),
        ("prefill_varlen_ref", oracles.prefill_varlen_ref, (qv, kv, vv, _i32([0, 2, 5])),
         dict(cu_seqlens_k=_i32([0, 4, 6]))),
        ("decode_ref", oracles.decode_ref, (qd, k4, v4), dict(seq_lens=_i32([3, 5]))),
        ("paged_gather", paged_gather, (pk, table, plens), {}),
        ("paged_decode_ref", oracles.paged_decode_ref, (qd, pk, pv, table, plens), {}),
        ("sparse_decode_ref", oracles.sparse_decode_ref, (qd, k4, v4, idx), {}),
        ("sparse_paged_decode_ref", oracles.sparse_paged_decode_ref,
         (qd, pk, pv, table, plens, idx), {}),
        ("paged_prefill_ref", oracles.paged_prefill_ref,
         (qv, pk, pv, table, _i32([0, 2, 3]), plens), {}),
    ]


@pytest.mark.parametrize("call", _all_oracle_calls(), ids=lambda c: c[0])
def test_oracles_never_mutate_inputs(call):
    _, fn, args, kwargs = call
    tensors = [t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)]
    before = [t.clone() for t in tensors]
    fn(*args, **kwargs)
    for t, b in zip(tensors, before, strict=True):
        assert t.dtype == b.dtype and t.shape == b.shape
        assert torch.equal(t, b)


# ------------------------------------------------------------------------ (h) varlen
@pytest.mark.parametrize("causal", [True, False])
def test_prefill_varlen_ref_equals_per_sequence_prefill(causal):
    g = torch.Generator().manual_seed(16)
    cu_q, cu_k = [0, 2, 2, 5], [0, 3, 4, 8]  # the middle sequence has no query
    q, k, v = _randn(g, 6, 4, 4), _randn(g, 8, 2, 4), _randn(g, 8, 2, 4)  # q row 5: no sequence
    out, lse = oracles.prefill_varlen_ref(q, k, v, _i32(cu_q), _i32(cu_k), causal=causal)
    assert out.shape == (6, 4, 4) and lse.shape == (4, 6)
    for b in range(3):
        q0, q1, k0, k1 = cu_q[b], cu_q[b + 1], cu_k[b], cu_k[b + 1]
        ref_out, ref_lse = oracles.prefill_ref(
            q[q0:q1].transpose(0, 1)[None], k[k0:k1].transpose(0, 1)[None],
            v[k0:k1].transpose(0, 1)[None], causal=causal)
        assert torch.equal(out[q0:q1], ref_out[0].transpose(0, 1))
        assert torch.equal(lse[:, q0:q1], ref_lse[0])
    assert torch.equal(out[5], torch.zeros(4, 4, dtype=F64))
    assert bool((lse[:, 5] == -math.inf).all())
    # The same sequences padded into a batch (seq_lens / kv_seq_lens path of prefill_ref).
    qp = torch.zeros(3, 4, 3, 4, dtype=F64)
    kp, vp = torch.zeros(3, 2, 4, 4, dtype=F64), torch.zeros(3, 2, 4, 4, dtype=F64)
    for b in range(3):
        qp[b, :, :cu_q[b + 1] - cu_q[b]] = q[cu_q[b]:cu_q[b + 1]].transpose(0, 1)
        kp[b, :, :cu_k[b + 1] - cu_k[b]] = k[cu_k[b]:cu_k[b + 1]].transpose(0, 1)
        vp[b, :, :cu_k[b + 1] - cu_k[b]] = v[cu_k[b]:cu_k[b + 1]].transpose(0, 1)
    pad_out, pad_lse = oracles.prefill_ref(qp, kp, vp, causal=causal, seq_lens=_i32([2, 0, 3]),
                                           kv_seq_lens=_i32([3, 1, 4]))
    for b in range(3):
        n = cu_q[b + 1] - cu_q[b]
        _close(out[cu_q[b]:cu_q[b + 1]], pad_out[b, :, :n].transpose(0, 1), tol=1e-14)
        _close(lse[:, cu_q[b]:cu_q[b + 1]], pad_lse[b, :, :n], tol=1e-14)
    # ... and against the Python loop, sequence by sequence.
    for b in range(3):
        lq, lk = cu_q[b + 1] - cu_q[b], cu_k[b + 1] - cu_k[b]
        if lq == 0:
            continue
        allowed = torch.tensor([[(j <= i + lk - lq) or not causal for j in range(lk)]
                                for i in range(lq)])
        exp_out, exp_lse = _loop(qp[b:b + 1, :, :lq], kp[b:b + 1, :, :lk],
                                 vp[b:b + 1, :, :lk], allowed, 0.5)
        _close(out[cu_q[b]:cu_q[b + 1]], exp_out[0].transpose(0, 1))
        _close(lse[:, cu_q[b]:cu_q[b + 1]], exp_lse[0])


# ------------------------------------------------------------------------ (i) paged prefill
def _packed(dense, lens):
    """Hand-built dense [B, Hkv, N, D] -> packed [sum(lens), Hkv, D], sequence by sequence."""
    return torch.cat([dense[b, :, :n].transpose(0, 1) for b, n in enumerate(lens)])


@pytest.mark.parametrize("sm_scale", [None, 0.3])
@pytest.mark.parametrize("hq", [2, 4])
@pytest.mark.parametrize("causal", [True, False])
def test_paged_prefill_ref_matches_python_softmax_loop(causal, hq, sm_scale):
    """Sequence 0: its last 2 of 5 tokens are new; sequence 1: all 7; sequence 2: none of
    0. Query i of q_len attends key j iff j <= seq_len - q_len + i (causal). The slack
    row past cu_seqlens_q[-1] and the cache's unused slots hold NaN: never read."""
    dense_k, dense_v, k_cache, v_cache, table, lens = _paged_case(17)
    q_lens, cu = [2, 7, 0], [0, 2, 9, 9]
    q = _randn(torch.Generator().manual_seed(18), 10, hq, 4)
    q[9] = math.nan
    out, lse = oracles.paged_prefill_ref(q, k_cache, v_cache, table, _i32(cu), lens,
                                         causal=causal, sm_scale=sm_scale)
    assert out.shape == (10, hq, 4) and lse.shape == (hq, 10)
    for b, (lq, n) in enumerate(zip(q_lens, LENS, strict=True)):
        if lq == 0:
            continue
        allowed = torch.tensor([[j <= n - lq + i or not causal for j in range(n)]
                                for i in range(lq)])
        exp_out, exp_lse = _loop(q[cu[b]:cu[b + 1]].transpose(0, 1)[None],
                                 dense_k[b:b + 1, :, :n], dense_v[b:b + 1, :, :n], allowed,
                                 0.5 if sm_scale is None else sm_scale)
        _close(out[cu[b]:cu[b + 1]], exp_out[0].transpose(0, 1))
        _close(lse[:, cu[b]:cu[b + 1]], exp_lse[0])
    assert torch.equal(out[9], torch.zeros(hq, 4, dtype=F64))
    assert bool((lse[:, 9] == -math.inf).all())


@pytest.mark.parametrize("causal", [True, False])
def test_paged_prefill_ref_one_new_token_equals_paged_decode(causal):
    """q_len 1: the new token is the context's last and sees all of it, causal or not."""
    _, _, k_cache, v_cache, table, lens = _paged_case(19)
    q = _randn(torch.Generator().manual_seed(20), 2, 4, 4)  # sequence 2 (length 0): no row
    out, lse = oracles.paged_prefill_ref(q, k_cache, v_cache, table, _i32([0, 1, 2, 2]), lens,
                                         causal=causal)
    qd = torch.cat([q, torch.zeros(1, 4, 4, dtype=F64)])
    ref_out, ref_lse = oracles.paged_decode_ref(qd, k_cache, v_cache, table, lens)
    _close(out, ref_out[:2], tol=1e-14)
    _close(lse, ref_lse[:2].transpose(0, 1), tol=1e-14)


@pytest.mark.parametrize("causal", [True, False])
def test_paged_prefill_ref_whole_sequence_equals_prefill_varlen(causal):
    """q_len == seq_len: prefill_varlen over the hand-built dense context, bit for bit."""
    dense_k, dense_v, k_cache, v_cache, table, lens = _paged_case(21)
    cu = _i32([0, 5, 12, 12])
    q = _randn(torch.Generator().manual_seed(22), 12, 4, 4)
    out, lse = oracles.paged_prefill_ref(q, k_cache, v_cache, table, cu, lens, causal=causal)
    ref_out, ref_lse = oracles.prefill_varlen_ref(q, _packed(dense_k, LENS),
                                                  _packed(dense_v, LENS), cu, causal=causal)
    assert torch.equal(out, ref_out) and torch.equal(lse, ref_lse)


@pytest.mark.parametrize("causal", [True, False])
def test_paged_prefill_ref_chunk_equals_last_rows_of_whole_prefill(causal):
    """The last q_len tokens as a chunk give the last q_len rows of the whole sequence's
    prefill (bottom-right causal; non-causal, every row sees the whole context)."""
    _, _, k_cache, v_cache, table, lens = _paged_case(23)
    q_whole = _randn(torch.Generator().manual_seed(24), 12, 2, 4)
    whole = oracles.paged_prefill_ref(q_whole, k_cache, v_cache, table, _i32([0, 5, 12, 12]),
                                      lens, causal=causal)
    rows = [3, 4, 8, 9, 10, 11]  # sequence 0's last 2 tokens, sequence 1's last 4
    out, lse = oracles.paged_prefill_ref(q_whole[rows], k_cache, v_cache, table,
                                         _i32([0, 2, 6, 6]), lens, causal=causal)
    _close(out, whole[0][rows], tol=1e-14)
    _close(lse, whole[1][:, rows], tol=1e-14)


def test_paged_prefill_ref_empty_sequences():
    """Sequences without new tokens (seq_len 4, and seq_len 0) and rows of no sequence:
    every row 0 and -inf, whatever the cache and the table hold."""
    k_cache = torch.full((2, 3, 1, 4), math.nan, dtype=F64)
    q = _randn(torch.Generator().manual_seed(25), 3, 2, 4)
    for lens, table in (([4, 0], [[1, 0], [-5, 77]]), ([0, 0], [[-1, -1], [9, 9]])):
        out, lse = oracles.paged_prefill_ref(q, k_cache, k_cache, _i32(table),
                                             _i32([0, 0, 0]), _i32(lens))
        assert torch.equal(out, torch.zeros(3, 2, 4, dtype=F64))
        assert bool((lse == -math.inf).all())
