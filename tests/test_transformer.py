"""Tests for solutions.attention and solutions.history.transformer.

The readable implementations are PROVEN EQUAL to PyTorch's fused / built-in ones with the weights
copied across: outputs, attention weights (where PyTorch returns them) and gradients. The course's
bool masks mean True = may attend; nn.MultiheadAttention's mean True = ignore, hence the ``~``.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from solutions.attention import (MultiHeadAttention, causal_mask, merge_heads, scaled_dot_product_attention, split_heads)
from solutions.history.seq2seq import greedy_decode, teacher_forcing
from solutions.history.transformer import (DecoderLayer, EncoderLayer, PositionalEncoding, PositionwiseFeedForward, Transformer, TransformerConfig, sinusoidal_positional_encoding, train_transformer, transformer_lr)

TOL64 = dict(atol=1e-10, rtol=1e-8)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _randn(*shape, device, gen, dtype=torch.float64, requires_grad=False):
    return torch.randn(*shape, generator=gen, dtype=dtype).to(device).requires_grad_(requires_grad)


def _random_keep(shape, gen, device, p=0.6):
    """Random bool mask (True = may attend) with at least one kept key per row."""
    keep = torch.rand(*shape, generator=gen) < p  # (..., Tq, Tk)
    keep[..., 0] = True
    return keep.to(device)


def _grads(outputs, inputs, gen):
    """Gradients of a random linear function of ``outputs`` with respect to ``inputs``."""
    target = torch.randn(outputs.shape, generator=gen, dtype=outputs.dtype).to(outputs.device)
    return torch.autograd.grad((outputs * target).sum(), inputs)


# ------------------------------------------------------------------------------ weight copying
def _load_mha(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    """Copy nn.MultiheadAttention's packed in-projection (3D, D) into our three (D, D) projections."""
    with torch.no_grad():
        wq, wk, wv = theirs.in_proj_weight.chunk(3, dim=0)  # (3D, D) -> 3 × (D, D)
        bq, bk, bv = theirs.in_proj_bias.chunk(3, dim=0)    # (3D,) -> 3 × (D,)
        for proj, w, b in ((ours.q_proj, wq, bq), (ours.k_proj, wk, bk), (ours.v_proj, wv, bv)):
            proj.weight.copy_(w)
            proj.bias.copy_(b)
        ours.out_proj.weight.copy_(theirs.out_proj.weight)
        ours.out_proj.bias.copy_(theirs.out_proj.bias)


def _load_linear_norm(ours, theirs, names):
    with torch.no_grad():
        for mine, their in names:
            a, b = ours.get_submodule(mine), theirs.get_submodule(their)
            a.weight.copy_(b.weight)
            a.bias.copy_(b.bias)


def _load_encoder_layer(ours: EncoderLayer, theirs: nn.TransformerEncoderLayer) -> None:
    _load_mha(ours.self_attn, theirs.self_attn)
    _load_linear_norm(ours, theirs, [("ff.linear1", "linear1"), ("ff.linear2", "linear2"),
                                     ("norm1", "norm1"), ("norm2", "norm2")])


def _load_decoder_layer(ours: DecoderLayer, theirs: nn.TransformerDecoderLayer) -> None:
    _load_mha(ours.self_attn, theirs.self_attn)
    _load_mha(ours.cross_attn, theirs.multihead_attn)
    _load_linear_norm(ours, theirs, [("ff.linear1", "linear1"), ("ff.linear2", "linear2"), ("norm1", "norm1"),
                                     ("norm2", "norm2"), ("norm3", "norm3")])


