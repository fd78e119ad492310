"""Attention variants every kernel takes (issue 23): sliding window, logit soft-capping,
attention sinks and ALiBi, as one validated bundle per call (``ScoreMods``).

Semantics (FlashAttention's conventions; positions are aligned bottom-right, so query i
of a sequence with Lq queries and Lk keys sits at position i_al = i + Lk - Lq, and a
decode query at seq_len - 1):

  logit(i, j) = softcap * tanh(q.k * sm_scale / softcap)      (softcap; else q.k * sm_scale)
                - slope_h * |i_al - j|                         (alibi_slopes [Hq])
  query i attends key j iff i_al - left <= j <= i_al + right   (window=(left, right);
                                                                -1 = unbounded)
  out = sum_j p_j v_j / (exp(sink_h) + sum_j p_j),  p_j = exp(logit(i, j))   (sinks [Hq])
  lse = log(exp(sink_h) + sum_j p_j)

A query that attends no key gives output 0 and LSE -inf, or LSE sink_h with sinks.

The kernels keep their scores in "raw" units (q.k; the softmax multiplies by
sm_scale * log2(e) inside the exponent), so softcap and ALiBi reach them rescaled by
1 / sm_scale (``kernel_args``): softcap_out * tanh(s * softcap_in) and
s - slope * alibi_scale * |i_al - j| are raw-unit scores again.
"""

from __future__ import annotations

if __name__.partition(".")[0] != "attention_kernel_triton":  # one import name per module
    raise ImportError(f"import {__name__} as attention_kernel_triton.{__name__}")

from dataclasses import dataclass

import torch

from ._config import dummy, interpreting

# An unbounded window side inside the prefill kernels: their positions stay below 2**30
# (a sequence that long would need more than 2**30 x D x 2 bytes of K per head), so
# i +- UNBOUNDED stays within int32 and bounds nothing. Decode is different: a paged
# cache can repeat pages past 2**30 positions, so it passes its capacity instead (it only
# computes i - left).
UNBOUNDED = 2**30

# The kernels take sm_scale and softcap as fp32 factors (sm_scale x log2 e, 1 / sm_scale,
# sm_scale / softcap, softcap / sm_scale): each must be a normal fp32 number, or the
# scores become inf, 0 or NaN (sm_scale=1e39 gave an all-NaN output; session 23 review).
FP32_TINY, FP32_MAX = torch.finfo(torch.float32).tiny, torch.finfo(torch.float32).max


def fp32_factor(name: str, value: float, what: str) -> None:
    """A scale factor the kernels take in fp32 must be a normal fp32 number."""
    if not FP32_TINY <= value <= FP32_MAX:
        raise ValueError(f"{what} = {value:.3g} is outside fp32's normal range "
                         f"[{FP32_TINY:.3g}, {FP32_MAX:.3g}]: {name} too large or too small")


# The soft-cap's tanh (the SOFTCAP constexpr; kernels/_jit.py modded_scores). For fp16 /
# bf16 inputs on a GPU the hardware's tanh.approx.f32: one MUFU op, relative error about
# 2^-11, the rounding of a 16-bit logit, which is what the accuracy rule's input-dtype
# reference itself carries (FlashAttention and FlashInfer use the same instruction). For
# fp32 inputs, and under the interpreter (which runs no PTX), a tanh accurate to 3e-7
# (kernels/_jit.py). B4 N4096 D128 fp16 prefill with softcap 50, H100: 1.384 ms with the
# hardware tanh against 1.893 ms with the accurate one (benchmarks/NOTES.md, session 19).
SOFTCAP_OFF, SOFTCAP_FP32, SOFTCAP_FAST = 0, 1, 2


@dataclass(frozen=True)
class ScoreMods:
    """A call's validated variant options (kernels/_validate.py ``score_mods``).
    window sides are -1 when unbounded; softcap 0.0 when off."""
    window_left: int = -1
    window_right: int = -1
    softcap: float = 0.0
    sinks: torch.Tensor | None = None  # float32 [Hq]
    alibi_slopes: torch.Tensor | None = None  # float32 [Hq]

    def __post_init__(self):
        # the kernels read head h's value at ptr + h: a strided view (x[::2]) is copied
        for name in ("sinks", "alibi_slopes"):
            t = getattr(self, name)
            if t is not None and not t.is_contiguous():
                object.__setattr__(self, name, t.contiguous())

    @property
    def has_window(self) -> bool:
        return self.window_left >= 0 or self.window_right >= 0

    def left(self) -> int:
        """The window's left side for the kernels (UNBOUNDED when -1)."""
        return min(self.window_left, UNBOUNDED) if self.window_left >= 0 else UNBOUNDED

    def right(self) -> int:  # a side past UNBOUNDED bounds nothing in these kernels either
        return min(self.window_right, UNBOUNDED) if self.window_right >= 0 else UNBOUNDED

    def kernel_args(self, sm_scale: float, device: torch.device) -> dict:
        """The runtime arguments every kernel with variants takes (see the module doc);
        zero-size fp32 stand-ins for absent sinks / slopes. Sinks are a runtime 0/1
        (has_sinks): they touch only the epilogue."""
        none = dummy(device, torch.float32)
        softcap_in, softcap_out = self.softcap_factors(sm_scale)
        return dict(
            win_left=self.left(), win_right=self.right(),
            softcap_in=softcap_in, softcap_out=softcap_out,
            alibi_scale=1.0 / sm_scale,
            sinks_ptr=self.sinks if self.sinks is not None else none,
            alibi_ptr=self.alibi_slopes if self.alibi_slopes is not None else none,
            has_sinks=int(self.sinks is not None))

    def softcap_factors(self, sm_scale: float) -> tuple[float, float]:
        """(softcap_in, softcap_out): the soft-cap on raw scores s is
        softcap_out * tanh(s * softcap_in) (see the module doc); (0.0, 0.0) without one."""
        cap = self.softcap
        if cap <= 0:
            return 0.0, 0.0
        fp32_factor("softcap", sm_scale / cap, "sm_scale / softcap")
        fp32_factor("softcap", cap / sm_scale, "softcap / sm_scale")
        return sm_scale / cap, cap / sm_scale

    def consts(self, dtype: torch.dtype) -> dict:
        """The constexpr switches of the prefill kernels for inputs of `dtype`: a call
        without a variant compiles none of its code. Sinks touch only the epilogue: a
        runtime flag."""
        return dict(HAS_WINDOW=self.has_window, **self.loop_consts(dtype))

    def loop_consts(self, dtype: torch.dtype) -> dict:
        """The switches that change a decode kernel's key loop (a window only moves where
        decode's key list starts: a runtime bound there)."""
        return dict(SOFTCAP=self.softcap_mode(dtype), ALIBI=self.alibi_slopes is not None)

    def softcap_mode(self, dtype: torch.dtype) -> int:
        """Which tanh the soft-cap takes for inputs of `dtype` (SOFTCAP_* above)."""
        if self.softcap <= 0:
            return SOFTCAP_OFF
        if dtype in (torch.float16, torch.bfloat16) and not interpreting() \
                and torch.version.hip is None:  # PTX: NVIDIA only
            return SOFTCAP_FAST
        return SOFTCAP_FP32

    def op_args(self) -> tuple:
        """The custom ops' arguments for these options (kernels/ops.py)."""
        return (self.window_left, self.window_right, self.softcap, self.sinks,
                self.alibi_slopes)


NONE = ScoreMods()
