"""Timed benchmarks of the attention kernels against their peers (``python -m benchmarks``).

Separate from the test suite; never collected by pytest. Modules:

  timing   -- the GPU check, ``do_bench`` medians, CUDA-graph replay, the card's ceilings
  peers    -- the implementations ours is compared with (torch SDPA, FlexAttention, naive)
  cases    -- the benchmark cases: inputs, implementations, float64 check, FLOPs/bytes
  runner   -- checks every implementation, then times it, and builds the records
  report   -- markdown tables, the JSON/markdown files and the plots
  sweep    -- ``python -m benchmarks.sweep``: launch-config sweep of our kernels

Nothing here touches CUDA at import time, so the package imports on any machine.
"""
