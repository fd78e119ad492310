"""The custom ops (kernels/ops.py), torch.compile over the public functions, CUDA-graph
capture, and the tuning surface (kernels/tuning.py).

On the CPU the kernels run under the interpreter and torch.compile uses the aot_eager
backend for six of the seven functions (Dynamo tracing with zero graph breaks, AOT
functionalisation of the mutated ``out``) and Inductor for decode (an Inductor compile
costs ~10 s here); on a GPU every function compiles with Inductor.
"""

from __future__ import annotations

import threading

import pytest
import torch

import attention_kernel_triton as akt
from attention_kernel_triton.kernels import ops, tuning
from attention_kernel_triton.kernels._config import Config

NAMES = ["prefill", "prefill_varlen", "decode", "paged_decode", "sparse_decode",
         "sparse_paged_decode", "paged_prefill"]
FP8_NAMES = NAMES[2:]  # the functions that take fp8 caches and k_scale / v_scale


def _fp8(name, tensors, kw):
    """The same call with its K/V caches in float8_e4m3fn: K per KV head, V per tensor."""
    from attention_kernel_triton.kernels.quant import quantize_kv

    k8, ks = quantize_kv(tensors[1], head_axis=1 if name in ("decode", "sparse_decode") else 2)
    v8, vs = quantize_kv(tensors[2])
    return (tensors[0], k8, v8, *tensors[3:]), {**kw, "k_scale": ks, "v_scale": vs}


def _inputs(name: str, device, batch: int = 2, dtype=torch.float16, seed: int = 0):
    """(positional tensors, keyword options) of one small call of public function `name`,
    with lengths, tables and index rows that exercise the real paths (GQA 2, a short
    sequence, pages out of order, -1 slots)."""
    g = torch.Generator().manual_seed(seed)
    hq, hkv, d, n = 4, 2, 16, 40

    def rnd(*shape):
        return torch.randn(shape, generator=g).to(dtype).to(device)

    def i32(values):
        return torch.tensor(values, dtype=torch.int32, device=device)

    lens = i32([n - 7 * b for b in range(batch)])
    if name == "prefill":
        return (rnd(batch, hq, 24, d), rnd(batch, hkv, 24, d), rnd(batch, hkv, 24, d)), dict(
            seq_lens=i32([24 - 5 * b for b in range(batch)]))
    if name == "prefill_varlen":
        lengths = [19 - 6 * b for b in range(batch)]
        total = sum(lengths)
        cu = i32([0] + [sum(lengths[:i + 1]) for i in range(batch)])
        return (rnd(total, hq, d), rnd(total, hkv, d), rnd(total, hkv, d), cu), dict(
            max_seqlen_q=max(lengths))
    q = rnd(batch, hq, d)
    if name in ("decode", "sparse_decode"):
        k, v = rnd(batch, hkv, n, d), rnd(batch, hkv, n, d)
        kw = dict(seq_lens=lens)
        if name == "decode":
            return (q, k, v), kw
        idx = torch.randint(-1, n - 7 * (batch - 1), (batch, hkv, 9), generator=g)
        return (q, k, v, idx.to(torch.int32).to(device)), kw
    page = 8
    pages = batch * n // page
    kc, vc = rnd(pages, page, hkv, d), rnd(pages, page, hkv, d)
    table = torch.randperm(pages, generator=g).to(torch.int32).view(batch, -1).to(device)
    if name == "paged_decode":
        return (q, kc, vc, table, lens), {}
    if name == "paged_prefill":  # 5, 1, 5, ... new tokens at the end of each context
        q_lens = [5 if b % 2 == 0 else 1 for b in range(batch)]
        cu = i32([0] + [sum(q_lens[:i + 1]) for i in range(batch)])
        return (rnd(sum(q_lens), hq, d), kc, vc, table, cu, lens), dict(max_seqlen_q=5)
    idx = torch.randint(-1, n - 7 * (batch - 1), (batch, hq, 9), generator=g)
    return (q, kc, vc, table, lens, idx.to(torch.int32).to(device)), {}


