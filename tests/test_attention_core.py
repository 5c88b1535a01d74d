"""The attention core: one path for score → align → fuse, its fused switch, and every mechanism built on it.

The core's agreement with ``F.scaled_dot_product_attention`` and ``nn.MultiheadAttention`` (bool, float
and causal masks; weights and gradients) is tested in tests/test_transformer.py, on the same functions.
"""
import ast
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

import solutions
from solutions.attention import (AdditiveScore, MultiHeadAttention, attention, causal_mask, masked_softmax,
                                 scaled_dot_product_attention)
from solutions.data import TranslationData, generate_dates
from solutions.foundations.nadaraya_watson import nadaraya_watson
from solutions.history.bahdanau import BahdanauConfig, RNNsearch
from solutions.history.bert import BertConfig, BertModel
from solutions.history.luong import LuongConfig, LuongTranslator
from solutions.history.seq2seq import teacher_forcing
from solutions.history.transformer import Transformer, TransformerConfig

PACKAGE = Path(solutions.__file__).parent
F64 = dict(dtype=torch.float64)


def _qkv(device, lead=(2, 3), tq=4, tk=6, d=8, dv=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    make = lambda *shape: torch.randn(*shape, generator=gen, **F64).to(device).requires_grad_()  # noqa: E731
    return make(*lead, tq, d), make(*lead, tk, d), make(*lead, tk, dv)


def _masks(device, lead=(2, 3), tq=4, tk=6, seed=1):
    gen = torch.Generator().manual_seed(seed)
    keep = torch.rand(lead[0], 1, tq, tk, generator=gen) > 0.4
    keep[0, 0, 2] = False  # one query with every key masked
    bias = torch.randn(tq, tk, generator=gen, **F64)
    return keep.to(device), bias.to(device)


def _grads(output, *inputs):
    return torch.autograd.grad(output.square().sum(), inputs)


# ------------------------------------------------------------------------------ one path, two names
def test_attention_is_the_one_path_for_eq1(device):
    q, k, v = _qkv(device)
    keep, bias = _masks(device)
    for mask in (None, keep, bias):
        ours, w = attention(q, k, v, "scaled_dot", mask)
        same, w2 = scaled_dot_product_attention(q, k, v, attn_mask=mask)
        assert torch.equal(ours, same) and torch.equal(w, w2)
    # the math, spelled out: softmax(QKᵀ/√d + bias) over kept keys, then the weighted sum
    scores = q @ k.transpose(-2, -1) / 8 ** 0.5 + bias
    expected = masked_softmax(scores, keep)
    out, weights = attention(q, k, v, mask=keep, bias=bias)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(out, expected @ v)


@pytest.mark.parametrize("case", ["none", "bool", "float", "bool+float", "causal", "valid_lens", "temperature",
                                  "dot", "broadcast"])
def test_fused_equals_readable_outputs_and_gradients(device, case):
    q, k, v = _qkv(device)
    keep, bias = _masks(device)
    kwargs = {
        "none": {}, "bool": dict(mask=keep), "float": dict(mask=bias), "bool+float": dict(mask=keep, bias=bias),
        "causal": dict(is_causal=True), "valid_lens": dict(valid_lens=torch.tensor([3, 0], device=device)),
        "temperature": dict(temperature=0.3, mask=keep), "dot": dict(score="dot", mask=keep), "broadcast": {},
    }[case]
    if case == "broadcast":  # one set of keys and values for every head
        k2, v2 = (x[:, :1].detach().clone().requires_grad_() for x in (k, v))
        k, v = k2, v2
    readable, weights = attention(q, k, v, **kwargs)
    fused, none = attention(q, k, v, fused=True, **kwargs)
    assert weights is not None and none is None
    torch.testing.assert_close(fused, readable, rtol=1e-10, atol=1e-12)
    for ours, theirs in zip(_grads(fused, q, k, v), _grads(readable, q, k, v)):
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-11)


def test_fused_needs_a_parameter_free_score(device):
    q, k, v = _qkv(device)
    with pytest.raises(ValueError, match="fused=True .* 'dot' or 'scaled_dot'"):
        attention(q, k, v, AdditiveScore(8, 8, 4).to(device, torch.float64), fused=True)


