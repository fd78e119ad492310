"""The transformers attention backend (attention_kernel_triton/transformers_backend.py).

Tiny random-weight models built from configs (no download), run through our kernels and
through transformers' own sdpa / eager attention. On the CPU the kernels run under the
Triton interpreter (conftest.py sets TRITON_INTERPRET), so models are tiny (2 layers,
hidden 64, 4 query heads, 2 KV heads, head dim 16, vocab 128) and everything is fp32 (the
interpreter's bf16 tl.dot is wrong). On a GPU the same tests run on CUDA, and the logits
tests also in fp16 and bf16.

Tolerances. fp32: our kernels and sdpa/eager compute the same fp32 math in different
summation orders, a few ulps per op; over two layers the logits (magnitude about 1-10
here) differ by about 1e-6 (measured: <= 6e-6 on the CPU), so 1e-4 absolute leaves room
for GPU reduction orders without letting a masking bug through (a wrong mask moves these
logits by O(0.1-1): initializer_range=0.2 makes the attention peaked, not uniform).
fp16/bf16 (GPU only): each low-precision result is held against the same model in fp32
(sdpa); ours may be off by at most 3x what sdpa in that dtype is off, plus 1e-2 (fp16) /
5e-2 (bf16) absolute (the rule the kernel suite uses, DESIGN.md "Accuracy"). Greedy
tokens are compared in fp32 only, where near-ties cannot flip at these error sizes.
"""

from __future__ import annotations

import copy
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip(
    "transformers", reason="transformers is not installed (the optional [hf] extra): "
    "the transformers backend has nothing to plug into")

import attention_kernel_triton as akt  # noqa: E402
from attention_kernel_triton import transformers_backend as backend  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
LOWP = [torch.float16, torch.bfloat16] if CUDA else []
ATOL32 = 1e-4
LOWP_ATOL = {torch.float16: 1e-2, torch.bfloat16: 5e-2}
NEW_TOKENS = 6

SMALL = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, head_dim=16,
             max_position_embeddings=64, initializer_range=0.2, pad_token_id=0,
             bos_token_id=None, eos_token_id=None)


@pytest.fixture(scope="module")
def name():
    return backend.register()


def build(config_cls, name, impl=None, **overrides):
    """A random-weight model from config_cls(**SMALL | overrides), in fp32 on DEVICE."""
    config = config_cls(**{**SMALL, **overrides})
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation=impl or name)
    model.generation_config.eos_token_id = None  # generate exactly the tokens asked for
    model.generation_config.pad_token_id = 0
    return model.to(DEVICE).eval()


def logits(model, impl, ids, **kw):
    model.set_attn_implementation(impl)
    with torch.no_grad():
        return model(ids, **kw).logits.float()


def greedy(model, impl, ids, new_tokens=NEW_TOKENS, **kw):
    model.set_attn_implementation(impl)
    with torch.no_grad():
        out = model.generate(ids, do_sample=False, max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, **kw)
    return out[:, ids.shape[1]:].tolist()


def tokens(*shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, SMALL["vocab_size"], shape, generator=g).to(DEVICE)


def left_padded(prompts):
    """A left-padded batch (what generate() expects): ids, attention_mask, position_ids."""
    width = max(p.shape[-1] for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long, device=DEVICE)
    mask = torch.zeros_like(ids)
    for b, p in enumerate(prompts):
        ids[b, width - p.shape[-1]:] = p
        mask[b, width - p.shape[-1]:] = 1
    return ids, mask, (mask.cumsum(1) - 1).clamp(min=0)


class _Calls(list):
    """The names of our kernels that ran, in order; .kwargs: each call's keyword arguments."""

    def __init__(self):
        super().__init__()
        self.kwargs = []

    def clear(self):
        super().clear()
        self.kwargs.clear()


@pytest.fixture
def calls(monkeypatch):
    """Which of our kernels ran (the backend looks them up on the package at call time)."""
    seen = _Calls()
    for fn in ("prefill", "prefill_varlen", "paged_prefill", "decode", "sparse_decode"):
        real = getattr(akt, fn)

        def wrapper(*args, _real=real, _fn=fn, **kwargs):
            seen.append(_fn)
            seen.kwargs.append(kwargs)
            return _real(*args, **kwargs)
        monkeypatch.setattr(akt, fn, wrapper)
    return seen


