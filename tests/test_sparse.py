"""Properties of sparse_decode and sparse_paged_decode over drawn index sets."""

import pytest
from hypothesis import given

from strategies import decode_cases
from tests import sizes
from tests.properties import check

COMMON = ["accuracy", "finite", "unread_memory", "every_element_written", "inputs_untouched",
          "deterministic", "batch_equals_one_by_one", "splits_agree", "gqa_equals_mha",
          "sparse_every_index_equals_dense", "sparse_shuffle_invariant",
          "sparse_per_query_head_equals_per_kv_head",
          "sparse_unvalidated_out_of_range_skipped"]


@pytest.mark.parametrize("prop", COMMON + ["sparse_dense_equals_paged"])
@given(case=decode_cases(**sizes.decode(), sparse=True))
def test_sparse_decode(prop, case, device):
    check("sparse_decode", prop, case, device)


@pytest.mark.parametrize("prop", COMMON + ["page_permutation_bit_identical"])
@given(case=decode_cases(**sizes.decode(), sparse=True, paged=True))
def test_sparse_paged_decode(prop, case, device):
    check("sparse_paged_decode", prop, case, device)
