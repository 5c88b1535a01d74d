"""Tests for solutions.attention: weighted_sum and attention = score → align → fuse."""
import math

import pytest
import torch
import torch.nn.functional as F

from solutions.attention import attention, weighted_sum
from solutions.attention.masking import lengths_to_mask, masked_softmax
from solutions.attention.scores import AdditiveScore, GeneralScore, additive_score, dot_score, make_score

from helpers import rand

DTYPES = [torch.float32, torch.float64]


def _qkv(q_shape, k_shape, v_shape, device, dtype=torch.float64):
    return tuple(rand(*shape, device=device, dtype=dtype) for shape in (q_shape, k_shape, v_shape))


def _tol(dtype):
    return dict(atol=1e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=1e-10, rtol=1e-8)


# --------------------------------------------------------------------------- weighted_sum
def test_weighted_sum_hand_example(device):
    weights = torch.tensor([[0.25, 0.75], [1.0, 0.0]], device=device)  # (Tq=2, Tk=2)
    values = torch.tensor([[4.0, 0.0, 8.0], [0.0, 4.0, -4.0]], device=device)  # (Tk=2, Dv=3)
    expected = torch.tensor([[1.0, 3.0, -1.0], [4.0, 0.0, 8.0]], device=device)
    torch.testing.assert_close(weighted_sum(weights, values), expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_weighted_sum_shapes_and_broadcast(device, dtype):
    weights = torch.softmax(rand(2, 4, 3, 5, device=device, dtype=dtype), -1)  # (B, H, Tq, Tk)
    values = rand(2, 1, 5, 6, device=device, dtype=dtype)  # (B, 1, Tk, Dv)
    context = weighted_sum(weights, values)
    assert context.shape == (2, 4, 3, 6) and context.dtype == dtype
    torch.testing.assert_close(context, torch.einsum("bhqk,bkd->bhqd", weights, values[:, 0]))


# --------------------------------------------------------------------------- against PyTorch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 8), (2, 3, 8), (2, 4, 3, 8)])
def test_matches_scaled_dot_product_attention(device, dtype, shape):
    *lead, t_q, d = shape
    query = rand(*shape, device=device, dtype=dtype)
    keys = rand(*lead, 5, d, device=device, dtype=dtype)
    values = rand(*lead, 5, 6, device=device, dtype=dtype)
    context, weights = attention(query, keys, values, "scaled_dot")
    torch.testing.assert_close(context, F.scaled_dot_product_attention(query, keys, values), **_tol(dtype))
    assert weights.shape == (*lead, t_q, 5)


@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_scaled_dot_product_attention_with_bool_mask(device, dtype):
    gen = torch.Generator().manual_seed(3)
    query, keys, values = (torch.randn(*s, generator=gen, dtype=dtype).to(device)
                           for s in [(2, 4, 6, 8), (2, 4, 7, 8), (2, 4, 7, 5)])
    mask = (torch.rand(2, 1, 6, 7, generator=gen) > 0.5).to(device)  # (B, 1, Tq, Tk), True = take part
    mask[0, 0, 2] = False  # one query with nothing to attend to
    context, weights = attention(query, keys, values, "scaled_dot", mask=mask)
    reference = F.scaled_dot_product_attention(query, keys, values, attn_mask=mask)
    live = mask.any(-1).expand(2, 4, 6)  # (B, H, Tq): rows with at least one key
    assert not live.all()
    torch.testing.assert_close(context[live], reference[live], **_tol(dtype))
    assert torch.all(context[~live] == 0) and torch.all(weights[~live] == 0)


def test_valid_lens_matches_sdpa_with_the_same_mask(device):
    query, keys, values = _qkv((3, 4, 8), (3, 6, 8), (3, 6, 2), device)
    lens = torch.tensor([6, 2, 4], device=device)
    context, _ = attention(query, keys, values, valid_lens=lens)
    mask = lengths_to_mask(lens, 6)[:, None, :]  # (B, 1, Tk)
    torch.testing.assert_close(context, F.scaled_dot_product_attention(query, keys, values, attn_mask=mask))


# --------------------------------------------------------------------------- properties
@pytest.mark.parametrize("dtype", DTYPES)
def test_weights_and_context(device, dtype):
    query, keys, values = (rand(2, 3, 4, device=device, dtype=dtype), rand(2, 5, 4, device=device, dtype=dtype),
                           rand(2, 5, 7, device=device, dtype=dtype))
    context, weights = attention(query, keys, values, "dot", temperature=0.5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, device=device, dtype=dtype))
    torch.testing.assert_close(context, weights @ values)
    torch.testing.assert_close(weights, torch.softmax(dot_score(query, keys) / 0.5, -1))


