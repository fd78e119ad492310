"""Replay one corpus case under several launch configs (and both load paths).

    python scripts/repro_case.py tests/corpus/<file>.json [--configs "BM,BN,W,S;..."]

For a failure that the interpreter does not reproduce: run it on the GPU to see which
configs and paths fail. Prints one line per (config, path): ok or the error's first line.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import os  # noqa: E402

import torch  # noqa: E402

if not torch.cuda.is_available():  # before anything imports kernels
    os.environ["TRITON_INTERPRET"] = "1"

from attention_kernel_triton.kernels import tuning  # noqa: E402
from attention_kernel_triton.kernels._config import Config  # noqa: E402
from attention_kernel_triton.strategies.cases import case_from_dict  # noqa: E402
from tests.opinfo import OPS  # noqa: E402
from tests.properties import PROPERTIES  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("case", type=Path)
    p.add_argument("--configs", default="")
    args = p.parse_args()
    data = json.loads(args.case.read_text())
    case = case_from_dict(data["case"])
    kind = "prefill" if data["kernel"].startswith("prefill") else "decode"
    configs = [None] + [Config(*map(int, c.split(","))) for c in args.configs.split(";") if c]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    failures = 0
    for cfg in configs:
        for path in ((True, False) if kind == "prefill" else (True,)):
            try:
                pinned = {f"{kind}_config": cfg} if cfg else {}
                with tuning.override(**pinned, tma=path):
                    PROPERTIES[data["property"]](OPS[data["kernel"]], case, device)
                result = "ok"
            except Exception as exc:  # a wrong result, or a config that cannot launch
                failures += 1
                result = f"FAIL {type(exc).__name__}: " + \
                    " | ".join(str(exc).splitlines()[:3])[:300]
            label = f" tma={path}" if kind == "prefill" else ""
            print(f"{cfg or 'default'}{label}: {result}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