def _variants(tensors, kw):
    """The same call with every variant: a window, a soft-cap, sinks and ALiBi slopes
    (Tensor? arguments) per query head."""
    q = tensors[0]
    hq = q.shape[1]
    return tensors, {**kw, "window": (5, 3), "softcap": 7.5,
                     "sinks": torch.linspace(-2, 2, hq, device=q.device),
                     "alibi_slopes": torch.linspace(0.1, 0.6, hq, device=q.device)}


def _op_args(name: str, tensors, kw, *, return_lse: bool, out):
    """The op's positional arguments for the same call (what api.py passes)."""
    d = tensors[0].shape[-1]
    scale = d ** -0.5
    left, right = kw.get("window", (-1, -1))
    mods = (left, right, kw.get("softcap", 0.0), kw.get("sinks"), kw.get("alibi_slopes"),
            return_lse, out)
    if name == "prefill":
        q, k, v = tensors
        return (q, k, v, kw["seq_lens"], kw["seq_lens"], True, scale, *mods)
    if name == "prefill_varlen":
        q, k, v, cu = tensors
        return (q, k, v, cu, cu, kw["max_seqlen_q"], True, scale, *mods)
    scales = (kw.get("k_scale"), kw.get("v_scale"))
    if name == "decode":
        return (*tensors, kw["seq_lens"], None, scale, *scales, *mods)
    if name == "sparse_decode":
        q, k, v, idx = tensors
        return (q, k, v, idx, kw["seq_lens"], None, scale, *scales, *mods)
    if name == "paged_prefill":
        return (*tensors, kw["max_seqlen_q"], True, None, scale, *scales, *mods)
    return (*tensors, None, scale, *scales, *mods)  # paged, sparse paged


@pytest.mark.parametrize("return_lse", [True, False], ids=["lse", "no_lse"])
@pytest.mark.parametrize("name", NAMES)
def test_opcheck(name, return_lse, device):
    """torch.library.opcheck: schema (the mutated out), fake tensors against the real
    kernel, AOT dispatch with static and dynamic shapes."""
    tensors, kw = _inputs(name, device)
    out = torch.empty_like(tensors[0])
    torch.library.opcheck(ops.OPS[name], _op_args(name, tensors, kw, return_lse=return_lse,
                                                  out=out))


@pytest.mark.parametrize("name", FP8_NAMES)
def test_opcheck_fp8(name, device):
    """The same for fp8 caches with per-head and per-tensor scales (Tensor? arguments),
    without opcheck's schema check: it compares tensors with arithmetic that torch has no
    fp8 kernel for, on the CPU ("mul_cpu_reduced_float") and on CUDA ("mul_cuda", torch
    2.11, H100). The schema is the one test_opcheck checks with fp16 caches."""
    tensors, kw = _fp8(name, *_inputs(name, device))
    out = torch.empty_like(tensors[0])
    utils = ("test_autograd_registration", "test_faketensor", "test_aot_dispatch_dynamic")
    torch.library.opcheck(ops.OPS[name], _op_args(name, tensors, kw, return_lse=True, out=out),
                          test_utils=utils)


@pytest.mark.parametrize("name", NAMES)
def test_opcheck_variants(name, device):
    """The same with every variant option set (ints, a float and two Tensor? arguments)."""
    tensors, kw = _variants(*_inputs(name, device))
    out = torch.empty_like(tensors[0])
    torch.library.opcheck(ops.OPS[name], _op_args(name, tensors, kw, return_lse=True, out=out))