def check_lowp(model, name, dtype, ids, **kw):
    """Ours in `dtype` against fp32 sdpa, within 3x sdpa's own error in `dtype` + atol."""
    ref = logits(model, "sdpa", ids, **kw)
    low = copy.deepcopy(model).to(dtype)
    err_ours = (logits(low, name, ids, **kw) - ref).abs().max().item()
    err_sdpa = (logits(low, "sdpa", ids, **kw) - ref).abs().max().item()
    assert err_ours <= 3 * err_sdpa + LOWP_ATOL[dtype], (dtype, err_ours, err_sdpa)


# --------------------------------------------------------------------------- packaging


def test_importing_the_package_does_not_import_transformers():
    code = ("import sys, attention_kernel_triton as akt\n"
            "import attention_kernel_triton.transformers_backend as b\n"
            "akt.prefill  # loads the kernels too\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'transformers')\n"
            "assert not bad, bad\n"
            "print('ok')\n")
    env = dict(os.environ)
    if not CUDA:
        env["TRITON_INTERPRET"] = "1"
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, text=True,
                         capture_output=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def test_register_is_idempotent_and_checks_the_name(name):
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    assert name == backend.NAME == backend.register() == backend.register(backend.NAME)
    assert AttentionInterface._global_mapping[name] is backend.attention_forward
    assert AttentionMaskInterface._global_mapping[name] is backend.build_mask
    for bad in ("sdpa", "eager", "flash_attention_2", "org/repo", ""):
        with pytest.raises(ValueError, match="name"):
            backend.register(bad)


# --------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("dtype", [torch.float32, *LOWP], ids=str)
def test_llama_logits_match_sdpa_and_eager(name, calls, dtype):
    model = build(transformers.LlamaConfig, name)  # built with ours (from_config)
    assert model.config._attn_implementation == name
    ids = tokens(2, 12)
    if dtype != torch.float32:
        return check_lowp(model, name, dtype, ids)
    ours = logits(model, name, ids)
    assert calls == ["prefill"] * 2  # one dense causal prefill per layer, no mask
    for impl in ("sdpa", "eager"):
        diff = (ours - logits(model, impl, ids)).abs().max().item()
        assert diff <= ATOL32, (impl, diff)


def test_greedy_generation_matches_sdpa(name, calls):
    model = build(transformers.LlamaConfig, name)
    ids = tokens(1, 8, seed=2)
    assert greedy(model, name, ids) == greedy(model, "sdpa", ids)
    assert calls[:2] == ["prefill"] * 2 and set(calls[2:]) == {"decode"}


def test_left_padded_batch_matches_each_prompt_alone(name, calls):
    model = build(transformers.LlamaConfig, name)
    prompts = [tokens(7, seed=3), tokens(12, seed=4)]
    ids, mask, pos = left_padded(prompts)
    batched = logits(model, name, ids, attention_mask=mask, position_ids=pos)
    assert calls == ["paged_prefill"] * 2  # packed queries, keys in place: left padding
    assert torch.isfinite(batched).all()  # padding rows too
    for b, p in enumerate(prompts):
        alone = logits(model, "sdpa", p[None])
        diff = (batched[b, -p.shape[0]:] - alone[0]).abs().max().item()
        assert diff <= ATOL32, (b, diff)
    calls.clear()
    got = greedy(model, name, ids, attention_mask=mask)
    assert "sparse_decode" in calls  # decode steps read only the valid positions
    want = [greedy(model, "sdpa", p[None])[0] for p in prompts]
    assert got == want