def test_hand_example_one_query(device):
    query = torch.tensor([[1.0, 0.0]], device=device)  # (Tq=1, D=2)
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0]], device=device)  # dot scores 1 and 0
    values = torch.tensor([[10.0], [20.0]], device=device)
    context, weights = attention(query, keys, values, "dot")
    w0 = math.e / (math.e + 1)
    torch.testing.assert_close(weights, torch.tensor([[w0, 1 - w0]], device=device))
    torch.testing.assert_close(context, torch.tensor([[10 * w0 + 20 * (1 - w0)]], device=device))


def test_permuting_keys_and_values_together_changes_nothing(device):
    query, keys, values = _qkv((2, 3, 4), (2, 6, 4), (2, 6, 5), device)
    perm = torch.randperm(6, device=device)
    context, weights = attention(query, keys, values)
    context_p, weights_p = attention(query, keys[:, perm], values[:, perm])
    torch.testing.assert_close(context_p, context)
    torch.testing.assert_close(weights_p, weights[..., perm])


def test_broadcast_one_query_set_over_a_batch(device):
    query = rand(3, 4, device=device)  # (Tq, D), shared by the batch
    keys, values = rand(2, 5, 4, device=device), rand(2, 5, 6, device=device)
    context, weights = attention(query, keys, values)
    assert context.shape == (2, 3, 6) and weights.shape == (2, 3, 5)
    torch.testing.assert_close(context[1], attention(query, keys[1], values[1])[0])


def test_callable_scores(device):
    query, keys, values = _qkv((2, 3, 4), (2, 5, 6), (2, 5, 7), device)
    additive = AdditiveScore(4, 6, 8).to(device, torch.float64)
    context, weights = attention(query, keys, values, score=additive)
    expected = torch.softmax(additive_score(query, keys, additive.w_query, additive.w_key, additive.v), -1)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(context, expected @ values)
    # a plain function works too, and GeneralScore with W = I is the dot score
    same = rand(2, 5, 4, device=device)
    general = GeneralScore(4, 4).to(device, torch.float64)
    with torch.no_grad():
        general.weight.copy_(torch.eye(4))
    torch.testing.assert_close(attention(query, same, values, score=general)[1],
                               attention(query, same, values, score=lambda q, k: q @ k.transpose(-2, -1))[1])
    torch.testing.assert_close(attention(query, same, values, score=general)[1],
                               attention(query, same, values, score="dot")[1])


def test_gradients_flow_to_inputs_and_parameters(device):
    query, keys, values = (rand(2, 3, 4, device=device, requires_grad=True),
                           rand(2, 5, 6, device=device, requires_grad=True),
                           rand(2, 5, 7, device=device, requires_grad=True))
    score = make_score("additive", 4, 6, hidden_dim=8).to(device, torch.float64)
    mask = torch.tensor([True, True, False, True, True], device=device)
    context, _ = attention(query, keys, values, score=score, mask=mask)
    context.square().sum().backward()
    for tensor in (query, keys, values, *score.parameters()):
        assert tensor.grad is not None and torch.isfinite(tensor.grad).all() and tensor.grad.abs().sum() > 0
    assert torch.all(keys.grad[:, 2] == 0) and torch.all(values.grad[:, 2] == 0)  # masked key 2 unused


def test_all_masked_query_gives_zero_context_and_finite_grads(device):
    query, keys, values = (rand(1, 2, 3, device=device, requires_grad=True),
                           rand(1, 4, 3, device=device, requires_grad=True),
                           rand(1, 4, 5, device=device, requires_grad=True))
    mask = torch.tensor([[True, False, True, False], [False, False, False, False]], device=device)
    context, weights = attention(query, keys, values, mask=mask)
    assert torch.all(context[0, 1] == 0) and torch.all(weights[0, 1] == 0)
    context.sum().backward()
    for tensor in (query, keys, values):
        assert torch.isfinite(tensor.grad).all()
    assert torch.all(query.grad[0, 1] == 0)


