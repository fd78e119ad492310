"""`python -m attention_kernel_triton`: run every kernel once on small random inputs and
compare it with the float64 oracle. On a machine without a GPU this program picks Triton's
interpreter (the package itself never does: importing it changes no global state)."""

import sys

import torch

import attention_kernel_triton as kernels
from attention_kernel_triton.oracles import reference as oracles


def main() -> int:
    if not torch.cuda.is_available():
        kernels.use_interpreter()  # before the first kernel is defined
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    where = torch.cuda.get_device_name() if dev == "cuda" else "CPU (TRITON_INTERPRET=1)"
    print(f"attention_kernel_triton self-check on {where}")
    g = torch.Generator().manual_seed(0)
    dt = torch.float16

    def rnd(*shape):
        return torch.randn(shape, generator=g).to(dt).to(dev)

    b, hq, hkv, n, d, page = 2, 8, 2, 48, 64, 16
    q4, k, v = rnd(b, hq, n, d), rnd(b, hkv, n, d), rnd(b, hkv, n, d)
    lens = torch.tensor([48, 29], dtype=torch.int32, device=dev)
    pages = n // page
    kc = k.transpose(1, 2).reshape(b * pages, page, hkv, d)
    vc = v.transpose(1, 2).reshape(b * pages, page, hkv, d)
    table = torch.arange(b * pages, dtype=torch.int32, device=dev).view(b, pages)
    idx = torch.randint(-1, 29, (b, hkv, 12), generator=g).to(torch.int32).to(dev)
    q = q4[:, :, -1]
    cu = torch.tensor([0, 48, 77], dtype=torch.int32, device=dev)
    qp = torch.cat([q4[0].transpose(0, 1), q4[1, :, :29].transpose(0, 1)])
    kp = torch.cat([k[0].transpose(0, 1), k[1, :, :29].transpose(0, 1)])
    vp = torch.cat([v[0].transpose(0, 1), v[1, :, :29].transpose(0, 1)])
    # paged prefill: the last 5 and 11 tokens of each context are new
    cu_new = torch.tensor([0, 5, 16], dtype=torch.int32, device=dev)
    q_new = torch.cat([q4[0, :, 43:48].transpose(0, 1), q4[1, :, 18:29].transpose(0, 1)])
    runs = [
        ("prefill", kernels.prefill(q4, k, v, seq_lens=lens),
         oracles.prefill_ref(q4, k, v, seq_lens=lens)[0]),
        ("prefill_varlen", kernels.prefill_varlen(qp, kp, vp, cu, max_seqlen_q=48),
         oracles.prefill_varlen_ref(qp, kp, vp, cu)[0]),
        ("decode", kernels.decode(q, k, v, seq_lens=lens),
         oracles.decode_ref(q, k, v, seq_lens=lens)[0]),
        ("paged_decode", kernels.paged_decode(q, kc, vc, table, lens),
         oracles.paged_decode_ref(q, kc, vc, table, lens)[0]),
        ("sparse_decode", kernels.sparse_decode(q, k, v, idx, seq_lens=lens),
         oracles.sparse_decode_ref(q, k, v, idx)[0]),
        ("sparse_paged_decode", kernels.sparse_paged_decode(q, kc, vc, table, lens, idx),
         oracles.sparse_paged_decode_ref(q, kc, vc, table, lens, idx)[0]),
        ("paged_prefill", kernels.paged_prefill(q_new, kc, vc, table, cu_new, lens,
                                                max_seqlen_q=11),
         oracles.paged_prefill_ref(q_new, kc, vc, table, cu_new, lens)[0]),
    ]
    worst = 0.0
    for name, out, ref in runs:
        err = float((out.double() - ref).abs().max())
        worst = max(worst, err)
        print(f"  {name:<20} fp16  max |out - float64 oracle| = {err:.2e}")
    ok = worst < 1e-2  # fp16 on inputs of magnitude ~1: errors are ~1e-3
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