def _in_two_chunks(model, ids, mask, pos, cache):
    """Logits of a 10-token batch prefilled in two chunks (0:5, 5:10) into `cache`. The
    argument is `cache` from transformers 5.24 on (`past_key_values` is deprecated)."""
    arg = "cache" if "cache" in inspect.signature(model.forward).parameters \
        else "past_key_values"
    parts = []
    with torch.no_grad():
        for lo, hi in ((0, 5), (5, 10)):
            parts.append(model(ids[:, lo:hi], attention_mask=mask[:, :hi],
                               position_ids=pos[:, lo:hi], use_cache=True,
                               **{arg: cache}).logits)
    return torch.cat(parts, 1)


def test_right_padding_and_static_cache(name, calls):
    """Right padding (no cache) and a StaticCache (key tensor longer than what was
    written, left-padded batch) take the padded var-len path and the paged one."""
    model = build(transformers.LlamaConfig, name)
    prompts = [tokens(5, seed=5), tokens(9, seed=6)]
    ids = torch.zeros(2, 9, dtype=torch.long, device=DEVICE)
    mask = torch.zeros_like(ids)
    for b, p in enumerate(prompts):
        ids[b, :p.shape[0]], mask[b, :p.shape[0]] = p, 1
    got = logits(model, name, ids, attention_mask=mask, use_cache=False)
    assert calls == ["prefill"] * 2
    for b, p in enumerate(prompts):
        diff = (got[b, :p.shape[0]] - logits(model, "sdpa", p[None])[0]).abs().max().item()
        assert diff <= ATOL32, (b, diff)
    ids, mask, _ = left_padded(prompts)
    static = dict(attention_mask=mask, cache_implementation="static", new_tokens=4,
                  disable_compile=True)  # no automatic torch.compile on a GPU
    calls.clear()
    assert greedy(model, name, ids, **static) == greedy(model, "sdpa", ids, **static)
    assert calls[:2] == ["paged_prefill"] * 2 and set(calls[2:]) == {"sparse_decode"}


def test_chunked_prefill_with_a_cache(name, calls):
    """q_len > 1 on top of a cache (bottom-right causal), with a left-padded batch."""
    model = build(transformers.LlamaConfig, name)
    ids, mask, pos = left_padded([tokens(6, seed=7), tokens(10, seed=8)])
    want = logits(model, "sdpa", ids, attention_mask=mask, position_ids=pos)
    model.set_attn_implementation(name)
    got = _in_two_chunks(model, ids, mask, pos, transformers.DynamicCache(config=model.config))
    valid = mask.bool()
    assert (got - want)[valid].abs().max().item() <= ATOL32
    assert calls == ["paged_prefill"] * 4  # new tokens against the cache, read in place


@pytest.mark.parametrize("dtype", [torch.float32, *LOWP], ids=str)
def test_qwen3_gqa_wide_heads_match_sdpa(name, dtype):
    """Qwen3: q/k norms, GQA, head_dim 32 != hidden / heads (16); padded batch too."""
    model = build(transformers.Qwen3Config, name, head_dim=32)
    assert model.model.layers[0].self_attn.head_dim == 32
    ids, mask, pos = left_padded([tokens(8, seed=9), tokens(11, seed=10)])
    if dtype != torch.float32:
        return check_lowp(model, name, dtype, ids)
    for kw in ({}, dict(attention_mask=mask, position_ids=pos)):
        diff = logits(model, name, ids, **kw) - logits(model, "sdpa", ids, **kw)
        if kw:
            diff = diff[mask.bool()]
        assert diff.abs().max().item() <= ATOL32, kw


def test_bidirectional_model_matches_eager(name, calls):
    """config.is_causal=False: transformers builds a bidirectional (padding-only) mask."""
    model = build(transformers.LlamaConfig, name, is_causal=False)
    ids, mask, pos = left_padded([tokens(6, seed=11), tokens(9, seed=12)])
    kw = dict(attention_mask=mask, position_ids=pos)
    diff = logits(model, name, ids, **kw) - logits(model, "eager", ids, **kw)
    assert diff[mask.bool()].abs().max().item() <= ATOL32
    # non-causal: the padding rows see every valid key too, so a sequence has more real
    # rows than keys, which paged_prefill does not take: keys packed as well
    assert calls == ["prefill_varlen"] * 2


