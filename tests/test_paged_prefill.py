"""Properties of paged_prefill, each over cases drawn by Hypothesis."""

from dataclasses import replace

import pytest
from hypothesis import example, given

from attention_kernel_triton.strategies.cases import (
    Layout,
    PagedPrefillCase,
    PageTable,
    paged_prefill_cases,
)
from tests import sizes
from tests.properties import check, properties

# A mixed batch in one call: a decode row, a speculative chunk of 3, a chunk crossing
# tiles on a cached prefix, a fresh prefill (q_len == seq_len), a sequence with no new
# tokens and an empty one; page size 3, a shared first page, slack rows past the last
# sequence, garbage table tails. Under the interpreter (16-row tiles, group 2: 8 tokens
# per tile) the tiles of all sequences share grid axis 0 through the binary search.
MIXED = PagedPrefillCase(batch=6, num_kv_heads=2, group_size=2, head_dim=32, n_ctx=42,
                         dtype="float16", seq_lens=(30, 7, 41, 17, 5, 0),
                         q_lens=(1, 3, 19, 17, 0, 0), causal=True, scale=1.0, seed=11,
                         pages=PageTable(3, shared_pages=1, extra_pages=2), slack_rows=3)
# Every sequence fits one tile (q_len <= 8 at group 2): program b is sequence b (ONE_TILE),
# split in three.
SHORT = replace(MIXED, seq_lens=(30, 7, 41, 17, 5, 0), q_lens=(1, 3, 8, 2, 0, 0),
                num_splits=3, seed=12)
# Group 5 (tiles of 3 tokens x 5 heads, one row unused), non-causal, page size 1.
GROUP5 = PagedPrefillCase(batch=2, num_kv_heads=1, group_size=5, head_dim=24, n_ctx=20,
                          dtype="float16", seq_lens=(20, 9), q_lens=(7, 9),
                          pages=PageTable(1), causal=False, scale=3.0, seed=13,
                          layout=Layout(row_gap=3, q_transposed=True, out_like_q=True))

# A group wider than the interpreter's 16-row tile: 24 query heads per KV head run as two
# programs of 12 heads (one token per tile).
WIDE_GROUP = PagedPrefillCase(batch=2, num_kv_heads=1, group_size=24, head_dim=16, n_ctx=4,
                              dtype="float16", seq_lens=(4, 2), q_lens=(2, 2),
                              pages=PageTable(4), causal=True, scale=1.0, seed=14)

# The tile after a tile's causal end: tile 0's keys end at 24 (8 + 16), inside the second
# key tile (16..31), whose page lookup ran one tile ahead; pages 0..6 belong to nobody
# (NaN under unread_memory), so a key past the end looked up as "page 0" reads NaN (one
# split: with more, each split here is one tile and the lookahead never runs). Found
# on an H100 at GPU sizes (tests/corpus/paged_prefill-unread_memory-3f73c38495.json).
PAST_CAUSAL_END = PagedPrefillCase(batch=1, num_kv_heads=1, group_size=1, head_dim=16,
                                   n_ctx=48, dtype="float32", seq_lens=(48,), q_lens=(40,),
                                   pages=PageTable(4, page_id_offset=7), causal=True,
                                   scale=1.0, seed=15, num_splits=1)


@pytest.mark.parametrize("prop", properties("paged_prefill"))
@given(case=paged_prefill_cases(**sizes.paged_prefill()))
@example(case=MIXED)
@example(case=SHORT)
@example(case=GROUP5)
@example(case=WIDE_GROUP)
@example(case=PAST_CAUSAL_END)
def test_paged_prefill(prop, case, device):
    check("paged_prefill", prop, case, device)


def test_grid_bounds_every_tile():
    """Sequence b's first tile cu[b] // T + b (kernels/paged_prefill.py) leaves room for
    its cdiv(q_len_b, T) tiles before the next sequence's, and Tq // T + B programs cover
    every tile of any batch: checked exhaustively on small batches."""
    import itertools

    for t in (1, 2, 3, 8):
        for q_lens in itertools.product(range(0, 7), repeat=3):
            cu = [0, *itertools.accumulate(q_lens)]
            first = [cu[b] // t + b for b in range(3)]
            for b in range(3):
                last = first[b] + -(-q_lens[b] // t) - 1
                assert b == 2 or last < first[b + 1], (t, q_lens)
                assert last < cu[-1] // t + 3, (t, q_lens)


def test_heads_per_program():
    """A program takes the whole query group when it fits the tile, else the largest
    divisor that does, so it never spans two KV heads."""
    from attention_kernel_triton.kernels.paged_prefill import heads_per_program

    assert heads_per_program(4, 16) == 4
    assert heads_per_program(5, 16) == 5
    assert heads_per_program(32, 16) == 16
    assert heads_per_program(24, 16) == 12
    assert heads_per_program(17, 16) == 1
