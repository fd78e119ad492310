"""Replay every case in tests/corpus/ (one JSON file each; format in corpus_io.py).

A corpus case is a property that once failed (or a seed shape shipped on purpose); it
must pass on every run from then on.
"""

import json

import pytest
import torch

from attention_kernel_triton.strategies.cases import case_from_dict
from tests.corpus_io import CORPUS_DIR, FORMAT, gpu_only_reason
from tests.opinfo import GLUON_PREFILL, forced_gluon, gluon_hopper
from tests.properties import check

FILES = sorted(CORPUS_DIR.glob("*.json"))


def test_corpus_is_not_empty():
    assert FILES, f"no corpus files in {CORPUS_DIR}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_replay(path, device):
    e = json.loads(path.read_text())
    assert e["format"] == FORMAT, f"{path.name}: corpus format {e['format']} != {FORMAT}"
    case = case_from_dict(e["case"])
    reason = gpu_only_reason(case)
    if reason and not torch.cuda.is_available():
        pytest.skip(f"needs a CUDA device ({reason})")
    forced = e.get("path")
    if forced is None:
        check(e["kernel"], e["property"], case, device)
        return
    assert forced == "gluon", f"{path.name}: unknown kernel path {forced!r}"
    if not gluon_hopper():
        pytest.skip("recorded on the Gluon Hopper prefill (path gluon): Hopper GPUs only")
    with forced_gluon():
        check(e["kernel"], e["property"], case, device, op=GLUON_PREFILL, path=forced)


def test_gluon_entries_replay_forced(tmp_path, device):
    """A failure found with the Gluon Hopper prefill forced keeps "path": "gluon", and its
    replay forces that kernel again (else it would replay on the Triton kernel and test
    nothing of the failure); off a Hopper GPU it is skipped with that reason."""
    from attention_kernel_triton.strategies.cases import PrefillCase
    from tests import corpus_io

    case = PrefillCase(batch=1, num_kv_heads=1, group_size=2, head_dim=128, n_q=128, n_k=128,
                       dtype="float16", causal=True, q_lens=None, kv_lens=None, scale=1.0,
                       seed=0)
    e = corpus_io.entry("prefill", "accuracy", case, device, path="gluon")
    assert e["path"] == "gluon"
    assert "path" not in corpus_io.entry("prefill", "accuracy", case, device)
    kept = tmp_path / "prefill-accuracy-gluon.json"
    kept.write_text(json.dumps(e))
    if gluon_hopper():
        test_replay(kept, device)  # the Gluon kernel passes it
    else:
        with pytest.raises(pytest.skip.Exception, match="Hopper GPUs only"):
            test_replay(kept, device)