@pytest.mark.parametrize("variants", [False, True], ids=["plain", "variants"])
@pytest.mark.parametrize("name", NAMES)
def test_op_equals_public_call(name, variants, device):
    """Calling the registered op directly gives the public function's bits (the eager
    path skips the dispatcher; both run the same implementation)."""
    tensors, kw = _inputs(name, device)
    if variants:
        tensors, kw = _variants(tensors, kw)
    want, want_lse = getattr(akt, name)(*tensors, **kw, return_lse=True)
    out = torch.full_like(tensors[0], float("nan"))
    lse = getattr(torch.ops.attention_kernel_triton, name)(
        *_op_args(name, tensors, kw, return_lse=True, out=out))
    assert torch.equal(out, want) and torch.equal(lse, want_lse)
    empty = getattr(torch.ops.attention_kernel_triton, name)(
        *_op_args(name, tensors, kw, return_lse=False, out=torch.empty_like(out)))
    assert empty.shape == (0,) and empty.dtype == torch.float32


def _backend(name: str, device) -> str:
    if device.type == "cuda" or name == "decode":
        return "inductor"
    return "aot_eager"


@pytest.mark.parametrize("name", NAMES)
def test_compile_fullgraph_bit_identical(name, device):
    """torch.compile(fullgraph=True) over a function that calls the public function (with
    validate=False) compiles with no graph break and returns the eager call's bits, the
    LSE included; out= is filled in place under compile too."""
    torch._dynamo.reset()
    tensors, kw = _inputs(name, device)
    fn = getattr(akt, name)

    def step(*t):
        out, lse = fn(*t, **kw, return_lse=True, validate=False)
        return out * 1, lse  # a traced op after ours: the graph has more than the op

    explain = torch._dynamo.explain(step)(*tensors)
    assert explain.graph_break_count == 0, explain.break_reasons
    compiled = torch.compile(step, fullgraph=True, backend=_backend(name, device))
    got, got_lse = compiled(*tensors)
    want, want_lse = step(*tensors)
    assert torch.equal(got, want) and torch.equal(got_lse, want_lse)

    def into(out, *t):
        fn(*t, **kw, out=out, validate=False)
        return out.sum()

    out = torch.full_like(want, float("nan"))
    total = torch.compile(into, fullgraph=True, backend="aot_eager")(out, *tensors)
    assert torch.equal(out, want), "out= under compile was not filled with the eager bits"
    assert torch.equal(total, want.sum())


@pytest.mark.parametrize("name", ["prefill_varlen", "paged_decode", "paged_prefill"])
def test_compile_dynamic_shapes(name, device):
    """dynamic=True: the fake implementations give symbolic LSE shapes, and a second batch
    size runs in the same compiled function with the eager bits."""
    torch._dynamo.reset()
    fn = getattr(akt, name)
    compiled = torch.compile(
        lambda t, kw: fn(*t, **kw, return_lse=True, validate=False), dynamic=True,
        fullgraph=True, backend="aot_eager")
    for batch in (2, 3):
        tensors, kw = _inputs(name, device, batch=batch, seed=batch)
        got, got_lse = compiled(tensors, kw)
        want, want_lse = fn(*tensors, **kw, return_lse=True)
        assert torch.equal(got, want) and torch.equal(got_lse, want_lse)


@pytest.mark.parametrize("name", ["prefill", "sparse_paged_decode", "paged_prefill"])
def test_compile_variants(name, device):
    """Every variant option under torch.compile(fullgraph=True): the window and soft-cap
    are constants of the graph, sinks and slopes its tensor inputs; the eager bits."""
    torch._dynamo.reset()
    tensors, kw = _variants(*_inputs(name, device))
    fn = getattr(akt, name)
    compiled = torch.compile(lambda t, kw: fn(*t, **kw, return_lse=True, validate=False),
                             fullgraph=True, backend="aot_eager")
    got, got_lse = compiled(tensors, kw)
    want, want_lse = fn(*tensors, **kw, return_lse=True)
    assert torch.equal(got, want) and torch.equal(got_lse, want_lse)


