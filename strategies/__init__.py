"""Hypothesis strategies and case builders for the attention kernels."""

from .cases import (
    DTYPES,
    INDEX_KINDS,
    DecodeCase,
    PrefillCase,
    case_from_dict,
    decode_cases,
    head_dims,
    lengths,
    prefill_cases,
)
from .tensors import (
    decode_inputs,
    index_rows,
    page_table,
    prefill_inputs,
    prefill_varlen_inputs,
    relayout_like,
    torch_dtype,
)

__all__ = [
    "DTYPES", "INDEX_KINDS", "DecodeCase", "PrefillCase", "case_from_dict", "decode_cases",
    "head_dims", "lengths", "prefill_cases", "decode_inputs", "index_rows", "page_table",
    "prefill_inputs", "prefill_varlen_inputs", "relayout_like", "torch_dtype",
]
