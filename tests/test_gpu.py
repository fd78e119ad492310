"""GPU-only tests: the seeds' shapes as explicit examples, and caches past 2**31
elements (int32 offsets would overflow there). Too large for the CPU interpreter."""

from dataclasses import replace
from unittest import mock

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import attention_kernel_triton as kernels
from attention_kernel_triton.oracles import reference as oracles
from attention_kernel_triton.strategies.cases import prefill_cases
from tests import sizes
from tests.checks import assert_close_to_oracle, finite_abs_max
from tests.opinfo import GLUON_PREFILL, forced_gluon, gluon_hopper
from tests.properties import check, properties
from tests.seeds import SEED_CASES

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs a CUDA device (GPU-sized shapes)")
# Memory-hungry tests (the seeds' shapes, caches past 2**31 elements, N >= LONG_PREFILL
# with float64 oracles of GBs) take conftest.py's exclusive_gpu: one at a time across
# xdist workers. The Gluon tests at N <= 1024 do not: under a module-wide lock (until
# session 22) their ~20 compile-heavy tests ran one after another and the suite's
# critical path ran past its 520 s call.
exclusive = pytest.mark.usefixtures("exclusive_gpu")


@exclusive
@pytest.mark.gpu
@pytest.mark.parametrize("kernel,case,prop", [
    pytest.param(k, c, p, id=f"{k}-{c.dtype}-{i}-{p}")
    for i, (k, c) in enumerate(SEED_CASES) for p in properties(k, "seeds")])
def test_seed_shapes(kernel, case, prop, device):
    check(kernel, prop, case, device)


def _nan(shape, dtype=torch.float16):
    return torch.full(shape, float("nan"), dtype=dtype, device="cuda")


def _accurate(what, got, args_ref, args_low, lse32=None):
    """The accuracy rule on out and lse; with lse32 (the oracle's LSE computed in fp32 on
    the same inputs) also the fp32 rule for the LSE, as the accuracy property does."""
    (ref_out, ref_lse), (low_out, low_lse) = args_ref, args_low
    out, lse = got
    assert_close_to_oracle(what, out, ref_out, low_out, out.dtype, case=what)
    assert_close_to_oracle(what + " lse", lse, ref_lse, low_lse, out.dtype, case=what, lse=True)
    if lse32 is not None:
        assert_close_to_oracle(what + " lse (fp32 rule)", lse, ref_lse, lse32, torch.float32,
                               case=what, lse=True, max_logit=finite_abs_max(ref_lse))


@exclusive
@pytest.mark.gpu
def test_paged_pages_past_2_32_elements():
    """Used pages sit at the end of a cache of > 2**32 elements; the rest is NaN. There a
    page offset computed in int32 wraps to a small positive offset, inside the cache: a
    silent wrong answer (NaN rows), not a crash, if the kernel got it wrong."""
    g = torch.Generator(device="cuda").manual_seed(0)
    page, hkv, d = 16, 1, 128
    num_pages = (2**32) // (page * hkv * d) + 50_000
    assert 2**32 < (num_pages - 20) * page * hkv * d < 2**32 + 2**31
    kc, vc = _nan((num_pages, page, hkv, d)), _nan((num_pages, page, hkv, d))
    seq_lens = torch.tensor([100, 37], dtype=torch.int32, device="cuda")
    table = torch.full((2, 8), -1, dtype=torch.int32, device="cuda")
    table[0, :7] = torch.arange(num_pages - 7, num_pages, device="cuda").flip(0)
    table[1, :3] = torch.arange(num_pages - 20, num_pages - 17, device="cuda")
    for t in (kc, vc):
        t[num_pages - 20:] = torch.randn(t[num_pages - 20:].shape, generator=g, device="cuda")
    q = torch.randn((2, 4, d), generator=g, device="cuda").half()
    for splits in (1, 4):
        got = kernels.paged_decode(q, kc, vc, table, seq_lens, num_splits=splits,
                                   return_lse=True)
        _accurate(f"paged_decode splits={splits}", got,
                  oracles.paged_decode_ref(q, kc, vc, table, seq_lens),
                  oracles.paged_decode_ref(q, kc, vc, table, seq_lens, dtype=torch.float16))
    # paged prefill over the same pages: 5 and 7 new tokens (the last of each context)
    cu = torch.tensor([0, 5, 12], dtype=torch.int32, device="cuda")
    qp = torch.randn((12, 4, d), generator=g, device="cuda").half()
    for splits in (1, 4):
        got = kernels.paged_prefill(qp, kc, vc, table, cu, seq_lens, max_seqlen_q=7,
                                    num_splits=splits, return_lse=True)
        _accurate(f"paged_prefill splits={splits}", got,
                  oracles.paged_prefill_ref(qp, kc, vc, table, cu, seq_lens),
                  oracles.paged_prefill_ref(qp, kc, vc, table, cu, seq_lens,
                                            dtype=torch.float16))
    idx = torch.randint(0, 37, (2, hkv, 24), generator=g, device="cuda").to(torch.int32)
    got = kernels.sparse_paged_decode(q, kc, vc, table, seq_lens, idx, return_lse=True)
    _accurate("sparse_paged_decode", got,
              oracles.sparse_paged_decode_ref(q, kc, vc, table, seq_lens, idx),
              oracles.sparse_paged_decode_ref(q, kc, vc, table, seq_lens, idx,
                                              dtype=torch.float16))


