"""A stand-alone reproduction of what conformance mode found in torch SDPA on a GPU: q/k/v
rows stored D + gap elements apart (a view of a wider tensor, last dim contiguous, the
gap filled with NaN or with 0). Each (backend, gap, shape) runs in its own process, so
that a CUDA error in one cannot spoil the others.

    python scripts/sdpa_gap_repro.py            # the table
    python scripts/sdpa_gap_repro.py one BACKEND GAP FILL NQ NK D   # one case
"""

from __future__ import annotations

import subprocess
import sys

BACKENDS = ("default", "MATH", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION")
SHAPES = ((2, 2, 16), (128, 128, 64), (1, 64, 128))  # (Nq, Nk, D), B=1, H=2


def one(backend: str, gap: int, fill: str, n_q: int, n_k: int, d: int) -> str:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    g = torch.Generator().manual_seed(0)

    def make(n):
        wide = torch.full((1, 2, n, d + gap), float("nan") if fill == "nan" else 0.0,
                          dtype=torch.float16)
        wide[..., :d] = torch.randn(1, 2, n, d, generator=g).to(torch.float16)
        return wide.cuda()[..., :d]

    q, k, v = make(n_q), make(n_k), make(n_k)
    ref = torch.softmax(q.double() @ k.double().transpose(-1, -2) / d ** 0.5, -1) @ v.double()
    try:
        if backend == "default":
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            with sdpa_kernel([getattr(SDPBackend, backend)]):
                out = F.scaled_dot_product_attention(q, k, v)
        torch.cuda.synchronize()
    except Exception as exc:  # noqa: BLE001 - the report is the point
        return f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    err = (out.double() - ref).abs().max().item()
    nan = int(out.isnan().sum())
    return f"NaN x{nan}" if nan else ("ok" if err < 1e-2 else f"WRONG (max err {err:.3g})")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "one":
        b, gap, fill, n_q, n_k, d = sys.argv[2:8]
        print(one(b, int(gap), fill, int(n_q), int(n_k), int(d)))
        return
    import torch

    print(f"# {torch.cuda.get_device_name()}, torch {torch.__version__}; fp16, B=1, H=2, "
          "rows D + gap apart (last dim contiguous)\n")
    print("| backend | gap, fill | " + " | ".join(f"Nq={a} Nk={b} D={c}" for a, b, c in SHAPES)
          + " |")
    print("|---|---|" + "---|" * len(SHAPES))
    from concurrent.futures import ThreadPoolExecutor

    def cell(args):
        run = subprocess.run([sys.executable, __file__, "one", *map(str, args)],
                             capture_output=True, text=True, timeout=300)
        lines = (run.stdout.strip() or run.stderr.strip() or "?").splitlines()
        return lines[-1][:90]

    rows = [(b, gap, fill) for b in BACKENDS
            for gap, fill in ((0, "nan"), (16, "nan"), (3, "nan"), (3, "zero"))]
    with ThreadPoolExecutor(8) as pool:  # one process per cell, 8 at a time
        cells = list(pool.map(cell, [(*row, *shape) for row in rows for shape in SHAPES]))
    for i, (backend, gap, fill) in enumerate(rows):
        row = cells[i * len(SHAPES):(i + 1) * len(SHAPES)]
        print(f"| {backend} | {gap}, {fill} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