def test_user_4d_masks(name):
    """A 4-D mask passed to the model is used if it is causal/full over valid keys (here
    an additive float mask with a hole), refused if it is anything else."""
    model = build(transformers.LlamaConfig, name)
    ids = tokens(2, 8, seed=13)
    keep = torch.tril(torch.ones(8, 8, dtype=torch.bool, device=DEVICE)).repeat(2, 1, 1, 1)
    keep[1, :, :, 3] = False  # sequence 1: token 3 is padding in the middle
    additive = torch.zeros(keep.shape, device=DEVICE).masked_fill(~keep, torch.finfo().min)
    got = logits(model, name, ids, attention_mask=additive)
    want = logits(model, "eager", ids, attention_mask=additive)
    rows = torch.ones(2, 8, dtype=torch.bool, device=DEVICE)
    rows[1, 3] = False  # our padding row gives 0 (finite), eager's its own value
    assert (got - want)[rows].abs().max().item() <= ATOL32
    assert torch.isfinite(got).all()
    with pytest.raises(NotImplementedError, match="additive attention bias"):
        logits(model, name, ids, attention_mask=additive + 0.5 * keep)
    per_head = keep.repeat(1, 4, 1, 1)
    per_head[0, 1, 5, 2] = False
    with pytest.raises(NotImplementedError, match="differ between heads"):
        logits(model, name, ids, attention_mask=per_head)
    window = keep & ~torch.tril(keep, diagonal=-3)  # a sliding window of 3 (left 2)
    with pytest.raises(NotImplementedError, match="keys with holes"):  # sequence 1's hole
        logits(model, name, ids, attention_mask=window)
    window[1] = window[0]  # no hole: the window is inferred from the mask and used
    window = torch.zeros(keep.shape, device=DEVICE).masked_fill(~window, torch.finfo().min)
    diff = logits(model, name, ids, attention_mask=window) - logits(model, "eager", ids,
                                                                     attention_mask=window)
    assert diff.abs().max().item() <= ATOL32
    prefix_lm = keep.clone()
    prefix_lm[:, :, :3, :3] = True  # a bidirectional prefix
    with pytest.raises(NotImplementedError, match="mask pattern"):
        logits(model, name, ids, attention_mask=prefix_lm)


def test_masks_with_holes_and_per_sequence_shifts_against_float64(name):
    """attention_forward straight on tensors: causal masks with holes, left padding and
    a different cache offset per sequence (packed path), full masks with holes (packed,
    non-causal), q_len 1 with holes (sparse decode), each against a float64 softmax."""
    g = torch.Generator().manual_seed(14)
    batch, hq, hkv, lq, lk, d = 3, 4, 2, 5, 9, 16
    q, k, v = (torch.randn(batch, h, n, d, generator=g).to(DEVICE)
               for h, n in ((hq, lq), (hkv, lk), (hkv, lk)))
    module = torch.nn.Module()
    module.is_causal = True
    j, i = torch.arange(lk), torch.arange(lq)
    valid = torch.ones(batch, lk, dtype=torch.bool)
    valid[0, :3] = False  # left padding
    valid[1, 5] = False  # a hole inside the queries' part
    valid[2, 1] = False  # a hole in the cache part
    shift = torch.tensor([4, 4, 2])  # sequence 2: two unused slots at the end (static cache)
    causal = valid[:, None, :] & (j[None, None, :] <= i[None, :, None] + shift[:, None, None])
    full = valid[:, None, :].expand(batch, lq, lk)
    for keep, q_rows in ((causal, lq), (full, lq), (causal[:, -1:], 1), (full[:, :1], 1)):
        mask = keep[:, None].to(DEVICE)
        qq = q[:, :, -q_rows:] if q_rows == 1 else q
        out, weights = backend.attention_forward(module, qq, k, v, mask, scaling=0.3)
        assert weights is None and out.shape == (batch, q_rows, hq, d)
        scores = torch.einsum("bhqd,bhkd->bhqk", qq.double(), k.double().repeat_interleave(
            2, 1)) * 0.3
        probs = scores.masked_fill(~mask, float("-inf")).softmax(-1).nan_to_num(0.0)
        ref = torch.einsum("bhqk,bhkd->bqhd", probs, v.double().repeat_interleave(2, 1))
        if keep is causal:  # real rows: the row's own token is a valid key
            pos = i[None, :] + shift[:, None]
            real = valid.gather(1, pos.clamp(max=lk - 1)) & (pos < lk)
        else:
            real = keep.any(-1)
        real = real.to(DEVICE)
        assert torch.isfinite(out).all()
        err = (out.double() - ref)[real].abs().max().item()
        assert err <= 1e-5, (keep.shape, err)  # fp32 kernels vs float64, values O(1)