@exclusive
@pytest.mark.gpu
def test_dense_batch_offsets_past_2_31_elements():
    """k/v [17, 8, 131072, 128]: batch 16 starts past element 2**31."""
    g = torch.Generator(device="cuda").manual_seed(1)
    b, hkv, n, d = 17, 8, 131072, 128
    assert b * hkv * n * d > 2**31
    k, v = _nan((b, hkv, n, d)), _nan((b, hkv, n, d))
    seq_lens = torch.zeros(b, dtype=torch.int32, device="cuda")
    seq_lens[16] = 300
    seq_lens[15] = 5
    for t in (k, v):
        t[15:, :, :300] = torch.randn((2, hkv, 300, d), generator=g, device="cuda")
    q = torch.randn((b, 16, d), generator=g, device="cuda").half()
    got = kernels.decode(q, k, v, seq_lens=seq_lens, return_lse=True)
    sl = slice(15, 17)
    ref = oracles.decode_ref(q[sl], k[sl, :, :300], v[sl, :, :300], seq_lens=seq_lens[sl])
    low = oracles.decode_ref(q[sl], k[sl, :, :300], v[sl, :, :300], seq_lens=seq_lens[sl],
                             dtype=torch.float16)
    _accurate("decode, batch past 2**31", (got[0][sl], got[1][sl]), ref, low)
    assert bool((got[0][:15] == 0).all()) and bool((got[1][:15] == float("-inf")).all())


@exclusive
@pytest.mark.gpu
def test_varlen_rows_past_2_31_elements():
    """Packed keys [Tk, 1, 128] with Tk * 128 > 2**31; the last sequence's keys sit at
    the end."""
    g = torch.Generator(device="cuda").manual_seed(2)
    d, tail = 128, 500
    tk = 2**31 // d + 4096
    k, v = _nan((tk, 1, d)), _nan((tk, 1, d))
    for t in (k, v):
        t[tk - tail:] = torch.randn((tail, 1, d), generator=g, device="cuda")
    q = torch.randn((37, 2, d), generator=g, device="cuda").half()
    cu_q = torch.tensor([0, 0, 37], dtype=torch.int32, device="cuda")
    cu_k = torch.tensor([0, tk - tail, tk], dtype=torch.int32, device="cuda")
    got = kernels.prefill_varlen(q, k, v, cu_q, cu_k, max_seqlen_q=37, return_lse=True)
    ref = oracles.prefill_ref(q.transpose(0, 1)[None], k[tk - tail:].transpose(0, 1)[None],
                              v[tk - tail:].transpose(0, 1)[None], causal=True)
    low = oracles.prefill_ref(q.transpose(0, 1)[None], k[tk - tail:].transpose(0, 1)[None],
                              v[tk - tail:].transpose(0, 1)[None], causal=True,
                              dtype=torch.float16)
    _accurate("prefill_varlen, rows past 2**31",
              (got[0].transpose(0, 1)[None], got[1][None]), ref, low)


