"""Tests for solutions.attention.scores: the four score functions, their modules and the factory."""
import math

import pytest
import torch

from solutions.attention.scores import (SCORE_FUNCTIONS, SCORES, AdditiveScore, DotScore, GeneralScore, ScaledDotScore, additive_score, dot_score, general_score, make_score, scaled_dot_score)

from helpers import rand

DTYPES = [torch.float32, torch.float64]

# (query shape, keys shape, expected scores shape): plain, batched, multi-head, broadcast layouts
LAYOUTS = [
    ((3, 4), (5, 4), (3, 5)),
    ((2, 3, 4), (2, 5, 4), (2, 3, 5)),
    ((2, 6, 3, 4), (2, 6, 5, 4), (2, 6, 3, 5)),
    ((3, 4), (2, 5, 4), (2, 3, 5)),  # one query set against a batch of key sets
    ((2, 1, 3, 4), (1, 6, 5, 4), (2, 6, 3, 5)),  # broadcast over batch and heads
]


def _all_scores(d_q, d_k, d_h, device, dtype):
    """Callables score(query, keys) for every score, with random weights where needed."""
    weight = rand(d_q, d_k, device=device, dtype=dtype)
    w_q, w_k, v = (rand(d_h, d_q, device=device, dtype=dtype), rand(d_h, d_k, device=device, dtype=dtype),
                   rand(d_h, device=device, dtype=dtype))
    return {
        "dot": dot_score,
        "scaled_dot": scaled_dot_score,
        "general": lambda q, k: general_score(q, k, weight),
        "additive": lambda q, k: additive_score(q, k, w_q, w_k, v),
    }


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("q_shape, k_shape, out_shape", LAYOUTS)
@pytest.mark.parametrize("name", ["dot", "scaled_dot", "general", "additive"])
def test_output_shape_dtype_device(device, name, q_shape, k_shape, out_shape):
    for dtype in DTYPES:
        fn = _all_scores(4, 4, 7, device, dtype)[name]
        out = fn(rand(*q_shape, device=device, dtype=dtype), rand(*k_shape, device=device, dtype=dtype))
        assert out.shape == out_shape
        assert out.dtype == dtype and out.device.type == device.type


@pytest.mark.parametrize("name", ["general", "additive"])
def test_different_query_and_key_sizes(device, name):
    fn = _all_scores(3, 5, 4, device, torch.float64)[name]
    out = fn(rand(2, 4, 3, device=device), rand(2, 6, 5, device=device))
    assert out.shape == (2, 4, 6)


# --------------------------------------------------------------------------- values
@pytest.mark.parametrize("dtype", DTYPES)
def test_dot_score_hand_example(device, dtype):
    query = torch.tensor([[1.0, 2.0]], device=device, dtype=dtype)  # (1, 2)
    keys = torch.tensor([[3.0, 4.0], [0.0, 1.0], [-2.0, 1.0]], device=device, dtype=dtype)  # (3, 2)
    # 1*3 + 2*4 = 11, 1*0 + 2*1 = 2, 1*(-2) + 2*1 = 0
    expected = torch.tensor([[11.0, 2.0, 0.0]], device=device, dtype=dtype)
    torch.testing.assert_close(dot_score(query, keys), expected)
    torch.testing.assert_close(scaled_dot_score(query, keys), expected / math.sqrt(2.0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dot_and_scaled_dot_match_a_loop(device, dtype):
    query, keys = rand(2, 3, 4, 8, device=device, dtype=dtype), rand(2, 3, 5, 8, device=device, dtype=dtype)
    loop = torch.empty(2, 3, 4, 5, device=device, dtype=dtype)
    for b in range(2):
        for h in range(3):
            for i in range(4):
                for j in range(5):
                    loop[b, h, i, j] = sum(query[b, h, i, d] * keys[b, h, j, d] for d in range(8))
    torch.testing.assert_close(dot_score(query, keys), loop)
    torch.testing.assert_close(scaled_dot_score(query, keys), loop / math.sqrt(8))
    torch.testing.assert_close(dot_score(query, keys), torch.einsum("bhqd,bhkd->bhqk", query, keys))


def test_scaled_dot_keeps_unit_variance(device):
    # entries ~ N(0, 1): qᵀk has variance D, qᵀk/√D variance 1 (Vaswani et al. 2017, footnote 4)
    gen = torch.Generator(device="cpu").manual_seed(0)
    d = 256
    query = torch.randn(64, d, generator=gen, dtype=torch.float64).to(device)
    keys = torch.randn(64, d, generator=gen, dtype=torch.float64).to(device)
    assert abs(dot_score(query, keys).var().item() / d - 1.0) < 0.15
    assert abs(scaled_dot_score(query, keys).var().item() - 1.0) < 0.15


@pytest.mark.parametrize("dtype", DTYPES)
def test_general_with_identity_is_dot(device, dtype):
    query, keys = rand(2, 3, 6, device=device, dtype=dtype), rand(2, 5, 6, device=device, dtype=dtype)
    eye = torch.eye(6, device=device, dtype=dtype)
    torch.testing.assert_close(general_score(query, keys, eye), dot_score(query, keys))


def test_general_hand_example(device):
    query = torch.tensor([[1.0, 2.0]], device=device)  # (1, Dq=2)
    keys = torch.tensor([[1.0, 0.0, 1.0]], device=device)  # (1, Dk=3)
    weight = torch.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]], device=device)  # (2, 3)
    # W k = [1 + 3, 0 + 1] = [4, 1];  qᵀ (W k) = 4 + 2 = 6
    torch.testing.assert_close(general_score(query, keys, weight), torch.tensor([[6.0]], device=device))