def _perturb_norms(module, gen):
    """LayerNorms start at weight 1, bias 0; randomise them so that copying them is tested too."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=gen))


# ------------------------------------------------------------------------------ scaled dot-product
def test_causal_mask_values():
    expected = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    assert torch.equal(causal_mask(3), expected)
    assert torch.equal(causal_mask(2, 4), torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0]], dtype=torch.bool))
    with pytest.raises(ValueError, match="sizes must be"):
        causal_mask(-1)


def test_sdpa_hand_example(device):
    query = torch.tensor([[0.0, 0.0], [2.0, 0.0]], device=device)  # (Tq=2, Dk=2)
    key = torch.tensor([[1.0, 0.0], [0.0, 1.0]], device=device)    # (Tk=2, Dk=2)
    value = torch.tensor([[1.0], [3.0]], device=device)            # (Tk=2, Dv=1)
    out, weights = scaled_dot_product_attention(query, key, value)
    a = math.exp(2 / math.sqrt(2)) / (math.exp(2 / math.sqrt(2)) + 1)  # softmax([√2, 0])[0]
    torch.testing.assert_close(weights, torch.tensor([[0.5, 0.5], [a, 1 - a]], device=device))
    torch.testing.assert_close(out, torch.tensor([[2.0], [a + 3 * (1 - a)]], device=device))


@pytest.mark.parametrize("mask_kind", ["none", "bool", "additive", "causal", "causal_rect", "bool_and_causal"])
def test_sdpa_matches_pytorch(device, mask_kind):
    gen = _gen(1)
    B, H, Tq, Tk, Dk, Dv = 2, 3, 4, 4 if mask_kind != "causal_rect" else 6, 8, 5
    q = _randn(B, H, Tq, Dk, device=device, gen=gen, requires_grad=True)
    k = _randn(B, H, Tk, Dk, device=device, gen=gen, requires_grad=True)
    v = _randn(B, H, Tk, Dv, device=device, gen=gen, requires_grad=True)
    kwargs = {}
    if mask_kind in ("bool", "bool_and_causal"):
        kwargs["attn_mask"] = _random_keep((B, 1, Tq, Tk), gen, device)
    if mask_kind == "additive":
        bias = _randn(B, H, Tq, Tk, device=device, gen=gen)
        bias[..., 1:][~_random_keep((B, H, Tq, Tk - 1), gen, device)] = float("-inf")
        kwargs["attn_mask"] = bias
    if mask_kind.startswith("causal") or mask_kind == "bool_and_causal":
        kwargs["is_causal"] = True
    if mask_kind == "bool_and_causal":  # PyTorch refuses both at once: fold the triangle into the mask
        theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=kwargs["attn_mask"] & causal_mask(Tq, Tk, device))
    else:
        theirs = F.scaled_dot_product_attention(q, k, v, **kwargs)
    ours, weights = scaled_dot_product_attention(q, k, v, **kwargs)
    torch.testing.assert_close(ours, theirs, **TOL64)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, Tq, dtype=q.dtype, device=device), **TOL64)
    g_ours = _grads(ours, (q, k, v), _gen(2))
    g_theirs = _grads(theirs, (q, k, v), _gen(2))
    for a, b in zip(g_ours, g_theirs):
        torch.testing.assert_close(a, b, **TOL64)


def test_sdpa_float32_matches_pytorch(device):
    gen = _gen(3)
    q, k, v = (_randn(2, 5, 16, device=device, gen=gen, dtype=torch.float32) for _ in range(3))
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, is_causal=True)[0],
                               F.scaled_dot_product_attention(q, k, v, is_causal=True), atol=1e-5, rtol=1e-4)


def test_sdpa_weights_match_explicit_softmax(device):
    gen = _gen(4)
    q, k, v = (_randn(3, 4, 6, device=device, gen=gen) for _ in range(3))
    keep = _random_keep((3, 4, 4), gen, device)
    _, weights = scaled_dot_product_attention(q, k, v, attn_mask=keep)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(6)).masked_fill(~keep, float("-inf"))
    torch.testing.assert_close(weights, torch.softmax(scores, -1), **TOL64)
    assert bool((weights[~keep] == 0).all())


def test_sdpa_all_masked_row_is_zero(device):
    gen = _gen(5)
    q, k, v = (_randn(2, 3, 4, device=device, gen=gen, requires_grad=True) for _ in range(3))
    keep = torch.ones(2, 3, 3, dtype=torch.bool, device=device)
    keep[1, 2] = False  # query 2 of example 1 may attend to nothing
    out, weights = scaled_dot_product_attention(q, k, v, attn_mask=keep)
    assert bool((weights[1, 2] == 0).all()) and bool((out[1, 2] == 0).all())
    out.sum().backward()
    assert all(torch.isfinite(x.grad).all() for x in (q, k, v))


def test_sdpa_scaling_is_one_over_sqrt_dk(device):
    """Scaling q by √d_k undoes the 1/√d_k: the weights become softmax(q·k)."""
    gen = _gen(6)
    q, k, v = (_randn(5, 9, device=device, gen=gen) for _ in range(3))
    _, weights = scaled_dot_product_attention(q * 3.0, k, v)  # √9 = 3
    torch.testing.assert_close(weights, torch.softmax(q @ k.T, -1), **TOL64)


def test_sdpa_gradcheck(device):
    gen = _gen(7)
    q, k, v = (_randn(2, 3, 3, device=device, gen=gen, requires_grad=True) for _ in range(3))
    keep = _random_keep((2, 3, 3), gen, device)
    assert torch.autograd.gradcheck(lambda a, b, c: scaled_dot_product_attention(a, b, c, attn_mask=keep)[0],
                                    (q, k, v))
    assert torch.autograd.gradcheck(lambda a, b, c: scaled_dot_product_attention(a, b, c, is_causal=True)[1],
                                    (q, k, v))


def test_sdpa_errors(device):
    x = torch.zeros(2, 3, 4, device=device)
    with pytest.raises(ValueError, match="query has 4 features but keys have 5"):
        scaled_dot_product_attention(x, torch.zeros(2, 3, 5, device=device), x)
    with pytest.raises(ValueError, match="keys have 3 positions but values have 2"):
        scaled_dot_product_attention(x, x, torch.zeros(2, 2, 4, device=device))
    with pytest.raises(ValueError, match="keys have 3 positions but mask has 5"):
        scaled_dot_product_attention(x, x, x, attn_mask=torch.ones(3, 5, dtype=torch.bool, device=device))
    with pytest.raises(ValueError, match="does not broadcast"):
        scaled_dot_product_attention(x, x, x, attn_mask=torch.ones(4, 3, 3, dtype=torch.bool, device=device))
    with pytest.raises(ValueError, match="leading dimensions .* do not broadcast"):
        scaled_dot_product_attention(x, torch.zeros(3, 3, 4, device=device), torch.zeros(3, 3, 4, device=device))
    with pytest.raises(TypeError, match="bool .* or float"):
        scaled_dot_product_attention(x, x, x, attn_mask=torch.ones(3, 3, dtype=torch.long, device=device))


# ------------------------------------------------------------------------------ heads
def test_split_and_merge_heads(device):
    x = torch.arange(2 * 3 * 6, dtype=torch.float32, device=device).view(2, 3, 6)  # (B, T, D)
    heads = split_heads(x, 2)
    assert heads.shape == (2, 2, 3, 3)
    torch.testing.assert_close(heads[1, 1, 2], x[1, 2, 3:])  # head 1 holds features 3..5
    torch.testing.assert_close(merge_heads(heads), x)
    with pytest.raises(ValueError, match="not divisible by 4 heads"):
        split_heads(x, 4)
    with pytest.raises(ValueError, match=r"\(B, H, T, Dh\)"):
        merge_heads(x)


def _mha_pair(device, d_model=12, heads=3, batch_first=True, seed=0):
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(d_model, heads, batch_first=batch_first, dtype=torch.float64).to(device)
    with torch.no_grad():  # PyTorch zero-initialises the biases; make them matter
        theirs.in_proj_bias.normal_()
        theirs.out_proj.bias.normal_()
    ours = MultiHeadAttention(d_model, heads, batch_first=batch_first).to(device, torch.float64)
    _load_mha(ours, theirs)
    return ours, theirs


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("average", [True, False])
@pytest.mark.parametrize("masks", ["none", "padding", "bool_attn", "float_attn", "batched_attn", "both"])
def test_mha_matches_pytorch(device, batch_first, average, masks):
    gen = _gen(11)
    B, Tq, Tk, D, H = 3, 4, 5, 12, 3
    ours, theirs = _mha_pair(device, D, H, batch_first)
    shape_q, shape_k = ((B, Tq, D), (B, Tk, D)) if batch_first else ((Tq, B, D), (Tk, B, D))
    query = _randn(*shape_q, device=device, gen=gen, requires_grad=True)
    key = _randn(*shape_k, device=device, gen=gen, requires_grad=True)
    value = _randn(*shape_k, device=device, gen=gen, requires_grad=True)
    our_kw, their_kw = {}, {}
    if masks in ("padding", "both"):
        lengths = torch.tensor([5, 2, 3], device=device)
        keep = torch.arange(Tk, device=device) < lengths.unsqueeze(1)  # (B, Tk) True = real key
        our_kw["key_padding_mask"], their_kw["key_padding_mask"] = keep, ~keep
    if masks in ("bool_attn", "both"):
        keep = _random_keep((Tq, Tk), gen, device)
        our_kw["attn_mask"], their_kw["attn_mask"] = keep, ~keep
    if masks == "float_attn":
        bias = _randn(Tq, Tk, device=device, gen=gen)
        our_kw["attn_mask"] = their_kw["attn_mask"] = bias
    if masks == "batched_attn":  # PyTorch wants (B·H, Tq, Tk); ours takes (B, H, Tq, Tk)
        keep = _random_keep((B, H, Tq, Tk), gen, device)
        our_kw["attn_mask"], their_kw["attn_mask"] = keep, ~keep.reshape(B * H, Tq, Tk)
    out, weights = ours(query, key, value, average_weights=average, **our_kw)
    ref, ref_weights = theirs(query, key, value, need_weights=True, average_attn_weights=average, **their_kw)
    torch.testing.assert_close(out, ref, **TOL64)
    torch.testing.assert_close(weights, ref_weights, **TOL64)
    assert weights.shape == ((B, Tq, Tk) if average else (B, H, Tq, Tk))
    params_ours = [ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight, ours.out_proj.weight,
                   ours.out_proj.bias]
    g_ours = _grads(out, (query, key, value, *params_ours), _gen(12))
    g_theirs = _grads(ref, (query, key, value, theirs.in_proj_weight, theirs.out_proj.weight,
                            theirs.out_proj.bias), _gen(12))
    for a, b in zip(g_ours[:3], g_theirs[:3]):
        torch.testing.assert_close(a, b, **TOL64)
    torch.testing.assert_close(torch.cat(g_ours[3:6]), g_theirs[3], **TOL64)  # packed (3D, D)
    torch.testing.assert_close(g_ours[6], g_theirs[4], **TOL64)
    torch.testing.assert_close(g_ours[7], g_theirs[5], **TOL64)


def test_mha_causal_matches_pytorch_mask(device):
    gen = _gen(13)
    ours, theirs = _mha_pair(device)
    x = _randn(2, 6, 12, device=device, gen=gen)
    out, _ = ours(x, x, x, is_causal=True)
    ref, _ = theirs(x, x, x, attn_mask=nn.Transformer.generate_square_subsequent_mask(6, device=device,
                                                                                       dtype=torch.float64))
    torch.testing.assert_close(out, ref, **TOL64)


def test_mha_float32_matches_pytorch(device):
    torch.manual_seed(0)
    theirs = nn.MultiheadAttention(16, 4, batch_first=True).to(device)
    ours = MultiHeadAttention(16, 4).to(device)
    _load_mha(ours, theirs)
    x = torch.randn(2, 7, 16, device=device)
    torch.testing.assert_close(ours(x, x, x)[0], theirs(x, x, x)[0], atol=1e-5, rtol=1e-4)
    assert ours(x, x, x)[0].dtype == torch.float32


def test_mha_gradcheck(device):
    torch.manual_seed(0)
    mha = MultiHeadAttention(4, 2).to(device, torch.float64)
    gen = _gen(14)
    x = _randn(1, 3, 4, device=device, gen=gen, requires_grad=True)
    keep = torch.tensor([[True, True, False]], device=device)
    assert torch.autograd.gradcheck(lambda t: mha(t, t, t, key_padding_mask=keep)[0], (x,))


@pytest.mark.parametrize("module", ["mha", "encoder_layer"])
def test_self_attention_without_positions_is_permutation_equivariant(device, module):
    torch.manual_seed(0)
    if module == "mha":
        net = MultiHeadAttention(12, 3).to(device, torch.float64)
        f = lambda x: net(x, x, x)[0]  # noqa: E731
    else:
        net = EncoderLayer(12, 3, 24).to(device, torch.float64)
        f = lambda x: net(x)[0]  # noqa: E731
    gen = _gen(15)
    x = _randn(2, 6, 12, device=device, gen=gen)
    perm = torch.randperm(6, generator=gen).to(device)
    torch.testing.assert_close(f(x[:, perm]), f(x)[:, perm], **TOL64)
    assert not torch.allclose(f(x)[:, perm], f(x)), "the test permutation must move something"


def test_mha_errors(device):
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    mha = MultiHeadAttention(8, 2).to(device)
    x = torch.zeros(2, 3, 8, device=device)
    with pytest.raises(ValueError, match=r"query must be \(B, T, D\) with D = 8"):
        mha(torch.zeros(2, 3, 6, device=device), x, x)
    with pytest.raises(ValueError, match=r"key_padding_mask must be \(B, Tk\) = \(2, 3\)"):
        mha(x, x, x, key_padding_mask=torch.ones(2, 4, dtype=torch.bool, device=device))
    with pytest.raises(TypeError, match="key_padding_mask must be bool"):
        mha(x, x, x, key_padding_mask=torch.ones(2, 3, device=device))
    with pytest.raises(ValueError, match="attn_mask must be"):
        mha(x, x, x, attn_mask=torch.ones(3, 4, dtype=torch.bool, device=device))
    with pytest.raises(ValueError, match="key has 3 positions but value has 4"):
        mha(x, x, torch.zeros(2, 4, 8, device=device))
    with pytest.raises(ValueError, match="batch sizes differ"):
        mha(x, torch.zeros(1, 3, 8, device=device), torch.zeros(1, 3, 8, device=device))


# ------------------------------------------------------------------------------ positions, feed-forward
def test_positional_encoding_by_hand():
    pe = sinusoidal_positional_encoding(50, 8, dtype=torch.float64)
    assert pe.shape == (50, 8)
    torch.testing.assert_close(pe[0], torch.tensor([0.0, 1.0] * 4, dtype=torch.float64))
    assert pe[1, 0].item() == pytest.approx(math.sin(1.0))
    assert pe[1, 1].item() == pytest.approx(math.cos(1.0))
    assert pe[3, 4].item() == pytest.approx(math.sin(3 / 10000 ** (4 / 8)))  # 2i = 4
    assert pe[3, 5].item() == pytest.approx(math.cos(3 / 100))
    assert pe[49, 7].item() == pytest.approx(math.cos(49 / 10000 ** (6 / 8)))
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positional_encoding(5, 7)


def test_positional_encoding_relative_shift_is_linear():
    """Section 3.5: PE(pos + k) is a fixed linear function (a rotation per sin/cos pair) of PE(pos)."""
    pe = sinusoidal_positional_encoding(40, 16, dtype=torch.float64)
    k = 5
    pairs = pe.view(40, 8, 2)  # (P, D/2, 2): (sin, cos) per frequency
    omega = 1 / 10000 ** (torch.arange(0, 16, 2, dtype=torch.float64) / 16)  # (D/2,)
    c, s = torch.cos(k * omega), torch.sin(k * omega)
    shifted_sin = pairs[:-k, :, 0] * c + pairs[:-k, :, 1] * s  # sin(a + b) = sin a cos b + cos a sin b
    torch.testing.assert_close(shifted_sin, pairs[k:, :, 0], **TOL64)


def test_positional_encoding_module(device):
    pe = PositionalEncoding(8, max_len=10).to(device)
    x = torch.zeros(2, 4, 8, device=device, dtype=torch.float64)
    out = pe(x)
    assert out.dtype == torch.float64 and out.device.type == device.type
    torch.testing.assert_close(out[1], sinusoidal_positional_encoding(4, 8, torch.float64, device))
    with pytest.raises(ValueError, match="max_len is 10"):
        pe(torch.zeros(1, 11, 8, device=device))


def test_feed_forward_is_eq2(device):
    torch.manual_seed(0)
    ff = PositionwiseFeedForward(4, 6).to(device)
    x = torch.randn(2, 3, 4, device=device)
    expected = torch.clamp(x @ ff.linear1.weight.T + ff.linear1.bias, min=0) @ ff.linear2.weight.T + ff.linear2.bias
    torch.testing.assert_close(ff(x), expected)
    torch.testing.assert_close(ff(x)[1, 2], ff(x[1:2, 2:3])[0, 0])  # position-wise


# ------------------------------------------------------------------------------ layers vs PyTorch
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_pytorch(device, norm_first):
    torch.manual_seed(0)
    gen = _gen(21)
    D, H, Fdim, B, S = 12, 3, 20, 3, 5
    theirs = nn.TransformerEncoderLayer(D, H, Fdim, dropout=0.0, activation="relu", batch_first=True,
                                        norm_first=norm_first, dtype=torch.float64).to(device)
    _perturb_norms(theirs, gen)
    ours = EncoderLayer(D, H, Fdim, dropout=0.0, norm_first=norm_first).to(device, torch.float64)
    _load_encoder_layer(ours, theirs)
    x = _randn(B, S, D, device=device, gen=gen, requires_grad=True)
    keep = torch.arange(S, device=device) < torch.tensor([5, 3, 1], device=device).unsqueeze(1)  # (B, S)
    out, weights = ours(x, key_padding_mask=keep)
    ref = theirs(x, src_key_padding_mask=~keep)
    torch.testing.assert_close(out, ref, **TOL64)
    assert weights.shape == (B, H, S, S)
    assert bool((weights[2, :, :, 1:] == 0).all()), "padding keys must get weight 0"
    (g_ours,) = _grads(out, (x,), _gen(22))
    (g_theirs,) = _grads(ref, (x,), _gen(22))
    torch.testing.assert_close(g_ours, g_theirs, **TOL64)
    # parameter gradients too: the first feed-forward weight and the first LayerNorm
    for mine, their in (("ff.linear1.weight", "linear1.weight"), ("norm1.weight", "norm1.weight"),
                        ("self_attn.out_proj.weight", "self_attn.out_proj.weight")):
        out, _ = ours(x, key_padding_mask=keep)
        ref = theirs(x, src_key_padding_mask=~keep)
        a = torch.autograd.grad(out.square().sum(), ours.get_parameter(mine))[0]
        b = torch.autograd.grad(ref.square().sum(), theirs.get_parameter(their))[0]
        torch.testing.assert_close(a, b, **TOL64)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_pytorch(device, norm_first):
    torch.manual_seed(1)
    gen = _gen(23)
    D, H, Fdim, B, T, S = 12, 3, 20, 3, 4, 6
    theirs = nn.TransformerDecoderLayer(D, H, Fdim, dropout=0.0, activation="relu", batch_first=True,
                                        norm_first=norm_first, dtype=torch.float64).to(device)
    _perturb_norms(theirs, gen)
    ours = DecoderLayer(D, H, Fdim, dropout=0.0, norm_first=norm_first).to(device, torch.float64)
    _load_decoder_layer(ours, theirs)
    x = _randn(B, T, D, device=device, gen=gen, requires_grad=True)
    memory = _randn(B, S, D, device=device, gen=gen, requires_grad=True)
    src_keep = torch.arange(S, device=device) < torch.tensor([6, 2, 4], device=device).unsqueeze(1)  # (B, S)
    tgt_keep = torch.arange(T, device=device) < torch.tensor([4, 4, 2], device=device).unsqueeze(1)  # (B, T)
    out, self_w, cross_w = ours(x, memory, memory_key_padding_mask=src_keep, tgt_key_padding_mask=tgt_keep)
    ref = theirs(x, memory, tgt_mask=~causal_mask(T, device=device),
                 memory_key_padding_mask=~src_keep, tgt_key_padding_mask=~tgt_keep, tgt_is_causal=True)
    torch.testing.assert_close(out, ref, **TOL64)
    assert self_w.shape == (B, H, T, T) and cross_w.shape == (B, H, T, S)
    assert bool((self_w.triu(1) == 0).all()), "no weight above the diagonal (causal)"
    assert bool((cross_w[1, :, :, 2:] == 0).all())
    g_ours = _grads(out, (x, memory), _gen(24))
    g_theirs = _grads(ref, (x, memory), _gen(24))
    for a, b in zip(g_ours, g_theirs):
        torch.testing.assert_close(a, b, **TOL64)


def test_decoder_layer_weights_match_pytorch_attention(device):
    """The per-head weights our decoder layer returns are those of nn.MultiheadAttention inside it."""
    torch.manual_seed(2)
    gen = _gen(25)
    theirs = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True, dtype=torch.float64).to(device)
    ours = DecoderLayer(8, 2, 16).to(device, torch.float64)
    _load_decoder_layer(ours, theirs)
    x, memory = _randn(2, 3, 8, device=device, gen=gen), _randn(2, 5, 8, device=device, gen=gen)
    _, self_w, cross_w = ours(x, memory)
    _, ref_self = theirs.self_attn(x, x, x, attn_mask=~causal_mask(3, device=device), average_attn_weights=False)
    h = theirs.norm1(x + theirs.self_attn(x, x, x, attn_mask=~causal_mask(3, device=device))[0])
    _, ref_cross = theirs.multihead_attn(h, memory, memory, average_attn_weights=False)
    torch.testing.assert_close(self_w, ref_self, **TOL64)
    torch.testing.assert_close(cross_w, ref_cross, **TOL64)


def test_encoder_layer_gradcheck(device):
    torch.manual_seed(0)
    layer = EncoderLayer(4, 2, 6, norm_first=True).to(device, torch.float64)
    x = _randn(1, 3, 4, device=device, gen=_gen(26), requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: layer(t)[0], (x,))


# ------------------------------------------------------------------------------ the model
def _tiny_model(device, dtype=torch.float64, **overrides):
    torch.manual_seed(0)
    return Transformer(11, 13, TransformerConfig.tiny(**overrides)).to(device, dtype).eval()


@pytest.mark.parametrize("norm_first", [False, True])
def test_causal_decoder_never_looks_ahead(device, norm_first):
    model = _tiny_model(device, norm_first=norm_first)
    src = torch.tensor([[4, 5, 6, 2], [7, 8, 2, 0]], device=device)
    src_lens = torch.tensor([4, 3], device=device)
    tgt = torch.tensor([[1, 4, 5, 6, 7], [1, 8, 9, 10, 11]], device=device)
    logits, weights = model(src, src_lens, tgt)
    changed = tgt.clone()
    changed[:, 3] = 12  # change a future token
    logits2, _ = model(src, src_lens, changed)
    torch.testing.assert_close(logits2[:, :3], logits[:, :3], **TOL64)
    assert not torch.allclose(logits2[:, 3:], logits[:, 3:]), "later positions must see the change"
    assert bool((weights.decoder_self[0].triu(1) == 0).all())
    assert bool((weights.cross[0][1, :, :, 3] == 0).all()) and bool((weights.encoder[0][1, :, :, 3] == 0).all())


def test_step_interface_equals_parallel_forward(device):
    """Teacher forcing one step at a time (solutions.history.seq2seq) gives the parallel forward pass."""
    model = _tiny_model(device)
    src = torch.tensor([[4, 5, 6, 2], [7, 8, 2, 0]], device=device)
    src_lens = torch.tensor([4, 3], device=device)
    tgt = torch.tensor([[1, 4, 5, 6], [1, 8, 9, 0]], device=device)
    logits, weights = model(src, src_lens, tgt)
    step_logits, step_weights = teacher_forcing(model, src, src_lens, tgt)
    torch.testing.assert_close(step_logits, logits, **TOL64)
    torch.testing.assert_close(step_weights, weights.cross[-1].mean(1), **TOL64)


def test_greedy_decode_runs_and_pads_are_ignored(device):
    model = _tiny_model(device)
    src = torch.tensor([[4, 5, 6, 2], [7, 8, 2, 0]], device=device)
    decoded = greedy_decode(model, src, torch.tensor([4, 3], device=device), max_len=5)
    assert len(decoded.tokens) == 2 and all(len(t) <= 5 for t in decoded.tokens)
    assert decoded.weights[1].shape[1] == 3
    alone = greedy_decode(model, src[1:, :3], torch.tensor([3], device=device), max_len=5)
    assert alone.tokens[0] == decoded.tokens[1], "padding must not change the translation"


def test_model_details():
    model = Transformer(11, 13, TransformerConfig.tiny())
    assert model.output.weight is model.tgt_embed.weight, "target embedding tied with the output layer"
    untied = Transformer(11, 13, TransformerConfig.tiny(tie_target_embeddings=False))
    assert untied.output.weight is not untied.tgt_embed.weight
    assert TransformerConfig().d_model == 512 and TransformerConfig().num_heads == 8
    with pytest.raises(ValueError, match="divisible"):
        Transformer(11, 13, TransformerConfig.tiny(num_heads=3))


def test_transformer_lr_eq3():
    assert transformer_lr(1, 512, 4000) == pytest.approx(512 ** -0.5 * 4000 ** -1.5)
    assert transformer_lr(4000, 512, 4000) == pytest.approx(512 ** -0.5 * 4000 ** -0.5)
    assert transformer_lr(16000, 512, 4000) == pytest.approx(transformer_lr(4000, 512, 4000) / 2)
    with pytest.raises(ValueError):
        transformer_lr(0, 512)


def test_short_training_lowers_the_loss(device, make_dates):
    data, _, _ = make_dates(150, seed=1)
    torch.manual_seed(0)
    model = Transformer(len(data.src_vocab), len(data.tgt_vocab), TransformerConfig.tiny()).to(device)
    history = train_transformer(model, data, epochs=5, batch_size=40, lr=1e-2, warmup=3)
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]


def test_early_stopping_stops_restores_the_best_weights_and_counts_time(make_dates):
    from solutions.history.seq2seq import evaluate, stopping_rule
    data, valid, _ = make_dates(150, seed=1)
    torch.manual_seed(0)
    model = Transformer(len(data.src_vocab), len(data.tgt_vocab), TransformerConfig.tiny())
    # lr 0: the validation loss never improves after the first epoch, so patience 2 stops after epoch 3
    frozen = train_transformer(model, data, epochs=30, batch_size=40, lr=0.0, warmup=3, valid=valid, patience=2,
                               progress=False)
    assert [h["epoch"] for h in frozen] == [1, 2, 3], "patience 2 ends training two epochs after the best"
    history = train_transformer(model, data, epochs=8, batch_size=40, lr=1e-2, warmup=3, valid=valid, patience=8,
                                progress=False)
    losses = [h["valid_loss"] for h in history]
    best = min(range(len(history)), key=losses.__getitem__)
    assert evaluate(model, valid, with_alignment=False).accuracy == pytest.approx(history[best]["valid_accuracy"]), \
        "the model ends with the weights of its best validation epoch"
    seconds = [h["train_seconds"] for h in history]
    assert all(b > a > 0 for a, b in zip(seconds, seconds[1:])), "train_seconds grows from epoch to epoch"
    with pytest.raises(ValueError, match="valid"):
        train_transformer(model, data, epochs=1, patience=2)
    with pytest.raises(ValueError, match="patience"):
        stopping_rule(0)
    with pytest.raises(ValueError, match="monitor"):
        stopping_rule(2, monitor="valid_bleu")
    assert stopping_rule(None) is None
    rule = stopping_rule(2, enough=1.0)
    assert (rule.monitor, rule.mode, rule.enough) == ("valid_loss", "min", ("valid_accuracy", 1.0))
    assert stopping_rule(3, monitor="valid_accuracy").mode == "max"


def test_teacher_forced_exact_match_equals_greedy_exact_match():
    from solutions.data import TranslationData, generate_date_lists
    from solutions.history.bahdanau import BahdanauConfig, RNNsearch
    from solutions.history.seq2seq import evaluate, teacher_forced_exact_match, train_seq2seq
    data, valid, _ = TranslationData.from_pairs(generate_date_lists(300, 1, seed=3), seed=0)
    torch.manual_seed(0)
    transformer = Transformer(len(data.src_vocab), len(data.tgt_vocab), TransformerConfig.tiny(d_model=32, d_ff=64))
    for restart in range(4):  # four short warm restarts: about 13% exact match, a half-trained model
        train_transformer(transformer, data, epochs=3, batch_size=20, lr=1e-2, warmup=3, progress=False, seed=restart)
    rnn = RNNsearch(BahdanauConfig(len(data.src_vocab), len(data.tgt_vocab), embed_dim=32, hidden_dim=32,
                                   align_dim=32, output_dim=32))
    train_seq2seq(rnn, data, epochs=12, batch_size=20, lr=1e-2, progress=False)
    greedy = evaluate(transformer, valid, with_alignment=False).accuracy
    assert 0 < greedy < 1, "a half-trained model, so that right and wrong examples both occur"
    for model in (transformer, rnn):
        greedy = evaluate(model, valid, with_alignment=False).accuracy
        assert teacher_forced_exact_match(model, valid) == pytest.approx(greedy), type(model).__name__
    parallel = teacher_forced_exact_match(transformer, valid, logits_of=lambda m, b: m(b.src, b.src_lens, b.tgt_in)[0])
    assert parallel == pytest.approx(evaluate(transformer, valid, with_alignment=False).accuracy)
