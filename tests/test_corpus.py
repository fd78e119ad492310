"""Replay every case in tests/corpus/ (one JSON file each; format in corpus_io.py).

A corpus case is a property that once failed (or a seed shape shipped on purpose); it
must pass on every run from then on.
"""

import json

import pytest
import torch

from attention_kernel_triton.strategies.cases import case_from_dict
from tests.corpus_io import CORPUS_DIR, FORMAT, gpu_only_reason
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
    check(e["kernel"], e["property"], case, device)
