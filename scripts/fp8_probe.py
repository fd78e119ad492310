"""Launch configs and split counts for the decode kernel on fp8 (e4m3) K/V caches, against
the same kernel on the fp16 caches they came from (q fp16, D128 Hq32 Hkv8): dense and
paged (page 16) decode at B32 N4096 and B1 N65536 (paged also with the cache stored
[num_pages, Hkv, P, D], "HND", through a strided view: each head's page rows contiguous),
and sparse decode at the seed's shape.
Every call is checked against the fp16 call (max |diff| printed) and timed as a CUDA-graph
replay (benchmarks/timing.py, L2 flushed).

    python scripts/fp8_probe.py [--configs 'BN,W,S;...'] [--configs256 ...] [--splits auto,8]
        [--only sparse]

Configs ('BN,W,S' or 'BN,W,S,MAXNREG', block_m 16) are pinned with
tuning.override(decode_config=...); --configs for the D128 shapes, --configs256 for the
sparse D256 one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import attention_kernel_triton as akt  # noqa: E402
from attention_kernel_triton import tuning  # noqa: E402
from benchmarks import cases  # noqa: E402
from benchmarks.timing import Timer, capture_graph  # noqa: E402


def problems(only: str = ""):
    """(label, call(k, v, scales, split) -> out, dense K/V fp16) per shape whose label
    contains `only`; the others are never built (each shape draws from its own seed)."""
    def rnd(seed):
        gen = torch.Generator(device="cuda").manual_seed(seed)
        return gen, lambda *s: torch.randn(*s, device="cuda", dtype=torch.float16, generator=gen)

    for i, (b, n) in enumerate(((32, 4096), (1, 65536))):
        if only in (label := f"decode B{b} N{n}"):
            _, r = rnd(2 * i)
            q, k, v = r(b, 32, 128), r(b, 8, n, 128), r(b, 8, n, 128)
            yield (label, lambda k, v, s, sp, q=q: akt.decode(
                q, k, v, num_splits=sp, validate=False, **s), k, v)
        for hnd in (False, True):
            if only not in (label := f"paged{' HND' if hnd else ''} P16 B{b} N{n}"):
                continue
            gen, r = rnd(2 * i + 1)
            q, kv = r(b, 32, 128), cases.make_paged(gen, [n] * b, 8, 128, 16, torch.float16)
            yield (label, lambda k, v, s, sp, q=q, kv=kv: akt.paged_decode(
                q, k, v, kv.block_table, kv.seq_lens, num_splits=sp, validate=False, **s),
                kv.k_cache, kv.v_cache)
    if only in (label := "sparse seed D256"):
        gen, r = rnd(4)
        q, k, v = r(4, 32, 256), r(4, 8, 32000, 256), r(4, 8, 32000, 256)
        idx = cases.make_indices(gen, 4, 8, [32000] * 4, 0.02)
        yield (label, lambda k, v, s, sp: akt.sparse_decode(
            q, k, v, idx, num_splits=sp, validate=False, **s), k, v)


def _hnd(cache: torch.Tensor) -> torch.Tensor:
    """A [num_pages, P, Hkv, D] cache's values in [num_pages, Hkv, P, D] storage, seen
    through a [num_pages, P, Hkv, D] view (the API's shape, other strides)."""
    return cache.transpose(1, 2).contiguous().transpose(1, 2)


def _graph_ms(timer: Timer, fn) -> float:
    """fn's GPU time as a CUDA-graph replay (captured now: under the caller's tuning)."""
    graph, _ = capture_graph(fn)
    return timer.graph(graph)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="64,4,3;64,4,4;64,4,5;128,4,3;128,4,4;128,8,3")
    ap.add_argument("--configs256", default="16,4,4;16,4,6;32,4,3;32,4,4")
    ap.add_argument("--splits", default="auto")
    ap.add_argument("--only", default="", help="run the shapes whose label contains this")
    args = ap.parse_args(argv)
    def parse(text):
        return [None] + [tuning.Config(16, *map(int, c.split(","))) for c in text.split(";")]
    splits = [None if s == "auto" else int(s) for s in args.splits.split(",")]
    timer = Timer(warmup_ms=10, rep_ms=40)
    print(f"{torch.cuda.get_device_name()}; us per call (graph); default = the table's")
    for label, call, k, v in problems(args.only):
        k8, ks = akt.quantize_kv(k)
        v8, vs = akt.quantize_kv(v)
        if " HND " in label:  # the same values, stored [num_pages, Hkv, P, D]: a head's page
            k, v, k8, v8 = map(_hnd, (k, v, k8, v8))  # rows contiguous (strided view)
        scales = dict(k_scale=ks, v_scale=vs)
        ref = call(k, v, {}, None).float()
        fp16 = _graph_ms(timer, lambda: call(k, v, {}, None))  # noqa: B023 (used here)
        print(f"{label}: fp16 default {1e3 * fp16:.1f} us")
        for cfg in parse(args.configs256 if "D256" in label else args.configs):
            for sp in splits:
                name = f"{'default' if cfg is None else cfg} splits={sp or 'auto'}"
                try:
                    with tuning.override(decode_config=cfg):
                        err = (call(k8, v8, scales, sp).float() - ref).abs().max().item()
                        ms = _graph_ms(timer, lambda: call(k8, v8, scales, sp))  # noqa: B023
                except Exception as exc:  # e.g. out of shared memory
                    print(f"  {name}: {type(exc).__name__}: {str(exc)[:120]}")
                    continue
                print(f"  fp8 {name}: {1e3 * ms:.1f} us ({ms / fp16:.3f}x fp16), "
                      f"max|fp8 - fp16| {err:.3g}")
        torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