def test_packed_keys_when_the_cache_cannot_be_paged(name, calls):
    """A K/V tensor whose batch stride is not a multiple of its row stride ([Lk, B, Hkv, D]
    storage) cannot be viewed as one-token pages: the keys are packed and prefill_varlen
    runs, with the bits of the paged path on the same values."""
    g = torch.Generator().manual_seed(16)
    batch, hq, hkv, lq, lk, d = 2, 4, 2, 3, 7, 16
    q = torch.randn(batch, hq, lq, d, generator=g).to(DEVICE)
    k, v = (torch.randn(lk, batch, hkv, d, generator=g).to(DEVICE).permute(1, 2, 0, 3)
            for _ in range(2))
    valid = torch.ones(batch, lk, dtype=torch.bool)
    valid[0, :2] = False  # left padding: the packed path
    j, i = torch.arange(lk), torch.arange(lq)
    mask = (valid[:, None, :] & (j[None, None, :] <= i[None, :, None] + lk - lq))[:, None]
    module = torch.nn.Module()
    module.is_causal = True
    strided, _ = backend.attention_forward(module, q, k, v, mask.to(DEVICE), scaling=0.25)
    dense, _ = backend.attention_forward(module, q, k.contiguous(), v.contiguous(),
                                         mask.to(DEVICE).clone(), scaling=0.25)
    assert calls == ["prefill_varlen", "paged_prefill"]
    real = valid[:, lk - lq:].to(DEVICE)  # query row i is key lk - lq + i
    assert (strided - dense)[real].abs().max().item() <= 1e-6


# --------------------------------------------------------------------------- variants

WINDOW = 4  # sliding_window: key kv visible from query q iff q - 4 < kv <= q (left 3)
GEMMA2 = dict(sliding_window=WINDOW, attn_logit_softcapping=2.0, query_pre_attn_scalar=16,
              final_logit_softcapping=None)  # layer_types: sliding, full (the default)
GPT_OSS = dict(sliding_window=WINDOW, num_local_experts=2, num_experts_per_tok=1,
               rope_parameters={"rope_type": "default", "rope_theta": 150000.0})


def check_variant_model(model, name, calls, want_mods):
    """A 2-layer model whose layer 0 is a sliding-window layer and layer 1 a full one,
    against eager: a [2, 12] forward (one dense prefill per layer, layer 0 with
    window=(3, 0), both with the model's softcap / sinks), a left-padded batch against
    each prompt alone, and greedy tokens of that batch (a DynamicCache whose sliding
    layer keeps only the last WINDOW - 1 tokens)."""
    assert model.config.layer_types == ["sliding_attention", "full_attention"]
    ids = tokens(2, 12, seed=21)
    ours = logits(model, name, ids)
    assert calls == ["prefill"] * 2
    assert [kw["window"] for kw in calls.kwargs] == [(WINDOW - 1, 0), None]
    for kw in calls.kwargs:
        for key, value in want_mods(kw).items():
            assert value, (key, kw)
    diff = (ours - logits(model, "eager", ids)).abs().max().item()
    assert diff <= ATOL32, diff
    prompts = [tokens(7, seed=22), tokens(12, seed=23)]
    ids, mask, pos = left_padded(prompts)
    calls.clear()
    batched = logits(model, name, ids, attention_mask=mask, position_ids=pos)
    assert calls == ["paged_prefill"] * 2  # left padding: packed queries, keys in place
    assert calls.kwargs[0]["window"] == (WINDOW - 1, 0) and calls.kwargs[1]["window"] is None
    for b, p in enumerate(prompts):
        alone = logits(model, "eager", p[None])
        diff = (batched[b, -p.shape[0]:] - alone[0]).abs().max().item()
        assert diff <= ATOL32, (b, diff)
    calls.clear()
    got = greedy(model, name, ids, new_tokens=4, attention_mask=mask)
    assert set(calls[2:]) == {"decode", "sparse_decode"}  # sliding: the last WINDOW keys
    assert got == [greedy(model, "eager", p[None], new_tokens=4)[0] for p in prompts]


