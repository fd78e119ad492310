"""Triton attention kernels for LLM inference (the public API).

prefill, prefill_varlen   -- causal / non-causal prefill, padded or packed var-len, GQA
decode, paged_decode      -- GQA decode over a dense or paged KV cache, split-KV
sparse_decode, sparse_paged_decode -- decode over a given set of token positions
"""

from .prefill import prefill, prefill_varlen

__all__ = ["prefill", "prefill_varlen"]
