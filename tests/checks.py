"""Comparisons with verbose failure reports.

The accuracy rule (FlashAttention's and PyTorch's): a kernel may be off the float64
oracle by at most

    tol(dtype) * magnitude + K * max|ref_lowp - oracle| + LOGIT_EPS * max|logit|

where ref_lowp is the oracle's own formula computed in the input dtype. `magnitude` is 1
for outputs and max(1, max|lse|) for LSE (a log of large logits carries their
absolute rounding). The last term is the fp32 accumulation of q.k itself: a kernel sums
D products in one fp32 chain (cuBLAS, behind ref_lowp, sums in blocks), so a logit L
carries an absolute error of a few ulps of L times sqrt(D); an output moves by at most
that much (|d softmax(s) v| <= |ds| max|v|, with |v| ~ 1 here). Seen on an H100: fp32,
D=254, logits ~90, error 4.3e-5 against a torch-fp32 reference error of 5.3e-6
(tests/corpus/paged_decode-accuracy-dd6ed716b8.json). A failure prints the case, max
error, bound, ratio, worst index and the NaN/Inf positions.
"""

from __future__ import annotations

import json
import os

import torch
from hypothesis import target
from hypothesis.control import currently_in_test_context


class _NoLse:
    """What OpInfo.call gives for the LSE of an implementation that declares none
    (conformance mode, Supports.lse=False): the checks skip it. A kernel's None is not
    this, and fails."""

    def __repr__(self):
        return "NO_LSE"


NO_LSE = _NoLse()

# Absolute floor of the bound, per input dtype: about two units in the last place of
# an output of magnitude 1 (fp16 2^-10, bf16 2^-7); fp32 is computed without tf32.
TOL = {torch.float16: 2e-3, torch.bfloat16: 1.6e-2, torch.float32: 2e-5}
K_LOWP = 3.0
# Relative error of an fp32-accumulated logit: ~8 ulps (2^-23 each) for D up to 256.
LOGIT_EPS = 1e-6

# Largest error ratio seen per (test, output, dtype) in this process, with its case:
# conftest.py prints them at the end of a run and, under xdist, merges the workers'
# files (ERROR_RATIOS_DIR) so a passing GPU run reports its worst ratio too.
WORST_RATIOS: dict[str, tuple[float, str]] = {}


def keep_worse(table: dict, key: str, ratio: float, case: str) -> None:
    """table[key] = (ratio, case) if this ratio is the larger (NaN counts as inf)."""
    if ratio != ratio:  # NaN (a NaN error): the worst there is
        ratio = float("inf")
    if ratio > table.get(key, (-1.0, ""))[0]:
        table[key] = (ratio, case)


def _record_ratio(what: str, dtype, ratio: float, case) -> None:
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" (")[0]
    keep_worse(WORST_RATIOS, f"{test} | {what} | {str(dtype).replace('torch.', '')}", ratio,
               str(case))


def dump_ratios(path: str) -> None:
    with open(path, "w") as f:
        json.dump(WORST_RATIOS, f)


def load_ratios(paths) -> dict[str, tuple[float, str]]:
    merged: dict[str, tuple[float, str]] = {}
    for path in paths:
        with open(path) as f:
            for key, (ratio, case) in json.load(f).items():
                keep_worse(merged, key, ratio, case)
    return merged


def nonfinite_report(name: str, t: torch.Tensor, allow_neg_inf: torch.Tensor | None = None):
    """'' if t has no NaN/Inf (beyond -inf where allowed), else a one-line description."""
    bad = ~torch.isfinite(t)
    if allow_neg_inf is not None:
        bad = bad & ~(allow_neg_inf & (t == float("-inf")))
    n = int(bad.sum())
    if n == 0:
        return ""
    first = [tuple(i) for i in bad.nonzero()[:5].tolist()]
    nans = int(torch.isnan(t).sum())
    return f"{name}: {n} non-finite ({nans} NaN), first at {first}"


