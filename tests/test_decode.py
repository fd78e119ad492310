"""Properties of decode and paged_decode, each over cases drawn by Hypothesis."""

import pytest
from hypothesis import given

from strategies import decode_cases
from tests import sizes
from tests.properties import check

COMMON = ["accuracy", "finite", "unread_memory", "every_element_written", "inputs_untouched",
          "deterministic", "gqa_equals_mha", "batch_equals_one_by_one", "splits_agree"]


@pytest.mark.parametrize("prop", COMMON + ["decode_equals_prefill_last_row",
                                           "paged_one_page_per_sequence_equals_decode"])
@given(case=decode_cases(**sizes.decode()))
def test_decode(prop, case, device):
    check("decode", prop, case, device)


@pytest.mark.parametrize("prop", ["accuracy", "splits_agree"])
@given(case=decode_cases(**sizes.decode(), long_context=True))
def test_decode_long_context(prop, case, device):
    """Few long sequences: the split heuristic splits."""
    check("decode", prop, case, device)


@pytest.mark.parametrize("prop", COMMON + ["page_permutation_bit_identical"])
@given(case=decode_cases(**sizes.decode(), paged=True))
def test_paged_decode(prop, case, device):
    check("paged_decode", prop, case, device)