def test_gemma2_softcap_and_sliding_window_match_eager(name, calls):
    """Gemma 2: logit soft-capping (attn_logit_softcapping, passed as `softcap`) on every
    layer, a sliding window on every other one; both change these logits by O(1)."""
    model = build(transformers.Gemma2Config, name, **GEMMA2)
    check_variant_model(model, name, calls,
                        lambda kw: {"softcap": kw["softcap"] == 2.0, "no sinks": "sinks" not in kw})
    ids = tokens(2, 12, seed=21)
    want = logits(model, "eager", ids)
    for off in (dict(sliding_window=64), dict(attn_logit_softcapping=None)):
        other = logits(build(transformers.Gemma2Config, name, **{**GEMMA2, **off}), "eager", ids)
        assert (other - want).abs().max().item() > 0.1, off  # the variant matters here


def test_gpt_oss_sinks_and_sliding_window_match_eager(name, calls):
    """gpt-oss: attention sinks (s_aux=module.sinks, one logit per query head) on every
    layer, a sliding window on every other one; tiny MoE (2 experts, top 1)."""
    model = build(transformers.GptOssConfig, name, **GPT_OSS)
    sinks = [layer.self_attn.sinks for layer in model.model.layers]

    def mods(kw):
        return {"sinks": kw["sinks"].dtype == torch.float32 and any(
                    torch.equal(kw["sinks"], s.detach()) for s in sinks),
                "no softcap": kw["softcap"] is None}
    check_variant_model(model, name, calls, mods)
    ids = tokens(2, 12, seed=21)
    want = logits(model, "eager", ids)
    wide = build(transformers.GptOssConfig, name, **{**GPT_OSS, "sliding_window": 64})
    assert (logits(wide, "eager", ids) - want).abs().max().item() > 0.1
    with torch.no_grad():
        for s in sinks:
            s.fill_(float("-inf"))  # no sink
    assert (logits(model, "eager", ids) - want).abs().max().item() > 0.1


def test_sliding_window_chunked_prefill_and_qwen2(name, calls):
    """Mistral (every layer sliding) against sdpa: a left-padded batch prefilled in two
    chunks on a DynamicCache that keeps every key (the second chunk's window starts
    inside the cache: keys before it are dropped, the window counted in place) and on
    one built from the config (sliding layers keep only the last WINDOW - 1 keys, so
    the key tensor starts at position 2); greedy tokens with a StaticCache. Qwen2 with one
    full and one sliding layer."""
    model = build(transformers.MistralConfig, name, sliding_window=WINDOW)
    ids, mask, pos = left_padded([tokens(6, seed=24), tokens(10, seed=25)])
    want = logits(model, "sdpa", ids, attention_mask=mask, position_ids=pos)
    model.set_attn_implementation(name)
    for cache in (transformers.DynamicCache(), transformers.DynamicCache(config=model.config)):
        calls.clear()
        got = _in_two_chunks(model, ids, mask, pos, cache)
        assert (got - want)[mask.bool()].abs().max().item() <= ATOL32
        assert calls == ["paged_prefill"] * 4
        assert all(kw["window"] == (WINDOW - 1, 0) for kw in calls.kwargs)
    static = dict(attention_mask=mask, cache_implementation="static", new_tokens=4,
                  disable_compile=True)  # sliding layers: a rolling buffer of WINDOW slots
    assert greedy(model, name, ids, **static) == greedy(model, "sdpa", ids, **static)
    qwen2 = build(transformers.Qwen2Config, name, use_sliding_window=True,
                  sliding_window=WINDOW, max_window_layers=1)
    assert qwen2.config.layer_types == ["full_attention", "sliding_attention"]
    ids = tokens(2, 12, seed=26)
    assert (logits(qwen2, name, ids) - logits(qwen2, "sdpa", ids)).abs().max() <= ATOL32


