"""Triton attention kernels for LLM inference (the public API).

prefill, prefill_varlen            -- prefill: causal or not, padded or packed var-len, GQA
decode, paged_decode               -- GQA decode over a dense or paged KV cache, split-KV
sparse_decode, sparse_paged_decode -- decode over a given set of token positions
"""

import os

import torch

if not torch.cuda.is_available():
    # No GPU: run the same kernels under Triton's interpreter (slow; for tests and
    # demos). Must be set before the first @triton.jit definition below.
    os.environ.setdefault("TRITON_INTERPRET", "1")

from .decode import decode, paged_decode
from .prefill import prefill, prefill_varlen
from .sparse import sparse_decode, sparse_paged_decode

__all__ = ["prefill", "prefill_varlen", "decode", "paged_decode", "sparse_decode",
           "sparse_paged_decode"]
