"""Probe paged_prefill on a GPU: the issue's four shapes, checked against the float64
oracle on their last sequence, timed against our dense prefill_varlen on the same tokens
and one paged_decode step, and a small config sweep. Prints one line per measurement.

    python scripts/paged_prefill_probe.py [--sweep] [--dtype fp16|bf16]
"""

from __future__ import annotations

import argparse
import itertools

import torch
import triton

import attention_kernel_triton as kernels
from attention_kernel_triton import tuning
from attention_kernel_triton.oracles.reference import paged_gather, prefill_ref

HQ, HKV, D, P = 32, 8, 128, 16


def build(q_lens, ctx_lens, dtype, seed=0, page=None):
    g = torch.Generator(device="cuda").manual_seed(seed)
    b = len(q_lens)
    P = page or globals()["P"]  # noqa: N806 (the page size, P16 unless asked)
    pages = [-(-c // P) for c in ctx_lens]
    max_pages = max(pages)
    num_pages = sum(pages) + 7
    perm = torch.randperm(num_pages, generator=g, device="cuda")
    table = torch.zeros((b, max_pages), dtype=torch.int32, device="cuda")
    at = 0
    for i, n in enumerate(pages):
        table[i, :n] = perm[at:at + n].to(torch.int32)
        at += n
    kc = torch.randn((num_pages, P, HKV, D), generator=g, device="cuda", dtype=dtype)
    vc = torch.randn((num_pages, P, HKV, D), generator=g, device="cuda", dtype=dtype)
    cu = torch.tensor([0, *itertools.accumulate(q_lens)], dtype=torch.int32, device="cuda")
    q = torch.randn((int(cu[-1]), HQ, D), generator=g, device="cuda", dtype=dtype)
    lens = torch.tensor(ctx_lens, dtype=torch.int32, device="cuda")
    return q, kc, vc, table, cu, lens


def dense_of(kc, vc, table, lens):
    """Packed dense K/V [Tk, Hkv, D] of every context, and cu_seqlens_k."""
    ks, vs = [], []
    for i in range(len(lens)):
        ks.append(paged_gather(kc, table[i:i + 1], lens[i:i + 1])[0].transpose(0, 1))
        vs.append(paged_gather(vc, table[i:i + 1], lens[i:i + 1])[0].transpose(0, 1))
    cu_k = torch.tensor([0, *itertools.accumulate(lens.tolist())], dtype=torch.int32,
                        device="cuda")
    return torch.cat(ks).contiguous(), torch.cat(vs).contiguous(), cu_k


def check(q, kc, vc, table, cu, lens, out):
    b = len(lens) - 1
    q0, q1 = int(cu[b]), int(cu[b + 1])
    k = paged_gather(kc, table[b:b + 1], lens[b:b + 1])
    v = paged_gather(vc, table[b:b + 1], lens[b:b + 1])
    ref, _ = prefill_ref(q[q0:q1].transpose(0, 1)[None], k, v, causal=True)
    return (out[q0:q1].double() - ref[0].transpose(0, 1)).abs().max().item()


def time_us(fn, graph=True):
    if graph:
        fn()
        torch.cuda.synchronize()
        s = torch.cuda.Stream()
        with torch.cuda.stream(s):
            gr = torch.cuda.CUDAGraph()
            with torch.cuda.graph(gr):
                fn()
        torch.cuda.synchronize()
        return triton.testing.do_bench(gr.replay, warmup=25, rep=200) * 1e3
    return triton.testing.do_bench(fn, warmup=25, rep=200) * 1e3


CASES = {
    "a_chunk8x512@4608": ([512] * 8, [4608] * 8),
    "b_fresh4x4096": ([4096] * 4, [4096] * 4),
    "c_mixed32dec+2x1024": ([1] * 32 + [1024] * 2, [4096] * 32 + [8192] * 2),
    "d_spec32x4@4096": ([4] * 32, [4096] * 32),
    "d_spec32x4@32768": ([4] * 32, [32768] * 32),
    "e_decode32@4096": ([1] * 32, [4096] * 32),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--mini", action="store_true", help="with --sweep: 3-4 configs per case")
    ap.add_argument("--dtype", default="fp16")
    ap.add_argument("--pages", default="", help="comma-separated page sizes: case a only, "
                    "at each (the page lookup's share of the time)")
    a = ap.parse_args()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[a.dtype]
    if a.pages:
        for page in map(int, a.pages.split(",")):
            probe_case(f"a_chunk8x512@4608 P{page}", *CASES["a_chunk8x512@4608"], dtype, a,
                       page=page)
        return
    for name, (q_lens, ctx) in CASES.items():
        probe_case(name, q_lens, ctx, dtype, a)
        torch.cuda.empty_cache()


def probe_case(name, q_lens, ctx, dtype, a, page=None):
    q, kc, vc, table, cu, lens = build(q_lens, ctx, dtype, page=page)
    mq = max(q_lens)
    out = torch.empty_like(q)

    def ours():
        return kernels.paged_prefill(q, kc, vc, table, cu, lens, max_seqlen_q=mq,
                                     validate=False, out=out)

    ours()
    err = check(q, kc, vc, table, cu, lens, out)
    t = time_us(ours)
    line = f"{name} {a.dtype}: ours {t:.1f} us (err {err:.2e})"
    kd, vd, cu_k = dense_of(kc, vc, table, lens)
    out_d = torch.empty_like(q)

    def dense():
        return kernels.prefill_varlen(q, kd, vd, cu, cu_k, max_seqlen_q=mq,
                                      max_seqlen_k=max(ctx), validate=False, out=out_d)

    line += f" | dense varlen {time_us(dense):.1f} us"
    with tuning.override(tma=False):  # the same kernel on pointer loads: the load path's share
        line += f" | dense varlen, pointer loads {time_us(dense):.1f} us"
    if mq <= 4:  # one paged_decode step over the same cache
        qd = q[cu[:-1].long()].contiguous()
        od = torch.empty_like(qd)

        def step():
            return kernels.paged_decode(qd, kc, vc, table, lens, validate=False, out=od)

        line += f" | paged_decode 1 step {time_us(step):.1f} us"
    if name.startswith("c_"):
        nd = 32
        qd = q[:nd].contiguous()
        od = torch.empty_like(qd)
        qc = q[nd:].contiguous()
        oc = torch.empty_like(qc)
        cu_c = (cu[nd:] - cu[nd]).contiguous()
        kd2, vd2, cu_k2 = dense_of(kc, vc, table[nd:], lens[nd:])

        def parts():
            kernels.paged_decode(qd, kc, vc, table[:nd], lens[:nd], validate=False, out=od)
            kernels.prefill_varlen(qc, kd2, vd2, cu_c, cu_k2, max_seqlen_q=1024,
                                   validate=False, out=oc)

        line += f" | parts (paged_decode + dense varlen) {time_us(parts):.1f} us"
    print(line, flush=True)
    if a.sweep:
        ms = (16,) if mq <= 4 else (64, 128)
        grid = itertools.product(ms, (32, 64, 128), (4, 8), (2, 3))
        if a.mini:  # a few configs around the table's choice
            grid = [(16, 128, 4, 2), (16, 128, 4, 3), (16, 64, 4, 3)] if mq <= 4 else \
                [(128, 128, 8, 2), (128, 128, 8, 3), (128, 64, 4, 3), (64, 64, 4, 3)]
        for bm, bn, w, s in grid:
            if name.startswith("e_"):
                break
            cfg = tuning.Config(bm, bn, w, s)
            try:
                with tuning.override(paged_prefill_config=cfg):
                    ours()
                    e = check(q, kc, vc, table, cu, lens, out)
                    tt = time_us(ours)
                print(f"  sweep {name} M{bm} N{bn} w{w} s{s}: {tt:.1f} us (err {e:.1e})",
                      flush=True)
            except Exception as exc:  # noqa: BLE001 (out of resources: report, go on)
                print(f"  sweep {name} M{bm} N{bn} w{w} s{s}: {type(exc).__name__}",
                      flush=True)


if __name__ == "__main__":
    main()