def test_windowed_masks_with_softcap_and_sinks_against_float64(name, calls):
    """attention_forward straight on tensors, sliding-window causal masks (left 2) with a
    softcap and sinks, against a float64 softmax: left padding and a different cache
    offset per sequence (paged_prefill, the window counted among each sequence's keys),
    a cache whose first keys no window reaches (dense prefill), right padding (prefill
    with lengths), one query row with contiguous keys (decode
    with a window) and with a hole (sparse_decode over the mask row's positions); a hole
    inside a window with several query rows is refused."""
    g = torch.Generator().manual_seed(27)
    batch, hq, hkv, lq, lk, d, left, cap = 3, 4, 2, 5, 10, 16, 2, 1.5
    q, k, v = (torch.randn(batch, h, n, d, generator=g).to(DEVICE)
               for h, n in ((hq, lq), (hkv, lk), (hkv, lk)))
    sinks = torch.randn(hq, generator=g).to(DEVICE)
    module = torch.nn.Module()
    module.is_causal = True
    j, i = torch.arange(lk), torch.arange(lq)

    def window_mask(valid, shift):
        own = i[None, :, None] + shift[:, None, None]
        return valid[:, None, :] & (j[None, None, :] <= own) & (j[None, None, :] >= own - left)

    def check(keep, qq, real, kernel, window):
        calls.clear()
        mask = keep[:, None].to(DEVICE)
        out, _ = backend.attention_forward(module, qq, k, v, mask, scaling=0.3, softcap=cap,
                                           s_aux=sinks)
        assert calls == [kernel] and calls.kwargs[0]["window"] == window, calls
        scores = torch.einsum("bhqd,bhkd->bhqk", qq.double(),
                              k.double().repeat_interleave(2, 1)) * 0.3
        scores = (cap * torch.tanh(scores / cap)).masked_fill(~mask, float("-inf"))
        sink = sinks.double()[None, :, None, None].expand(*scores.shape[:3], 1)
        probs = torch.cat([scores, sink], -1).softmax(-1)[..., :-1]
        ref = torch.einsum("bhqk,bhkd->bqhd", probs, v.double().repeat_interleave(2, 1))
        assert torch.isfinite(out).all()
        err = (out.double() - ref)[real.to(DEVICE)].abs().max().item()
        assert err <= 1e-5, (kernel, err)

    valid = torch.ones(batch, lk, dtype=torch.bool)
    valid[0, :4] = False  # left padding
    valid[2, 8:] = False  # a static cache's unused slots
    shift = torch.tensor([5, 5, 3])
    keep = window_mask(valid, shift)
    real = valid.gather(1, (i[None, :] + shift[:, None]).clamp(max=lk - 1))
    check(keep, q, real, "paged_prefill", (left, 0))
    every = torch.ones(batch, lk, dtype=torch.bool)  # a cache that keeps every key: keys
    all_real = torch.ones(batch, lq, dtype=torch.bool)  # before the windows read as valid
    check(window_mask(every, torch.full((batch,), lk - lq)), q, all_real, "prefill", (left, 0))
    valid = torch.ones(batch, lk, dtype=torch.bool)
    valid[0, 7:], valid[1, 9:] = False, False  # right padding: keys and rows prefixes
    shift = torch.tensor([7 - 3, 9 - 4, lk - lq])
    real = torch.ones(batch, lq, dtype=torch.bool)
    real[0, 3:], real[1, 4:] = False, False
    check(window_mask(valid, shift), q, real, "prefill", (left, 0))
    one = torch.ones(batch, 1, dtype=torch.bool)
    valid = torch.ones(batch, lk, dtype=torch.bool)
    valid[0, 8:] = False  # sequence 0's last token is 7: a window of 5..7
    shift = torch.tensor([7, 9, 9])
    check(window_mask(valid, shift)[:, :1], q[:, :, :1], one, "decode", (left, 0))
    valid[1, 8] = False  # a hole inside sequence 1's window
    check(window_mask(valid, shift)[:, :1], q[:, :, :1], one, "sparse_decode", None)
    shift = torch.tensor([5, 5, 5])
    with pytest.raises(NotImplementedError, match="keys with holes"):
        backend.attention_forward(module, q, k, v, window_mask(valid, shift)[:, None].to(
            DEVICE), scaling=0.3)