def _abs_err(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| in float64 with equal infinities counting as 0 and NaN as inf."""
    a, b = a.double(), b.double()
    same_inf = torch.isinf(a) & torch.isinf(b) & (a == b)
    err = (a - b).abs()
    err = torch.where(same_inf, torch.zeros_like(err), err)
    return torch.nan_to_num(err, nan=float("inf"), posinf=float("inf"))


def finite_abs_max(t: torch.Tensor) -> float:
    """max |t| over t's finite elements; 0.0 when it has none."""
    finite = t[torch.isfinite(t)]
    return float(finite.abs().max()) if finite.numel() else 0.0


def assert_close_to_oracle(what: str, got, oracle, lowp, dtype, *, case, lse=False,
                           max_logit: float = 0.0) -> float:
    """Assert the accuracy rule; return the error ratio (err / bound, <= 1 to pass).
    got NO_LSE: an LSE that an implementation declared it does not return, nothing to
    check (None, from a kernel, fails like any wrong result)."""
    if got is NO_LSE:
        return 0.0
    if got.shape != oracle.shape:
        raise AssertionError(f"{what}: shape {tuple(got.shape)} != oracle "
                             f"{tuple(oracle.shape)}\ncase: {case}")
    want = torch.float32 if lse else lowp.dtype  # out like q (lowp runs in q's dtype)
    if got.dtype != want:
        raise AssertionError(f"{what}: dtype {got.dtype}, expected {want}\ncase: {case}")
    err = _abs_err(got, oracle)
    lowp_err = _abs_err(lowp, oracle)
    lowp_max = finite_abs_max(lowp_err)
    magnitude = max(1.0, finite_abs_max(oracle)) if lse else 1.0
    bound = TOL[dtype] * magnitude + K_LOWP * lowp_max + LOGIT_EPS * max_logit
    max_err = float(err.max()) if err.numel() else 0.0
    ratio = max_err / bound
    _record_ratio(what, dtype, ratio, case)
    if currently_in_test_context():  # the fuzz profile steers toward large ratios
        target(min(ratio, 1e6), label=f"error ratio {what}")
    if not ratio <= 1.0:
        worst = tuple(torch.unravel_index(err.argmax(), err.shape)) if err.numel() else ()
        worst = tuple(int(i) for i in worst)
        lines = [
            f"{what} is off the float64 oracle",
            f"case: {case}",
            f"max error {max_err:.4g} > bound {bound:.4g} (tol {TOL[dtype]:g} x {magnitude:.3g}"
            f" + {K_LOWP:g} x lowp error {lowp_max:.4g} + {LOGIT_EPS:g} x max logit "
            f"{max_logit:.3g}); ratio {ratio:.3g}",
            f"worst at {worst}: got {float(got[worst]) if worst else 'n/a'}, "
            f"oracle {float(oracle[worst]) if worst else 'n/a'}",
        ]
        lines += [r for r in (nonfinite_report(what, got, torch.isinf(oracle)),) if r]
        raise AssertionError("\n".join(lines))
    return ratio


def assert_finite(what: str, t: torch.Tensor, *, case, allow_neg_inf=None) -> None:
    if t is NO_LSE:  # an LSE not returned (assert_close_to_oracle)
        return
    rep = nonfinite_report(what, t, allow_neg_inf)
    if rep:
        raise AssertionError(f"{rep}\ncase: {case}")


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical (NaN payloads included), whatever the strides."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))


def _both_none(what: str, a, b) -> bool:
    """Two LSEs not returned (NO_LSE): nothing to compare; one of them only is a bug of
    the harness."""
    if (a is NO_LSE) != (b is NO_LSE):
        raise AssertionError(f"{what}: one result is NO_LSE, the other is not")
    return a is NO_LSE


def assert_same_bits(what: str, a: torch.Tensor, b: torch.Tensor, *, case) -> None:
    if _both_none(what, a, b):
        return
    if not same_bits(a, b):
        diff = _abs_err(a, b)
        n = int((diff != 0).sum()) if diff.numel() else 0
        first = [tuple(i) for i in (diff != 0).nonzero()[:5].tolist()]
        raise AssertionError(f"{what}: not bit-identical; {n} elements differ (max "
                             f"{float(diff.max()) if diff.numel() else 0:.4g}), first at "
                             f"{first}\n" + (nonfinite_report(what, a) or "")
                             + f"\ncase: {case}")


def assert_close_pair(what: str, a, b, bound: float, *, case) -> None:
    """Two results of the same kernel under a transformation: |a - b| <= bound."""
    if _both_none(what, a, b):
        return
    err = _abs_err(a, b)
    max_err = float(err.max()) if err.numel() else 0.0
    if not max_err <= bound:
        worst = tuple(int(i) for i in torch.unravel_index(err.argmax(), err.shape))
        raise AssertionError(f"{what}: max difference {max_err:.4g} > {bound:.4g} at "
                             f"{worst}\ncase: {case}")