@pytest.mark.parametrize("option, values", [("softcap", (5.0, 6.0)), ("sm_scale", (0.3, 0.25))])
def test_compile_float_option_that_changes(option, values, device):
    """A float option that changes between calls: Dynamo's automatic dynamic makes it a
    SymFloat on the recompile, whose value checks must trace (math.isfinite did not: a
    graph break under fullgraph=True, session 23). Also with dynamic=True from the first
    call. Each call gives the eager bits. Decode only: the checks are every function's
    (kernels/_validate.py), and each compile costs seconds under the interpreter."""
    fn = akt.decode
    tensors, kw = _inputs("decode", device)
    for dynamic in (None, True):
        torch._dynamo.reset()
        compiled = torch.compile(lambda t, kw, x: fn(*t, **kw, **{option: x}, validate=False),
                                 fullgraph=True, dynamic=dynamic, backend="aot_eager")
        for x in values:
            assert torch.equal(compiled(tensors, kw, x), fn(*tensors, **kw, **{option: x}))


@pytest.mark.parametrize("name", NAMES)
def test_compile_validate_true(name, device):
    """validate=True needs a host-device sync. Under compile it is an explicit graph break
    whose message says to pass validate=False: with fullgraph=True, Dynamo's Unsupported
    error carrying that message; without, the checks and the call run eagerly behind the
    break and give the eager bits."""
    from torch._dynamo.exc import Unsupported

    torch._dynamo.reset()
    tensors, kw = _inputs(name, device)
    fn = getattr(akt, name)
    strict = torch.compile(lambda *t: fn(*t, **kw), fullgraph=True, backend="eager")
    with pytest.raises(Unsupported, match="pass validate=False inside a compiled region"):
        strict(*tensors)
    torch._dynamo.reset()
    lenient = torch.compile(lambda *t: fn(*t, **kw), backend="eager")
    assert torch.equal(lenient(*tensors), fn(*tensors, **kw))


def test_make_fx_traces_the_op(device):
    """Tracers other than Dynamo (make_fx with fake tensors, as export and AOT use) reach
    the op and its fake implementation, never a launch on fake tensors."""
    from torch.fx.experimental.proxy_tensor import make_fx

    tensors, kw = _inputs("decode", device)
    graph = make_fx(lambda q, k, v, lens: akt.decode(q, k, v, seq_lens=lens, validate=False),
                    tracing_mode="fake")(*tensors, kw["seq_lens"])
    targets = {str(n.target) for n in graph.graph.nodes if n.op == "call_function"}
    assert any("attention_kernel_triton.decode" in t for t in targets), targets


def test_compiled_call_follows_the_tuning_active_when_it_runs(device, monkeypatch):
    """The plan is made inside the op at run time: an override around a compiled call
    reaches the launch (seen by a spy on the family's launch), and the bits do not move
    (the program order never changes a bit: program_order_agrees)."""
    from attention_kernel_triton.kernels import prefill as prefill_family

    seen = []
    launch = prefill_family.launch
    monkeypatch.setattr(prefill_family, "launch", lambda p, *a: (
        seen.append((p.args["bh_per_chunk"], p.args["grid_order"])), launch(p, *a))[1])
    torch._dynamo.reset()
    tensors, kw = _inputs("prefill", device)
    compiled = torch.compile(lambda *t: akt.prefill(*t, **kw, validate=False),
                             fullgraph=True, backend="aot_eager")
    want = akt.prefill(*tensors, **kw)
    seen.clear()
    for pairs, three_d in ((1, True), (3, False), (1, False)):
        with tuning.override(prefill_chunk_pairs=pairs, prefill_3d_grid=three_d):
            assert torch.equal(compiled(*tensors), want)
    # one pair per chunk: (levels, Hq, B) on a 3-D grid (order 2), else one axis (0)
    assert seen == [(1, 2), (3, 0), (1, 0)], seen


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_cuda_graph_capture(name):
    """validate=False calls make no host-device sync: each public function, and a compiled
    decode step, can be captured in a CUDA graph; replays give the eager bits and follow
    new inputs copied into the captured tensors."""
    if not torch.cuda.is_available():
        pytest.skip("CUDA graphs need a CUDA device")
    device = torch.device("cuda")
    tensors, kw = _inputs(name, device)
    fn = getattr(akt, name)
    if name == "decode":
        fn = torch.compile(fn, fullgraph=True)
    want = fn(*tensors, **kw, validate=False)
    static_out = torch.empty_like(want)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm up (compile) outside the capture
        fn(*tensors, **kw, out=static_out, validate=False)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn(*tensors, **kw, out=static_out, validate=False)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(static_out, want)
    tensors[0].copy_(torch.randn_like(tensors[0]))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(static_out, fn(*tensors, **kw, validate=False))


