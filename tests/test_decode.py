"""Properties of decode and paged_decode, each over cases drawn by Hypothesis."""

import pytest
import torch
import triton
from hypothesis import example, given

from attention_kernel_triton.strategies.cases import DecodeCase, Layout, PageTable, decode_cases
from tests import sizes
from tests.properties import check, properties

# Strided layouts that the ci profile's ten fixed draws may miss (its seed is pinned): q
# from [Hq, B, D] storage with a row gap and out= laid out like it (one split: the split
# kernel stores the output itself); paged, a page table that is a column slice of a wider
# one whose extra columns hold valid page ids.
STRIDED = DecodeCase(batch=2, num_kv_heads=2, group_size=2, head_dim=16, n_ctx=12,
                     dtype="float16", seq_lens=(5, 12), scale=1.0, seed=5, num_splits=1,
                     layout=Layout(q_transposed=True, row_gap=3, out_like_q=True))
STRIDED_PAGED = DecodeCase(batch=3, num_kv_heads=2, group_size=2, head_dim=16, n_ctx=12,
                           dtype="float16", seq_lens=(5, 12, 9), scale=1.0, seed=6,
                           pages=PageTable(4, extra_pages=1, tail="valid", table_gap=3),
                           layout=Layout(row_gap=3, out_like_q=True))
# Empty dense caches: no keys (N = 0: output 0, LSE -inf), no batch.
EMPTY = [DecodeCase(batch=2, num_kv_heads=1, group_size=2, head_dim=16, n_ctx=0,
                    dtype="float16", seq_lens=None, scale=1.0, seed=7),
         DecodeCase(batch=0, num_kv_heads=1, group_size=2, head_dim=16, n_ctx=8,
                    dtype="float16", seq_lens=None, scale=1.0, seed=8)]


@pytest.mark.parametrize("prop", properties("decode"))
@given(case=decode_cases(**sizes.decode()))
@example(case=STRIDED)
@example(case=EMPTY[0])
@example(case=EMPTY[1])
def test_decode(prop, case, device):
    check("decode", prop, case, device)


@pytest.mark.parametrize("prop", properties("decode", "long_context"))
@given(case=decode_cases(**sizes.decode(), long_context=True))
def test_decode_long_context(prop, case, device):
    """Few long sequences: the split heuristic splits."""
    check("decode", prop, case, device)


@pytest.mark.parametrize("prop", properties("paged_decode"))
@given(case=decode_cases(**sizes.decode(), paged=True))
@example(case=STRIDED_PAGED)
def test_paged_decode(prop, case, device):
    check("paged_decode", prop, case, device)


def test_split_rule():
    """The default split count (kernels.decode.MANY_WAVES): one wave as full as it gets
    while the (batch, head) programs fit on the GPU at once, about MANY_WAVES waves past
    that; bounded by the key-list length and the cap. Figures: H200, dense D128 fp16,
    396 resident programs (3 per SM x 132)."""
    from attention_kernel_triton.kernels.decode import MANY_WAVES, default_num_splits

    rule = lambda programs, keys=4096, resident=396, min_keys=64, cap=32, block=1: \
        default_num_splits(programs, keys, resident, min_keys, cap, block=block)
    assert rule(256) == 1  # B32 Hkv8: one wave already; 2 splits would make 1.3 waves
    assert rule(128) == 3 and rule(64) == 6 and rule(32) == 12
    assert rule(8) == 32 and rule(8, cap=64) == 49  # the cap
    assert rule(8, keys=1024) == 16  # at least min_keys entries per split
    assert rule(8, keys=10) == 1
    assert rule(512) == triton.cdiv(MANY_WAVES * 396, 512) == 4  # past one wave
    assert rule(396) == 1 and rule(397) == 4
    assert rule(0) == 1
    # Whole tiles per split: the sparse seed (32 programs, 640 index slots, tiles of 16)
    # gets 12 splits by the waves, of 64 entries each (cdiv(640, 12) = 54, rounded up to
    # whole tiles): the last 2 would hold nothing, so 10.
    assert rule(32, keys=640, min_keys=32) == 12
    assert rule(32, keys=640, min_keys=32, block=16) == 10


def test_split_rule_leaves_no_split_empty():
    """The split count the rule returns, fed to the kernels' own split arithmetic (whole
    tiles of `block` entries: per_split = cdiv(cdiv(n, splits), block) x block), gives
    every split of a full-length list an entry, with the same per-split ranges as the
    count before whole-tile rounding (so the same partials)."""
    from attention_kernel_triton.kernels.decode import default_num_splits

    def per_split(n, splits, block):
        return triton.cdiv(triton.cdiv(n, splits), block) * block

    for n in (*range(1, 300), 640, 4095, 4096, 65536):
        for programs in (1, 3, 8, 32, 100):
            for block in (1, 16, 64, 128):
                # block 1: splits of whole entries, the count before tile rounding
                by_entries = default_num_splits(programs, n, 396, 8, 64)
                splits = default_num_splits(programs, n, 396, 8, 64, block=block)
                assert 1 <= splits <= by_entries
                p = per_split(n, splits, block)
                assert p == per_split(n, by_entries, block), (n, programs, block)
                assert (splits - 1) * p < n <= splits * p, (n, programs, block, splits)


def test_programs_per_sm():
    """Occupancy from a compiled kernel's registers and shared memory (ptxas figures of
    the sm_90 decode kernels under triton 3.6.0, scripts/sm90_report.py, session 6): dense
    D128 N64 w4 s3 94 registers, 70 KB
    -> 3 per SM (shared memory); paged 128 registers, 38 KB -> 4 (registers);
    D64 N32 w2 s3 72 registers, 19 KB -> 11 (shared memory)."""
    from attention_kernel_triton.kernels._config import SmLimits, programs_per_sm

    h100 = SmLimits(sms=132)
    assert programs_per_sm(4, 94, 71680, h100) == 3
    assert programs_per_sm(4, 128, 39168, h100) == 4
    assert programs_per_sm(2, 72, 19456, h100) == 11
    assert programs_per_sm(4, 32, 0, h100) == 16  # threads: 2048 / 128
    assert programs_per_sm(1, 16, 0, h100) == 32  # the block limit
    assert programs_per_sm(8, 255, 300_000, h100) == 1  # never below 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="occupancy of a compiled GPU kernel")
def test_resident_programs_on_gpu():
    """The split rule's wave size comes from the kernel the GPU would run (queried once per
    variant, cached): between one and 32 programs per SM."""
    import attention_kernel_triton as kernels
    from attention_kernel_triton.kernels import decode
    from attention_kernel_triton.kernels._config import sm_limits

    q = torch.randn(32, 32, 128, device="cuda", dtype=torch.float16)
    k = torch.randn(32, 8, 4096, 128, device="cuda", dtype=torch.float16)
    kernels.decode(q, k, k)
    dev = q.device
    found = [n for key, n in decode._resident.items()
             if key[:2] == (decode._decode_kernel, dev)]
    assert found, "the default split count did not query the compiled kernel"
    sms = sm_limits(dev).sms
    assert all(sms <= n <= 32 * sms for n in found)
