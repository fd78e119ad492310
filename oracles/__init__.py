"""Float64 reference implementations: one dense core plus mask builders and gathers."""

from .core import attention, causal_mask, length_mask, lowp_attention
from .reference import (
    decode_ref,
    paged_decode_ref,
    prefill_ref,
    prefill_varlen_ref,
    sparse_decode_ref,
    sparse_paged_decode_ref,
)

__all__ = [
    "attention", "lowp_attention", "causal_mask", "length_mask",
    "prefill_ref", "prefill_varlen_ref", "decode_ref", "paged_decode_ref",
    "sparse_decode_ref", "sparse_paged_decode_ref",
]