def test_multihead_fused_switch_agrees(device):
    torch.manual_seed(0)
    readable = MultiHeadAttention(16, 4).to(device, torch.float64)
    fused = MultiHeadAttention(16, 4, fused=True).to(device, torch.float64)
    fused.load_state_dict(readable.state_dict())
    x = torch.randn(3, 7, 16, device=device, **F64, requires_grad=True)
    keep = torch.ones(3, 7, dtype=torch.bool, device=device)
    keep[1, 4:] = False
    out, w = readable(x, x, x, key_padding_mask=keep, is_causal=True, need_weights=False)
    fast, none = fused(x, x, x, key_padding_mask=keep, is_causal=True, need_weights=False)
    assert w is not None and none is None  # the readable module always computes its weights
    torch.testing.assert_close(fast, out, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(_grads(fast, x)[0], _grads(out, x)[0], rtol=1e-9, atol=1e-11)
    # asking for weights takes the readable path even on a fused module
    again, weights = fused(x, x, x, key_padding_mask=keep, is_causal=True)
    assert torch.equal(again, out) and weights.shape == (3, 7, 7)


def test_transformer_trains_the_same_on_the_fused_path(device):
    data = TranslationData(generate_dates(16, seed=0))
    batch = next(data.batches(16)).to(device)
    torch.manual_seed(0)
    readable = Transformer(len(data.src_vocab), len(data.tgt_vocab), TransformerConfig.tiny()).to(device).double()
    fused = Transformer(len(data.src_vocab), len(data.tgt_vocab), TransformerConfig.tiny(fused=True)).to(device).double()
    fused.load_state_dict(readable.state_dict())
    ours, _ = readable(batch.src, batch.src_lens, batch.tgt_in, need_weights=False)
    fast, weights = fused(batch.src, batch.src_lens, batch.tgt_in, need_weights=False)
    assert all(w is None for w in weights.encoder + weights.cross)
    torch.testing.assert_close(fast, ours, rtol=1e-9, atol=1e-10)
    grads = [torch.autograd.grad(out.square().mean(), list(m.parameters())) for out, m in ((ours, readable), (fast, fused))]
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


# ------------------------------------------------------------------------------ the layout
def test_attention_core_imports_nothing_else_from_solutions():
    for path in sorted((PACKAGE / "attention").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                outside = node.level > 1 or (node.level == 0 and (node.module or "").startswith("solutions"))
                assert not outside, f"{path.name} imports {'.' * node.level}{node.module}: the core must stand alone"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("solutions") for a in node.names), path.name


def test_no_mechanism_writes_its_own_softmax():
    """Outside the core, no module calls a softmax: every attention goes through masked_softmax."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "attention":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                assert name != "softmax", f"{path.relative_to(PACKAGE)} line {node.lineno} calls softmax itself"


ATTENTION_KERNELS = {"softmax", "_softmax", "scaled_dot_product_attention", "multi_head_attention_forward",
                     "_native_multi_head_attention"}


class _SoftmaxCallers(TorchFunctionMode):
    """Records, for every softmax (or whole attention kernel) computed, the file of the Python code that
    asked for it. Calls made inside another torch function are not seen, so the kernels that hide a softmax
    (PyTorch's multi-head attention, its fused attention) are recorded themselves."""

    def __init__(self):
        super().__init__()
        self.callers = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in ATTENTION_KERNELS:
            frame = sys._getframe(1)
            while frame is not None and "/torch/" in frame.f_code.co_filename:
                frame = frame.f_back
            self.callers.append(Path(frame.f_code.co_filename).resolve() if frame else None)
        return func(*args, **(kwargs or {}))


def _mechanisms(device):
    data = TranslationData(generate_dates(8, seed=0))
    batch = next(data.batches(8)).to(device)
    sv, tv = len(data.src_vocab), len(data.tgt_vocab)
    torch.manual_seed(0)

    def seq2seq(model):
        return lambda: teacher_forcing(model.to(device), batch.src, batch.src_lens, batch.tgt_in)

    yield "Bahdanau", seq2seq(RNNsearch(BahdanauConfig.tiny(src_vocab=sv, tgt_vocab=tv)))
    for kind in ("global", "local-m", "local-p"):
        yield f"Luong {kind}", seq2seq(LuongTranslator(sv, tv, LuongConfig.tiny(attention=kind)))
    transformer = Transformer(sv, tv, TransformerConfig.tiny()).to(device)
    yield "Transformer", lambda: transformer(batch.src, batch.src_lens, batch.tgt_in)
    bert = BertModel(BertConfig.tiny(vocab_size=sv)).to(device)
    mask = torch.arange(batch.src.shape[1], device=device) < batch.src_lens[:, None]
    yield "BERT", lambda: bert(batch.src, attention_mask=mask, return_attention=True)
    x = torch.rand(5, device=device)
    yield "Nadaraya-Watson", lambda: nadaraya_watson(x, x, x, bandwidth=0.5)


@pytest.mark.parametrize("name", ["Bahdanau", "Luong global", "Luong local-m", "Luong local-p", "Transformer",
                                  "BERT", "Nadaraya-Watson"])
def test_every_mechanism_normalises_its_scores_with_the_core(device, name):
    run = dict(_mechanisms(device))[name]
    with _SoftmaxCallers() as spy:
        run()
    core = (PACKAGE / "attention").resolve()
    assert (core / "masking.py") in spy.callers, f"{name} never called the core's masked_softmax"
    outside = {str(c) for c in spy.callers if c is None or c.parent != core}
    assert not outside, f"{name} computed attention outside the core, in {sorted(outside)}"


def test_the_softmax_spy_sees_a_private_softmax(device):
    """The spy above can fail: a softmax or a PyTorch attention module used outside the core is caught."""
    x = torch.randn(1, 3, 8, device=device)
    theirs = torch.nn.MultiheadAttention(8, 2, batch_first=True).to(device)
    with _SoftmaxCallers() as spy:
        torch.softmax(torch.randn(2, 3, device=device), dim=-1)
        masked_softmax(torch.randn(2, 3, device=device), causal_mask(2, 3, device=device))
        theirs(x, x, x)
    here = Path(__file__).resolve()
    assert spy.callers == [here, (PACKAGE / "attention" / "masking.py").resolve(), here]


def test_what_pytorch_does_with_a_query_that_sees_no_key():
    """Chapter 6 says: the course gives zeros; the pinned PyTorch's SDPA (bool mask) gives zeros too, while
    nn.MultiheadAttention and a plain softmax over a row of −∞ give NaN. A torch upgrade that changes any of
    these must change the chapter."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 4)
    keep = torch.ones(3, 3, dtype=torch.bool)
    keep[1] = False  # query 1 may attend to no key
    ours, weights = attention(x, x, x, mask=keep)
    assert torch.equal(ours[0, 1], torch.zeros(4)) and torch.equal(weights[0, 1], torch.zeros(3))
    assert torch.equal(F.scaled_dot_product_attention(x, x, x, attn_mask=keep)[0, 1], torch.zeros(4))
    mha = torch.nn.MultiheadAttention(4, 1, batch_first=True)
    assert torch.isnan(mha(x, x, x, attn_mask=~keep)[0][0, 1]).all()
    assert torch.isnan(torch.softmax(torch.full((3,), -math.inf), -1)).all()