@pytest.mark.parametrize("dtype", DTYPES)
def test_general_matches_einsum(device, dtype):
    query, keys = rand(2, 4, 3, device=device, dtype=dtype), rand(2, 6, 5, device=device, dtype=dtype)
    weight = rand(3, 5, device=device, dtype=dtype)
    expected = torch.einsum("bqi,ij,bkj->bqk", query, weight, keys)
    torch.testing.assert_close(general_score(query, keys, weight), expected)


def test_additive_hand_example(device):
    query = torch.tensor([[0.5]], device=device, dtype=torch.float64)  # (1, 1)
    keys = torch.tensor([[0.5], [-0.5], [1.0]], device=device, dtype=torch.float64)  # (3, 1)
    w_q = torch.tensor([[1.0]], device=device, dtype=torch.float64)
    w_k = torch.tensor([[1.0]], device=device, dtype=torch.float64)
    v = torch.tensor([2.0], device=device, dtype=torch.float64)
    expected = torch.tensor([[2 * math.tanh(1.0), 2 * math.tanh(0.0), 2 * math.tanh(1.5)]],
                            device=device, dtype=torch.float64)
    torch.testing.assert_close(additive_score(query, keys, w_q, w_k, v), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_additive_matches_a_per_pair_loop(device, dtype):
    query, keys = rand(2, 3, 4, device=device, dtype=dtype), rand(2, 5, 6, device=device, dtype=dtype)
    w_q, w_k, v = rand(7, 4, device=device, dtype=dtype), rand(7, 6, device=device, dtype=dtype), \
        rand(7, device=device, dtype=dtype)
    loop = torch.empty(2, 3, 5, device=device, dtype=dtype)
    for b in range(2):
        for i in range(3):
            for j in range(5):
                loop[b, i, j] = v @ torch.tanh(w_q @ query[b, i] + w_k @ keys[b, j])
    torch.testing.assert_close(additive_score(query, keys, w_q, w_k, v), loop)


# --------------------------------------------------------------------------- modules
def test_modules_match_functions(device):
    query, keys = rand(2, 3, 4, device=device, dtype=torch.float32), rand(2, 5, 4, device=device,
                                                                            dtype=torch.float32)
    torch.testing.assert_close(DotScore()(query, keys), dot_score(query, keys))
    torch.testing.assert_close(ScaledDotScore()(query, keys), scaled_dot_score(query, keys))
    general = GeneralScore(4, 4).to(device)
    torch.testing.assert_close(general(query, keys), general_score(query, keys, general.weight))
    additive = AdditiveScore(4, 4, 9).to(device)
    torch.testing.assert_close(additive(query, keys),
                               additive_score(query, keys, additive.w_query, additive.w_key, additive.v))


def test_module_parameters_and_init(device):
    torch.manual_seed(0)
    general = GeneralScore(3, 16).to(device)
    additive = AdditiveScore(3, 16, 25).to(device)
    assert general.weight.shape == (3, 16)
    assert [p.shape for p in additive.parameters()] == [(25, 3), (25, 16), (25,)]
    assert len(list(DotScore().parameters())) == 0 and len(list(ScaledDotScore().parameters())) == 0
    # the nn.Linear range U(-1/√fan_in, 1/√fan_in), not all zeros
    for tensor, fan_in in [(general.weight, 16), (additive.w_query, 3), (additive.w_key, 16), (additive.v, 25)]:
        assert tensor.abs().max() <= 1 / math.sqrt(fan_in)
        assert tensor.abs().max() > 0.5 / math.sqrt(fan_in)
    assert "hidden_dim=25" in repr(additive)


def test_module_gradients_reach_parameters(device):
    additive = AdditiveScore(4, 6, 5).to(device)
    general = GeneralScore(4, 6).to(device)
    query, keys = rand(2, 3, 4, device=device, dtype=torch.float32), rand(2, 5, 6, device=device,
                                                                            dtype=torch.float32)
    (additive(query, keys).square().sum() + general(query, keys).square().sum()).backward()
    for p in list(additive.parameters()) + list(general.parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_make_score_and_registry(device):
    assert set(SCORES) == set(SCORE_FUNCTIONS) == {"dot", "scaled_dot", "general", "additive"}
    assert isinstance(make_score("dot", 4, 4), DotScore)
    assert isinstance(make_score("scaled_dot", 4, 4, hidden_dim=3), ScaledDotScore)
    general = make_score("general", 3, 5)
    assert isinstance(general, GeneralScore) and general.weight.shape == (3, 5)
    additive = make_score("additive", 3, 5, hidden_dim=7)
    assert isinstance(additive, AdditiveScore) and additive.v.shape == (7,)
    assert make_score("additive", 3, 5).hidden_dim == 5  # defaults to key_dim
    out = make_score("additive", 3, 5, 7).to(device)(rand(2, 4, 3, device=device, dtype=torch.float32),
                                                     rand(2, 6, 5, device=device, dtype=torch.float32))
    assert out.shape == (2, 4, 6)


# --------------------------------------------------------------------------- gradcheck
def test_gradcheck_every_score(device):
    query = rand(2, 3, 4, device=device, requires_grad=True)
    keys = rand(2, 5, 4, device=device, requires_grad=True)
    weight = rand(4, 4, device=device, requires_grad=True)
    w_q, w_k = rand(3, 4, device=device, requires_grad=True), rand(3, 4, device=device, requires_grad=True)
    v = rand(3, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(dot_score, (query, keys))
    assert torch.autograd.gradcheck(scaled_dot_score, (query, keys))
    assert torch.autograd.gradcheck(general_score, (query, keys, weight))
    assert torch.autograd.gradcheck(additive_score, (query, keys, w_q, w_k, v))


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("fn", [dot_score, scaled_dot_score])
def test_feature_size_mismatch(device, fn):
    with pytest.raises(ValueError, match=r"query has 3 features but keys have 4.*\(2, 5, 3\).*\(2, 6, 4\)"):
        fn(rand(2, 5, 3, device=device), rand(2, 6, 4, device=device))


@pytest.mark.parametrize("name", ["dot", "scaled_dot", "general", "additive"])
def test_too_few_dimensions(device, name):
    fn = _all_scores(4, 4, 3, device, torch.float64)[name]
    with pytest.raises(ValueError, match=r"query must have at least 2 dimensions.*\(4,\)"):
        fn(rand(4, device=device), rand(5, 4, device=device))
    with pytest.raises(ValueError, match=r"key must have at least 2 dimensions.*\(4,\)"):
        fn(rand(3, 4, device=device), rand(4, device=device))


@pytest.mark.parametrize("name", ["dot", "general", "additive"])
def test_leading_dims_do_not_broadcast(device, name):
    fn = _all_scores(4, 4, 3, device, torch.float64)[name]
    with pytest.raises(ValueError, match=r"do not broadcast: \(2,\) vs \(3,\)"):
        fn(rand(2, 5, 4, device=device), rand(3, 6, 4, device=device))


def test_general_weight_shape(device):
    with pytest.raises(ValueError, match=r"weight must have shape \(Dq, Dk\) = \(3, 5\).*got \(5, 3\)"):
        general_score(rand(2, 3, device=device), rand(4, 5, device=device), rand(5, 3, device=device))


def test_additive_weight_shapes(device):
    query, keys = rand(2, 3, device=device), rand(4, 5, device=device)
    w_q, w_k, v = rand(6, 3, device=device), rand(6, 5, device=device), rand(6, device=device)
    with pytest.raises(ValueError, match=r"w_query must have shape \(A, Dq\) = \(6, 3\).*got \(6, 5\)"):
        additive_score(query, keys, w_k, w_k, v)
    with pytest.raises(ValueError, match=r"w_key must have shape \(A, Dk\) = \(6, 5\).*got \(6, 3\)"):
        additive_score(query, keys, w_q, w_q, v)
    with pytest.raises(ValueError, match=r"w_query must have shape \(A, Dq\) = \(4, 3\)"):
        additive_score(query, keys, w_q, w_k, rand(4, device=device))
    with pytest.raises(ValueError, match=r"v must have shape \(A,\), got \(6, 1\)"):
        additive_score(query, keys, w_q, w_k, rand(6, 1, device=device))


def test_make_score_errors():
    with pytest.raises(ValueError, match="unknown score 'cosine'"):
        make_score("cosine", 4, 4)
    with pytest.raises(ValueError, match="query_dim == key_dim, got 3 and 4"):
        make_score("dot", 3, 4)