# --------------------------------------------------------------------------- gradcheck
def test_gradcheck_attention(device):
    query = rand(2, 3, 4, device=device, requires_grad=True)
    keys = rand(2, 5, 4, device=device, requires_grad=True)
    values = rand(2, 5, 3, device=device, requires_grad=True)
    mask = torch.ones(2, 3, 5, dtype=torch.bool, device=device)
    mask[0, 1] = False  # an all-masked row
    mask[1, :, 3:] = False
    def masked_attention(q, k, v):
        return attention(q, k, v, mask=mask, temperature=1.3)

    assert torch.autograd.gradcheck(masked_attention, (query, keys, values))

    w_q, w_k, v_a = (rand(6, 4, device=device, requires_grad=True), rand(6, 4, device=device, requires_grad=True),
                     rand(6, device=device, requires_grad=True))

    def additive_attention(q, k, v, wq, wk, va):
        return attention(q, k, v, score=lambda a, b: additive_score(a, b, wq, wk, va), valid_lens=torch.tensor(
            [5, 2], device=device))

    assert torch.autograd.gradcheck(additive_attention, (query, keys, values, w_q, w_k, v_a))


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", ["general", "additive"])
def test_parametrised_score_names_need_a_module(device, name):
    x = rand(2, 3, 4, device=device)
    with pytest.raises(ValueError, match=f"'{name}' score has learned parameters.*module instance"):
        attention(x, x, x, score=name)


def test_unknown_score(device):
    x = rand(2, 3, 4, device=device)
    with pytest.raises(ValueError, match="unknown score 'cosine'"):
        attention(x, x, x, score="cosine")
    with pytest.raises(TypeError, match="score must be a name or a callable"):
        attention(x, x, x, score=3)


def test_keys_and_values_disagree(device):
    message = r"keys have 5 positions but values have 4 \(key \(2, 5, 8\), value \(2, 4, 3\)\)"
    with pytest.raises(ValueError, match=message):
        attention(rand(2, 3, 8, device=device), rand(2, 5, 8, device=device), rand(2, 4, 3, device=device))


def test_query_and_keys_leading_dims(device):
    with pytest.raises(ValueError, match=r"query \(2, 3, 8\) and key \(4, 5, 8\) do not broadcast"):
        attention(rand(2, 3, 8, device=device), rand(4, 5, 8, device=device), rand(4, 5, 3, device=device))
    with pytest.raises(ValueError, match=r"key \(2, 5, 8\) and value \(3, 5, 3\) do not broadcast"):
        attention(rand(2, 3, 8, device=device), rand(2, 5, 8, device=device), rand(3, 5, 3, device=device))


def test_mask_errors_pass_through(device):
    x = rand(2, 7, 4, device=device)
    with pytest.raises(ValueError, match="keys have 7 positions but mask has 5"):
        attention(x, x, x, mask=torch.ones(7, 5, dtype=torch.bool, device=device))
    with pytest.raises(ValueError, match="temperature"):
        attention(x, x, x, temperature=0)


def test_weighted_sum_errors(device):
    message = r"weights cover 5 keys but values have 7 positions \(weights \(2, 3, 5\), values \(2, 7, 4\)\)"
    with pytest.raises(ValueError, match=message):
        weighted_sum(rand(2, 3, 5, device=device), rand(2, 7, 4, device=device))
    with pytest.raises(ValueError, match=r"value must have at least 2 dimensions.*\(5,\)"):
        weighted_sum(rand(3, 5, device=device), rand(5, device=device))


def test_score_returning_a_wrong_shape(device):
    x = rand(2, 3, 4, device=device)
    message = r"score function returned shape \(2, 3\), expected \(..., Tq, Tk\) = \(..., 3, 3\)"
    with pytest.raises(ValueError, match=message):
        attention(x, x, x, score=lambda q, k: (q * k).sum(-1))


def test_masked_softmax_is_the_align_step(device):
    # attention's weights are exactly masked_softmax of the score, for every mask option
    query, keys, values = _qkv((2, 3, 4), (2, 5, 4), (2, 5, 2), device)
    mask = torch.rand(2, 3, 5, device=device) > 0.5
    lens = torch.tensor([[1, 5, 0], [3, 3, 2]], device=device)
    _, weights = attention(query, keys, values, "dot", mask=mask, valid_lens=lens, temperature=3.0)
    expected = masked_softmax(dot_score(query, keys), mask=mask, valid_lens=lens, temperature=3.0)
    assert torch.equal(weights, expected)
