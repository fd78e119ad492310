"""``python -m benchmarks.hf_models --out DIR``: our kernels inside Hugging Face models.

Random-weight Llama-style and Qwen3-style causal LMs (built from configs, no download)
run once with ``attn_implementation="sdpa"`` and once with ours
(``attention_kernel_triton.transformers_backend``), in fp16 and bf16:

* accuracy: logits of a [2, 300] prefill (no padding, and the same batch with row 1
  left-padded by 100 tokens, valid positions only): max |ours - sdpa|, and both against
  sdpa on the same model in fp32 (the reference; sdpa's own distance to it is the yard
  stick for ours);
* greedy decoding: 64 tokens from a 300-token prompt; how many positions agree with
  sdpa's tokens, and the length of the common prefix (after the first difference the
  two continue from different text). sdpa-in-dtype against sdpa-fp32 is printed too:
  random weights give near-tied logits, and how often sdpa disagrees with itself across
  precisions is what one flip means;
* time (CUDA events around the call, after warm-up; median of --reps, at most 3 for
  generate): one [1, 4096] forward (``logits_to_keep=1``: the lm_head over 4096 rows
  would be the same matmul for both), and 64 decode steps:
  ``generate(max_new_tokens=64, min_new_tokens=64)`` from a 512-token prompt minus
  ``generate(max_new_tokens=1)`` from it (the prefill), so the figure is the 63 decode
  forwards (the whole model, host overhead included, which is what a user sees).

The weights use initializer_range 0.04 (HF's default 0.02 makes every attention row
nearly uniform at hidden 2048, which hides masking and precision differences): q and k
entries then have a standard deviation of about sqrt(2048) * 0.04 = 1.8, so the scaled
scores q.k / sqrt(D) about 1.8**2 = 3 (an estimate, not measured).

Writes ``hf_models.json`` (every figure, plus versions and the card) and ``hf_models.md``
to --out, and prints the table. Without CUDA it says so and exits 2. ``--smoke`` runs a
tiny model in fp32 on whatever is there (the CPU under Triton's interpreter when there
is no GPU) with small shapes, to check that the script runs end to end.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hf_models", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for hf_models.json/.md")
    p.add_argument("--smoke", action="store_true",
                   help="tiny model, fp32, small shapes; runs without a GPU (interpreter)")
    p.add_argument("--models", default="llama,qwen3", help="comma-separated: llama,qwen3")
    p.add_argument("--dtypes", default=None, help="comma-separated: fp16,bf16,fp32 "
                   "(default fp16,bf16; smoke: fp32)")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions (5; smoke 1)")
    return p.parse_args(argv)


# name -> (hidden, layers, heads, kv heads, head dim, intermediate, vocab)
FULL = {"llama": (2048, 8, 32, 8, 64, 5632, 32000),
        "qwen3": (2048, 8, 16, 8, 128, 6144, 32768)}
TINY = {"llama": (64, 2, 4, 2, 16, 128, 128),
        "qwen3": (64, 2, 4, 2, 32, 128, 128)}



SHAPES = {  # prefill batch, prompt for greedy, new tokens, timed forward, decode prompt
    False: dict(prefill=(2, 300), left_pad=100, greedy_prompt=300, new_tokens=64,
                forward=(1, 4096), decode_prompt=512),
    True: dict(prefill=(2, 12), left_pad=5, greedy_prompt=10, new_tokens=4,
               forward=(1, 16), decode_prompt=8),
}
DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}


def make_config(transformers, kind: str, smoke: bool):
    hidden, layers, heads, kv, head_dim, inter, vocab = (TINY if smoke else FULL)[kind]
    common = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
                  num_hidden_layers=layers, num_attention_heads=heads,
                  num_key_value_heads=kv, head_dim=head_dim, max_position_embeddings=8192,
                  initializer_range=0.04 if not smoke else 0.2, pad_token_id=0,
                  bos_token_id=None, eos_token_id=None)
    if kind == "llama":
        return transformers.LlamaConfig(**common)
    cls = getattr(transformers, "Qwen3Config", None) or transformers.Qwen2Config
    return cls(**common)


def build(transformers, torch, config, device):
    torch.manual_seed(0)
    with device:  # initialise on the device (0.5B parameters: slow on the CPU)
        model = transformers.AutoModelForCausalLM.from_config(config,
                                                              attn_implementation="sdpa")
    model.generation_config.eos_token_id = None  # exactly the tokens asked for
    model.generation_config.pad_token_id = 0
    return model.to(device).eval()


class Timer:
    def __init__(self, torch, device, reps: int):
        self.torch, self.cuda, self.reps = torch, device.type == "cuda", reps

    def __call__(self, fn, warmup: int = 2, reps: int | None = None) -> float:
        """Median ms of fn() after `warmup` calls: CUDA events around it on a GPU."""
        torch = self.torch
        for _ in range(warmup):
            fn()
        self._sync()
        times = []
        for _ in range(reps or self.reps):
            if self.cuda:
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn()
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def _sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()


def run_model(transformers, torch, akt_name, kind, dtypes, device, smoke, timer, log):
    """All figures of one model family; returns a list of records (one per dtype)."""
    shapes = SHAPES[smoke]
    config = make_config(transformers, kind, smoke)
    base = build(transformers, torch, config, device)  # fp32: the reference
    gen = torch.Generator().manual_seed(1)
    vocab = config.vocab_size
    ids = torch.randint(1, vocab, shapes["prefill"], generator=gen).to(device)
    pad = shapes["left_pad"]
    padded = ids.clone()
    padded[1, :pad] = 0
    mask = torch.ones_like(ids)
    mask[1, :pad] = 0
    pos = (mask.cumsum(1) - 1).clamp(min=0)
    prompt = ids[:1, :shapes["greedy_prompt"]]
    n_new = shapes["new_tokens"]
    fwd_ids = torch.randint(1, vocab, shapes["forward"], generator=gen).to(device)
    dec_prompt = fwd_ids[:, :shapes["decode_prompt"]]

    def logits(model, impl, x, **kw):
        model.set_attn_implementation(impl)
        with torch.no_grad():
            return model(x, **kw).logits.float()

    def greedy(model, impl, x, new):
        model.set_attn_implementation(impl)
        with torch.no_grad():
            out = model.generate(x, do_sample=False, max_new_tokens=new, min_new_tokens=new)
        return out[0, x.shape[1]:].tolist()

    ref = logits(base, "sdpa", ids)
    ref_pad = logits(base, "sdpa", padded, attention_mask=mask, position_ids=pos)
    ref_tokens = greedy(base, "sdpa", prompt, n_new)
    valid = mask.bool()
    records = []
    for dname in dtypes:
        dtype = getattr(torch, DTYPES[dname])
        model = base if dtype == torch.float32 else copy.deepcopy(base).to(dtype)
        t0 = time.perf_counter()
        rec = dict(model=kind, dtype=dname, config=dict(
            hidden=config.hidden_size, layers=config.num_hidden_layers,
            heads=config.num_attention_heads, kv_heads=config.num_key_value_heads,
            head_dim=config.head_dim, vocab=vocab))
        ours, sdpa = logits(model, akt_name, ids), logits(model, "sdpa", ids)
        rec["prefill_shape"] = list(ids.shape)
        rec["max_diff_vs_sdpa"] = (ours - sdpa).abs().max().item()
        rec["max_err_ours_vs_fp32"] = (ours - ref).abs().max().item()
        rec["max_err_sdpa_vs_fp32"] = (sdpa - ref).abs().max().item()
        rec["finite"] = bool(torch.isfinite(ours).all())
        kw = dict(attention_mask=mask, position_ids=pos)
        ours_p, sdpa_p = logits(model, akt_name, padded, **kw), logits(model, "sdpa", padded, **kw)
        rec["padded_max_diff_vs_sdpa"] = (ours_p - sdpa_p)[valid].abs().max().item()
        rec["padded_max_err_ours_vs_fp32"] = (ours_p - ref_pad)[valid].abs().max().item()
        rec["padded_max_err_sdpa_vs_fp32"] = (sdpa_p - ref_pad)[valid].abs().max().item()
        rec["padded_finite"] = bool(torch.isfinite(ours_p).all())
        del ours, sdpa, ours_p, sdpa_p
        tok_ours, tok_sdpa = greedy(model, akt_name, prompt, n_new), greedy(model, "sdpa",
                                                                           prompt, n_new)
        rec["greedy_tokens"] = n_new
        rec["greedy_agree"] = _agree(tok_ours, tok_sdpa)
        rec["greedy_common_prefix"] = _prefix(tok_ours, tok_sdpa)
        rec["greedy_sdpa_agree_fp32"] = _agree(tok_sdpa, ref_tokens)
        rec["greedy_ours_agree_fp32"] = _agree(tok_ours, ref_tokens)
        for impl, tag in ((akt_name, "ours"), ("sdpa", "sdpa")):
            model.set_attn_implementation(impl)
            with torch.no_grad():
                rec[f"forward_ms_{tag}"] = timer(lambda m=model: m(fwd_ids, logits_to_keep=1))
                t_all = timer(lambda m=model: m.generate(dec_prompt, do_sample=False,
                                                     max_new_tokens=n_new,
                                                     min_new_tokens=n_new), warmup=1,
                              reps=min(timer.reps, 3))
                t_one = timer(lambda m=model: m.generate(dec_prompt, do_sample=False,
                                                     max_new_tokens=1, min_new_tokens=1),
                              warmup=1, reps=min(timer.reps, 3))
            rec[f"decode_ms_{tag}"] = t_all - t_one  # the n_new - 1 decode forwards
            rec[f"generate_ms_{tag}"] = t_all
        rec["forward_shape"] = list(fwd_ids.shape)
        rec["decode_steps"] = n_new - 1
        rec["decode_prompt"] = dec_prompt.shape[1]
        rec["seconds"] = round(time.perf_counter() - t0, 1)
        log(f"{kind} {dname}: diff vs sdpa {rec['max_diff_vs_sdpa']:.3g}, greedy "
            f"{rec['greedy_agree']}/{n_new}, forward {rec['forward_ms_ours']:.1f} vs "
            f"{rec['forward_ms_sdpa']:.1f} ms, decode {rec['decode_ms_ours']:.1f} vs "
            f"{rec['decode_ms_sdpa']:.1f} ms ({rec['seconds']} s)")
        records.append(rec)
        if model is not base:
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return records


def _agree(a, b) -> int:
    return sum(x == y for x, y in zip(a, b, strict=True))


def _prefix(a, b) -> int:
    n = 0
    for x, y in zip(a, b, strict=True):
        if x != y:
            break
        n += 1
    return n


def markdown(meta: dict, records: list[dict]) -> str:
    lines = [f"# Hugging Face models: {meta['backend']} vs sdpa", "",
             f"{meta['device']}; torch {meta['torch']}, triton {meta['triton']}, "
             f"transformers {meta['transformers']}; {meta['date']}"
             f"{' (smoke run: tiny model, timings meaningless)' if meta['smoke'] else ''}.",
             "", "Logits: max |difference| over the whole [B, T, vocab] prefill (padded: "
             "valid positions only); err = against sdpa on the fp32 model. Greedy: "
             "positions equal to sdpa's (common prefix). Times: median ms; decode = the "
             "decode forwards of generate() (prefill subtracted).", "",
             "| model | dtype | logits ours-sdpa | err ours / sdpa | padded ours-sdpa | "
             "padded err ours / sdpa | greedy agree (prefix) | sdpa vs its fp32 | "
             "forward ours | forward sdpa | decode ours | decode sdpa |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        c = r["config"]
        lines.append(
            f"| {r['model']} L{c['layers']} H{c['hidden']} {c['heads']}/{c['kv_heads']}x"
            f"{c['head_dim']} | {r['dtype']} | {r['max_diff_vs_sdpa']:.3g} | "
            f"{r['max_err_ours_vs_fp32']:.3g} / {r['max_err_sdpa_vs_fp32']:.3g} | "
            f"{r['padded_max_diff_vs_sdpa']:.3g} | {r['padded_max_err_ours_vs_fp32']:.3g} / "
            f"{r['padded_max_err_sdpa_vs_fp32']:.3g} | {r['greedy_agree']}/"
            f"{r['greedy_tokens']} ({r['greedy_common_prefix']}) | "
            f"{r['greedy_sdpa_agree_fp32']}/{r['greedy_tokens']} | "
            f"{r['forward_ms_ours']:.2f} | {r['forward_ms_sdpa']:.2f} | "
            f"{r['decode_ms_ours']:.1f} | {r['decode_ms_sdpa']:.1f} |")
    r0 = records[0] if records else None
    if r0:
        lines += ["", f"Prefill {r0['prefill_shape']}; greedy {r0['greedy_tokens']} tokens; "
                  f"forward {r0['forward_shape']} (logits_to_keep=1); decode "
                  f"{r0['decode_steps']} steps after a {r0['decode_prompt']}-token prompt, "
                  "batch 1."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    smoke = args.smoke
    if not torch.cuda.is_available():
        if not smoke:
            print("benchmarks.hf_models: no CUDA GPU is visible to torch "
                  f"{torch.__version__}; this benchmark times GPU kernels (use --smoke for a "
                  "CPU check that the script runs)", file=sys.stderr)
            return 2
        os.environ["TRITON_INTERPRET"] = "1"  # before the kernels are first loaded
    elif os.environ.get("TRITON_INTERPRET") == "1" and not smoke:
        print("benchmarks.hf_models: TRITON_INTERPRET=1 is set; unset it to time the GPU",
              file=sys.stderr)
        return 2
    try:
        import transformers
    except ImportError:
        print("benchmarks.hf_models: transformers is not installed (pip install "
              "'attention-kernel-triton[hf]')", file=sys.stderr)
        return 2
    import triton

    from attention_kernel_triton import transformers_backend

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    dtypes = [d.strip() for d in (args.dtypes or ("fp32" if smoke else "fp16,bf16")).split(",")
              if d.strip()]
    bad = [m for m in models if m not in FULL] + [d for d in dtypes if d not in DTYPES]
    if bad:
        print(f"benchmarks.hf_models: unknown model or dtype {bad}", file=sys.stderr)
        return 2
    if device.type == "cpu" and any(d == "bf16" for d in dtypes):
        print("benchmarks.hf_models: bf16 under the interpreter is wrong (tl.dot); "
              "use fp32/fp16 on the CPU", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 reference stays fp32
    name = transformers_backend.register()
    timer = Timer(torch, device, args.reps or (1 if smoke else 5))
    meta = dict(backend=name, smoke=smoke, torch=torch.__version__,
                triton=triton.__version__, transformers=transformers.__version__,
                python=platform.python_version(),
                device=torch.cuda.get_device_name() if device.type == "cuda"
                else f"CPU ({platform.processor() or platform.machine()}), Triton interpreter",
                date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                shapes=SHAPES[smoke])
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    records = []
    for kind in models:
        records += run_model(transformers, torch, name, kind, dtypes, device, smoke, timer,
                             lambda msg: print(msg, flush=True))
        meta["seconds"] = round(time.perf_counter() - t0, 1)
        (args.out / "hf_models.json").write_text(json.dumps(dict(meta=meta, records=records),
                                                            indent=1) + "\n")
        (args.out / "hf_models.md").write_text(markdown(meta, records))
    print()
    print(markdown(meta, records))
    print(f"wrote {args.out / 'hf_models.json'} and {args.out / 'hf_models.md'} "
          f"({meta['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