@exclusive
@pytest.mark.gpu
@pytest.mark.parametrize("padded", [False, True], ids=["fixed", "padded"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_prefill_long_config(dtype, padded):
    """Query lengths >= LONG_PREFILL take the long-sequence tile config (M128 N128 at
    D128): fixed length, and padded lengths that are not tile multiples with the keys
    past each length NaN (on Hopper every key tile comes through TMA; the one crossing a
    length is loaded moved back to end at it)."""
    from attention_kernel_triton.kernels._config import LONG_PREFILL, PREFILL_LONG, prefill_config

    n, d = LONG_PREFILL + 37, 128
    assert prefill_config(d, dtype, True, n) == PREFILL_LONG[(d, 2)]
    g = torch.Generator(device="cuda").manual_seed(3)
    q = torch.randn((2, 4, n, d), generator=g, device="cuda").to(dtype)
    k = torch.randn((2, 2, n, d), generator=g, device="cuda").to(dtype)
    v = torch.randn((2, 2, n, d), generator=g, device="cuda").to(dtype)
    lens = None
    if padded:
        short = n // 2 + 29  # not a multiple of the 128-row tile, whatever LONG_PREFILL is
        lens = torch.tensor([n, short], dtype=torch.int32, device="cuda")
        for t in (k, v):
            t[1, :, short:] = float("nan")
    got = kernels.prefill(q, k, v, causal=True, seq_lens=lens, return_lse=True)
    _accurate(f"prefill N={n} {dtype} padded={padded}", got,
              oracles.prefill_ref(q, k, v, causal=True, seq_lens=lens),
              oracles.prefill_ref(q, k, v, causal=True, seq_lens=lens, dtype=dtype))


def _gluon_spy():
    """A context that counts the Gluon kernel's launches (the mock wraps the real one)."""
    from attention_kernel_triton.kernels import prefill

    module = prefill._sm90_module()
    return mock.patch.object(module, "launch", wraps=module.launch)


def _qkv128(batch, hq, hkv, n, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    return tuple(torch.randn((batch, h, n, 128), generator=g, device="cuda").to(dtype)
                 for h in (hq, hkv, hkv))


@pytest.mark.gpu
@pytest.mark.skipif(not gluon_hopper(), reason="the Gluon prefill (wgmma, TMA) is Hopper-only")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("n,hq,hkv,batch", [(128, 2, 2, 1), (384, 4, 1, 2), (1024, 8, 2, 1)],
                         ids=["one-tile", "gqa4-b2", "n1024"])
def test_prefill_sm90_gluon(dtype, n, hq, hkv, batch):
    """The Gluon kernel (kernels/prefill_sm90.py), forced at short lengths: every element of
    a NaN-filled out= is written, out and lse match the float64 oracle within the suite's
    bound, and the Triton kernel's result within the same bound. One query tile (only the
    diagonal), GQA 4 with two batches, and eight tiles per pair."""
    from attention_kernel_triton.kernels import tuning

    q, k, v = _qkv128(batch, hq, hkv, n, dtype, seed=n + hq)
    out = _nan(q.shape, dtype)
    with _gluon_spy() as spy:
        with tuning.override(prefill_gluon=True):
            got = kernels.prefill(q, k, v, causal=True, return_lse=True, out=out)
        assert spy.call_count == 1, "the call did not take the Gluon kernel"
        with tuning.override(prefill_gluon=False):
            triton_got = kernels.prefill(q, k, v, causal=True, return_lse=True)
        assert spy.call_count == 1, "tuning.override(prefill_gluon=False) took the Gluon kernel"
    assert got[0] is out and bool(out.isfinite().all()), "out has elements left unwritten"
    ref = oracles.prefill_ref(q, k, v, causal=True)
    low = oracles.prefill_ref(q, k, v, causal=True, dtype=dtype)
    _, lse32 = oracles.prefill_ref(q, k, v, causal=True, dtype=torch.float32)
    _accurate(f"prefill (Gluon) N={n} {dtype}", got, ref, low, lse32)
    _accurate(f"prefill (Triton, same case) N={n} {dtype}", triton_got, ref, low, lse32)


@exclusive
@pytest.mark.gpu
@pytest.mark.skipif(not gluon_hopper(), reason="the Gluon prefill (wgmma, TMA) is Hopper-only")
def test_prefill_sm90_gluon_dispatch():
    """The default rule: a causal call without lengths at N = LONG_PREFILL (a multiple of
    128) takes the Gluon kernel and is accurate, with sinks too (an epilogue term: heads'
    sinks from below every logit to far above them) and with a window (left side 300: the
    first key tile and the next are edge tiles, and tiles left of it are skipped; left side
    129: a query tile's first row reaches one key into the tile before its second row's
    first tile); the same call with N not a multiple of 128, with a non-contiguous out=,
    with lengths, not causal, or with ALiBi takes the Triton kernel. A soft-capped call
    (with a window too: Gemma 2) takes the Gluon kernel and is accurate."""
    from attention_kernel_triton.kernels._config import LONG_PREFILL

    n = LONG_PREFILL
    assert n % 128 == 0
    q, k, v = _qkv128(1, 4, 2, n, torch.float16, seed=5)
    strided_out = torch.empty((1, n, 4, 128), device="cuda", dtype=torch.float16).transpose(1, 2)
    lens = torch.tensor([n], dtype=torch.int32, device="cuda")
    sinks = torch.tensor([float("-inf"), -3.0, 2.0, 40.0], device="cuda")
    slopes = torch.full((4,), 0.01, device="cuda")
    with _gluon_spy() as spy:
        got = kernels.prefill(q, k, v, causal=True, return_lse=True)
        assert spy.call_count == 1, "N = LONG_PREFILL did not take the Gluon kernel"
        got_sinks = kernels.prefill(q, k, v, causal=True, sinks=sinks, return_lse=True)
        assert spy.call_count == 2, "a call with sinks did not take the Gluon kernel"
        got_window = kernels.prefill(q, k, v, causal=True, window=(300, 0), sinks=sinks,
                                     return_lse=True)
        got_edge = kernels.prefill(q, k, v, causal=True, window=(129, 0), return_lse=True)
        assert spy.call_count == 4, "a call with a window did not take the Gluon kernel"
        got_cap = kernels.prefill(q, k, v, causal=True, softcap=30.0, window=(300, 0),
                                  return_lse=True)
        assert spy.call_count == 5, "a soft-capped call did not take the Gluon kernel"
        kernels.prefill(q[:, :, :-1], k[:, :, :-1], v[:, :, :-1], causal=True)
        kernels.prefill(q, k, v, causal=True, out=strided_out)
        kernels.prefill(q, k, v, causal=True, seq_lens=lens)
        kernels.prefill(q, k, v, causal=False)
        kernels.prefill(q, k, v, causal=True, alibi_slopes=slopes)
        kernels.prefill(q, k, v, causal=True, softcap=30.0, alibi_slopes=slopes)
        assert spy.call_count == 5, "a call outside the Gluon kernel's scope took it"
    _accurate(f"prefill (default rule) N={n}", got, oracles.prefill_ref(q, k, v, causal=True),
              oracles.prefill_ref(q, k, v, causal=True, dtype=torch.float16))
    for what, got_v, kw in (("sinks", got_sinks, dict(sinks=sinks)),
                            ("window (300, 0) and sinks", got_window,
                             dict(window=(300, 0), sinks=sinks)),
                            ("window (129, 0)", got_edge, dict(window=(129, 0))),
                            ("softcap 30, window (300, 0)", got_cap,
                             dict(softcap=30.0, window=(300, 0)))):
        # the fp32 rule for the LSE assumes fp32-exact logits; the soft-cap's hardware tanh
        # rounds them like a 16-bit logit (kernels/mods.py SOFTCAP_FAST), so that row
        # takes the input-dtype rule alone (the accuracy property still applies the fp32
        # rule to soft-caps at its small N; if it fails there, this is why)
        lse32 = None if "softcap" in kw else \
            oracles.prefill_ref(q, k, v, causal=True, **kw, dtype=torch.float32)[1]
        _accurate(f"prefill (default rule, {what}) N={n}", got_v,
                  oracles.prefill_ref(q, k, v, causal=True, **kw),
                  oracles.prefill_ref(q, k, v, causal=True, **kw, dtype=torch.float16), lse32)


# The Gluon kernel's properties (its description, GLUON_PREFILL: tests/opinfo.py) come
# from the same table as every operation's and run on it (check's op=); its "variants"
# stream draws them in half the cases.
GLUON_PROPERTIES = list(dict.fromkeys(properties(GLUON_PREFILL)
                                      + properties(GLUON_PREFILL, "variants")))


def gluon_cases():
    """Prefill cases inside the Gluon kernel's scope: causal, no lengths, head_dim 128,
    contiguous, N = 128 to 640 (one to five key tiles: a window's two edge tiles, the
    inner loop and the diagonal), sinks or not, a soft-cap or not, a window in half the
    cases (its left side at the kernel's tile edges +-1 or anywhere up to past N; ALiBi is
    outside its scope); batch, GQA ratio, dtype (fp16, bf16), input scale and sm_scale
    drawn as for the Triton kernel."""
    base = prefill_cases(**sizes.prefill(min_head_dim=128, max_head_dim=128, padded=False,
                                         causal=True, same_q_k=True,
                                         dtypes=("float16", "bfloat16"),
                                         variants=("sinks", "window", "softcap")))
    # the kernel's own edges: a left side at its 128-key tiles +-1 (a first row's left
    # edge on a tile's last or first key), or any up to past the longest N
    left = st.one_of(st.sampled_from((0, 1, 2, 126, 127, 128, 129, 130, 255, 256, 257)),
                     st.integers(0, 700))
    window = st.one_of(st.none(), st.tuples(left, st.sampled_from((-1, 0, 3))))
    return st.builds(lambda case, tiles, win: replace(
                         case, n_q=128 * tiles, n_k=128 * tiles,
                         layout=replace(case.layout, transposed=False, v_transposed=False,
                                        row_gap=0),
                         variants=replace(case.variants, window=win)),
                     base, st.integers(1, 5), window)


@pytest.mark.gpu
@pytest.mark.skipif(not gluon_hopper(), reason="the Gluon prefill (wgmma, TMA) is Hopper-only")
@pytest.mark.parametrize("prop", GLUON_PROPERTIES)
@given(case=gluon_cases())
def test_prefill_sm90_properties(prop, case, device):
    """The suite's properties on the Gluon kernel, forced (tuning.prefill_gluon):
    Hypothesis draws the cases and shrinks a failure like any other. Every launch the
    property makes must be the Gluon kernel's, and there must be one (the strided
    head-vector relation has none to make on a case without sinks). The properties get
    the narrowed description: unread_memory, for one, runs no TMA / pointer-load pair."""
    from attention_kernel_triton.kernels import prefill

    with forced_gluon(), mock.patch.object(prefill, "launch", wraps=prefill.launch) as spy:
        check("prefill", prop, case, device, op=GLUON_PREFILL, path="gluon")
    plans = [c.args[0] for c in spy.call_args_list]
    assert all(p.gluon for p in plans), f"a call of the case took the Triton kernel: {case}"
    # only the strided relation has nothing to call without a per-head vector
    assert plans or (prop == "head_vectors_strided_bit_identical"
                     and case.variants.sinks is None), \
        f"the case launched no kernel: {case}"