# ------------------------------------------------------------------ the tuning surface


def test_tuning_override_nests_and_restores():
    base = tuning.current()
    assert base == tuning.Tuning()
    with tuning.override(tma=False) as outer:
        assert outer.tma is False and tuning.current() is outer
        with tuning.override(prefill_chunk_pairs=3, tma=True):
            assert tuning.current().tma is True and tuning.current().prefill_chunk_pairs == 3
        assert tuning.current() == outer
    assert tuning.current() == base


def test_tuning_override_is_per_thread():
    """A thread's override is invisible to other threads, and a new thread starts from
    the defaults even while another holds an override."""
    seen = {}
    inside, release = threading.Event(), threading.Event()

    def worker():
        with tuning.override(decode_config=Config(16, 32, 1, 1)):
            inside.set()
            release.wait(10)
            seen["worker"] = tuning.current().decode_config

    t = threading.Thread(target=worker)
    t.start()
    assert inside.wait(10)
    seen["main"] = tuning.current().decode_config
    other = threading.Thread(target=lambda: seen.setdefault("fresh", tuning.current()))
    other.start()
    other.join()
    release.set()
    t.join()
    assert seen["main"] is None and seen["fresh"] == tuning.Tuning()
    assert seen["worker"] == Config(16, 32, 1, 1)


@pytest.mark.parametrize("bad, error", [
    (dict(tmaa=True), TypeError),  # unknown name
    (dict(tma="yes"), TypeError),
    (dict(pdl=None), TypeError),
    (dict(prefill_chunk_pairs=0), ValueError),
    (dict(prefill_chunk_pairs=True), ValueError),
    (dict(decode_config=(16, 32, 4, 2)), TypeError),
])
def test_tuning_override_rejects_bad_settings(bad, error):
    with pytest.raises(error, match=next(iter(bad)).rstrip("a")):
        with tuning.override(**bad):
            pass
    assert tuning.current() == tuning.Tuning()


def test_tuning_reaches_the_launch(device):
    """Each knob is read by the plan: a pinned config's tile and a forced chunking show
    in the launch the plan describes (no monkeypatching: the plan is a pure function)."""
    from attention_kernel_triton.kernels import decode as decode_family
    from attention_kernel_triton.kernels import prefill as prefill_family

    (q, k, v), kw = _inputs("prefill", device)
    lay = prefill_family.QKVLayout(q, k, v, torch.empty_like(q), None, kw["seq_lens"],
                                   kw["seq_lens"], num_batch=q.shape[0], varlen=False)
    pinned = Config(32, 16, 1, 1)
    p = prefill_family.plan(lay, causal=True, max_q=q.shape[2], sm_scale=0.25,
                            tune=tuning.Tuning(prefill_config=pinned, prefill_chunk_pairs=3,
                                               tma=False))
    assert (p.consts["BLOCK_M"], p.consts["BLOCK_N"]) == (32, 16)
    assert p.args["bh_per_chunk"] == 3 and not p.consts["USE_TMA"]
    (q, kc, vc, table, lens), _ = _inputs("paged_decode", device)
    layout = decode_family.KVLayout(kc, vc, block_table=table, seq_lens=lens)
    p = decode_family.plan(q, layout, torch.empty_like(q), None, sm_scale=0.25,
                           num_splits=None, tune=tuning.Tuning(decode_config=Config(16, 32, 1, 1),
                                                              pdl=False))
    assert p.consts["BLOCK_N"] == 32 and p.pdl is False