# --------------------------------------------------------------------------- refused


def _raises(model, match, train=False, **kw):
    model.train(train)
    ctx = torch.enable_grad() if train else torch.no_grad()
    with ctx, pytest.raises(NotImplementedError, match=match):
        model(tokens(2, 6, seed=15), **kw)


def test_chunked_and_bidirectional_sliding_attention_are_refused(name):
    _raises(build(transformers.LlamaConfig, name, attention_chunk_size=4), "chunked attention")
    # is_causal=False with a window: transformers builds |q - kv| <= w masks, not causal
    _raises(build(transformers.MistralConfig, name, sliding_window=4, is_causal=False),
            "mask pattern")


def test_training_features_are_refused(name):
    _raises(build(transformers.LlamaConfig, name, attention_dropout=0.1), "dropout",
            train=True)
    _raises(build(transformers.LlamaConfig, name), "attention weights",
            output_attentions=True)
    packed = torch.tensor([[0, 1, 2, 0, 1, 2]] * 2, device=DEVICE)  # two sequences per row
    _raises(build(transformers.LlamaConfig, name), "mask pattern", position_ids=packed,
            use_cache=False)


def test_forward_with_grad_runs_and_backward_raises(name):
    model = build(transformers.LlamaConfig, name).train()  # attention_dropout is 0
    ids = tokens(1, 6, seed=16)
    out = model(ids).logits  # grad enabled: the forward works ...
    with torch.no_grad():
        assert (out - logits(model, "sdpa", ids)).abs().max().item() <= ATOL32
    with pytest.raises(NotImplementedError, match="gradients"):
        out.sum().backward()  # ... and a training step through it fails loudly


def test_alibi_and_indexed_attention_are_refused(name):
    """Falcon's ALiBi asks for a mask (allow_is_causal_skip=False) and adds its bias to
    it: with no padding the mask used to come back None and Falcon crashed on it
    (AttributeError); now the bias reaches the layer and is refused by name. A layer that
    attends only to top-k selected keys (DeepSeek-V3.2's indexer passes `indices` to
    every backend but eager / sdpa) is refused, not computed densely."""
    falcon = {k: v for k, v in SMALL.items() if k not in ("head_dim", "num_key_value_heads")}
    config = transformers.FalconConfig(**falcon, alibi=True, new_decoder_architecture=False,
                                       multi_query=False, bias=False)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation=name)
    _raises(model.to(DEVICE), "additive attention biases")
    q = k = v = torch.zeros(1, 2, 3, 16, device=DEVICE)
    for kw in ("indices", "block_indices"):
        with pytest.raises(backend.UnsupportedFeatureError, match=r"sparse \(indexed\)"):
            backend.attention_forward(torch.nn.Module(), q, k, v, None, scaling=0.25,
                                      **{kw: torch.zeros(1, 3, 2, dtype=torch.long)})


def test_build_mask_keeps_a_mask_the_model_asks_for(name):
    """allow_is_causal_skip=False (as transformers' sdpa_mask takes it): the exact causal
    mask, never None; without it a plain causal call needs no mask."""
    assert backend.build_mask(2, 4, 4) is None
    mask = backend.build_mask(2, 4, 4, allow_is_causal_skip=False)
    want = torch.ones(4, 4, dtype=torch.bool).tril().expand(2, 1, 4, 4)
    assert mask is not None and mask.dtype == torch.bool and torch.equal(mask, want)
