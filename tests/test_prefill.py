"""Properties of prefill and prefill_varlen, each over cases drawn by Hypothesis."""

import pytest
from hypothesis import given

from strategies import prefill_cases
from tests import sizes
from tests.properties import check

COMMON = ["accuracy", "finite", "unread_memory", "every_element_written", "inputs_untouched",
          "deterministic", "gqa_equals_mha", "load_paths_agree"]


@pytest.mark.parametrize("prop", COMMON + ["batch_equals_one_by_one"])
@given(case=prefill_cases(**sizes.prefill()))
def test_prefill(prop, case, device):
    check("prefill", prop, case, device)


@pytest.mark.parametrize("prop", ["accuracy", "unread_memory"])
@given(case=prefill_cases(**sizes.prefill(), padded=True))
def test_prefill_padded(prop, case, device):
    """Padded var-len drawn every time (the general test draws it half the time)."""
    check("prefill", prop, case, device)


@pytest.mark.parametrize("prop", COMMON + ["varlen_equals_padded"])
@given(case=prefill_cases(**sizes.prefill(), varlen=True))
def test_prefill_varlen(prop, case, device):
    check("prefill_varlen", prop, case, device)
