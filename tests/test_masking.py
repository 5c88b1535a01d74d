"""Tests for solutions.attention.masking: lengths_to_mask and the masked, tempered softmax."""
import math

import pytest
import torch

from solutions.attention.masking import lengths_to_mask, masked_softmax

from helpers import rand

DTYPES = [torch.float32, torch.float64]
T, F = True, False


# --------------------------------------------------------------------------- lengths_to_mask
def test_lengths_to_mask_batch(device):
    mask = lengths_to_mask(torch.tensor([2, 0, 3], device=device), 3)
    expected = torch.tensor([[T, T, F], [F, F, F], [T, T, T]], device=device)
    assert mask.dtype == torch.bool and mask.device.type == device.type
    assert torch.equal(mask, expected)


def test_lengths_to_mask_per_query(device):
    mask = lengths_to_mask(torch.tensor([[1, 2], [0, 4]], device=device), 4)
    expected = torch.tensor([[[T, F, F, F], [T, T, F, F]], [[F, F, F, F], [T, T, T, T]]], device=device)
    assert mask.shape == (2, 2, 4)
    assert torch.equal(mask, expected)


def test_lengths_to_mask_errors(device):
    with pytest.raises(ValueError, match="must be >= 0, got a length of -1"):
        lengths_to_mask(torch.tensor([2, -1], device=device), 3)
    with pytest.raises(ValueError, match="length of 4 but there are only 3 keys"):
        lengths_to_mask(torch.tensor([4, 1], device=device), 3)
    with pytest.raises(TypeError, match="integer tensor, got dtype torch.float32"):
        lengths_to_mask(torch.tensor([1.0, 2.0], device=device), 3)
    with pytest.raises(ValueError, match=r"\(B,\) or \(B, Tq\), got \(1, 1, 2\)"):
        lengths_to_mask(torch.ones(1, 1, 2, dtype=torch.long, device=device), 3)


# --------------------------------------------------------------------------- plain softmax
@pytest.mark.parametrize("dtype", DTYPES)
def test_no_mask_is_softmax(device, dtype):
    scores = rand(2, 3, 4, 5, device=device, dtype=dtype)
    weights = masked_softmax(scores)
    torch.testing.assert_close(weights, torch.softmax(scores, dim=-1))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 4, device=device, dtype=dtype))
    assert weights.dtype == dtype and weights.device.type == device.type


@pytest.mark.parametrize("dtype", DTYPES)
def test_hand_example(device, dtype):
    scores = torch.tensor([[1.0, 2.0, 3.0]], device=device, dtype=dtype)
    mask = torch.tensor([[T, F, T]], device=device)
    e1, e3 = math.exp(1.0), math.exp(3.0)
    expected = torch.tensor([[e1 / (e1 + e3), 0.0, e3 / (e1 + e3)]], device=device, dtype=dtype)
    torch.testing.assert_close(masked_softmax(scores, mask=mask), expected)
    # temperature 2 halves the scores: weights ∝ exp(0.5), exp(1.5)
    a, b = math.exp(0.5), math.exp(1.5)
    expected_t = torch.tensor([[a / (a + b), 0.0, b / (a + b)]], device=device, dtype=dtype)
    torch.testing.assert_close(masked_softmax(scores, mask=mask, temperature=2.0), expected_t)


# --------------------------------------------------------------------------- masks
@pytest.mark.parametrize("dtype", DTYPES)
def test_masked_keys_are_exactly_zero_and_rows_sum_to_one(device, dtype):
    gen = torch.Generator().manual_seed(1)
    scores = torch.randn(4, 3, 6, 7, generator=gen, dtype=dtype).to(device)
    mask = (torch.rand(4, 3, 6, 7, generator=gen) > 0.4).to(device)
    mask[..., 0] = True  # every row keeps at least one key
    weights = masked_softmax(scores, mask=mask)
    assert torch.all(weights[~mask] == 0)
    assert torch.all(weights[mask] > 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(4, 3, 6, device=device, dtype=dtype))
    # same as a softmax over the kept keys only, done row by row
    for b, h, i in [(0, 0, 0), (3, 2, 5), (1, 1, 2)]:
        kept = mask[b, h, i]
        torch.testing.assert_close(weights[b, h, i, kept], torch.softmax(scores[b, h, i, kept], dim=0))


def test_garbage_in_masked_positions_does_not_leak(device):
    scores = torch.tensor([[1.0, float("inf"), float("nan"), 2.0]], device=device)
    mask = torch.tensor([T, F, F, T], device=device)
    weights = masked_softmax(scores, mask=mask)
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights, masked_softmax(torch.tensor([[1.0, 0.0, 0.0, 2.0]], device=device), mask))


@pytest.mark.parametrize("dtype", DTYPES + [torch.float16])
def test_all_masked_row_is_zero_forward_and_backward(device, dtype):
    scores = rand(2, 3, 4, device=device, dtype=dtype).requires_grad_()
    mask = torch.ones(2, 3, 4, dtype=torch.bool, device=device)
    mask[0, 1] = False  # query 1 of batch 0 may attend to nothing
    weights = masked_softmax(scores, mask=mask)
    assert torch.all(weights[0, 1] == 0)
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights[1].sum(-1).float(), torch.ones(3, device=device), atol=1e-3, rtol=0)
    (weights * torch.arange(4, device=device, dtype=dtype)).sum().backward()
    assert torch.isfinite(scores.grad).all()
    assert torch.all(scores.grad[0, 1] == 0)
    assert scores.grad[1].abs().sum() > 0


@pytest.mark.parametrize("mask_shape", [(7,), (1, 7), (2, 1, 7), (2, 5, 1), (1,)])
def test_mask_broadcasts(device, mask_shape):
    scores = rand(2, 5, 7, device=device)
    mask = torch.rand(mask_shape, device=device) > 0.3
    mask.view(-1)[0] = True
    full = mask.expand(2, 5, 7)
    torch.testing.assert_close(masked_softmax(scores, mask=mask), masked_softmax(scores, mask=full.clone()))
    assert torch.all(masked_softmax(scores, mask=mask)[~full] == 0)


# --------------------------------------------------------------------------- valid_lens
def test_valid_lens_per_batch(device):
    scores = rand(3, 4, 5, device=device)
    lens = torch.tensor([2, 5, 0], device=device)
    weights = masked_softmax(scores, valid_lens=lens)
    torch.testing.assert_close(weights[0, :, :2], torch.softmax(scores[0, :, :2], dim=-1))
    assert torch.all(weights[0, :, 2:] == 0)
    torch.testing.assert_close(weights[1], torch.softmax(scores[1], dim=-1))
    assert torch.all(weights[2] == 0)


def test_valid_lens_per_query(device):
    scores = rand(2, 3, 4, device=device)
    lens = torch.tensor([[1, 2, 4], [3, 0, 1]], device=device)
    weights = masked_softmax(scores, valid_lens=lens)
    for b in range(2):
        for i in range(3):
            n = int(lens[b, i])
            assert torch.all(weights[b, i, n:] == 0)
            if n:
                torch.testing.assert_close(weights[b, i, :n], torch.softmax(scores[b, i, :n], dim=0))


@pytest.mark.parametrize("lens_shape", [(2,), (2, 3)])
def test_valid_lens_with_heads(device, lens_shape):
    # scores (B, H, Tq, Tk): valid_lens lines up with B and (for (B, Tq)) with Tq
    scores = rand(2, 4, 3, 5, device=device)
    lens = torch.randint(1, 6, lens_shape, device=device)
    mask = lengths_to_mask(lens, 5)  # (B, Tk) or (B, Tq, Tk)
    mask = mask[:, None, None, :] if len(lens_shape) == 1 else mask[:, None]  # (B, 1, [1,] Tq?, Tk)
    torch.testing.assert_close(masked_softmax(scores, valid_lens=lens), masked_softmax(scores, mask=mask))


def test_valid_lens_on_a_single_query_per_batch(device):
    scores = rand(2, 4, device=device)  # (B, Tk): one decoder step
    weights = masked_softmax(scores, valid_lens=torch.tensor([1, 3], device=device))
    torch.testing.assert_close(weights[0], torch.tensor([1.0, 0, 0, 0], device=device, dtype=torch.float64))
    assert weights[1, 3] == 0 and torch.isclose(weights[1].sum(), weights.new_tensor(1.0))


def test_mask_and_valid_lens_combine_with_and(device):
    scores = rand(2, 3, 4, device=device)
    mask = torch.tensor([[T, F, T, T], [F, T, T, T], [T, T, T, F]], device=device)  # (Tq, Tk)
    lens = torch.tensor([3, 1], device=device)
    both = masked_softmax(scores, mask=mask, valid_lens=lens)
    expected_mask = mask & lengths_to_mask(lens, 4)[:, None, :]  # (B, Tq, Tk)
    torch.testing.assert_close(both, masked_softmax(scores, mask=expected_mask))
    assert torch.all(both[1, 1] == 0)  # batch 1 keeps key 0 only, which the mask drops for query 1
    torch.testing.assert_close(both[1, 0], torch.tensor([1.0, 0, 0, 0], device=device, dtype=torch.float64))
    assert torch.all(both[~expected_mask] == 0)


# --------------------------------------------------------------------------- temperature, invariance
@pytest.mark.parametrize("dtype", DTYPES)
def test_temperature_limits(device, dtype):
    gen = torch.Generator().manual_seed(2)
    scores = torch.randn(3, 6, generator=gen, dtype=dtype).to(device)
    mask = torch.tensor([T, T, F, T, T, F], device=device)
    kept_scores = scores.masked_fill(~mask, -1e9)
    one_hot = torch.nn.functional.one_hot(kept_scores.argmax(-1), 6).to(dtype)
    cold = masked_softmax(scores, mask=mask, temperature=1e-3)
    torch.testing.assert_close(cold, one_hot, atol=1e-4, rtol=0)
    hot = masked_softmax(scores, mask=mask, temperature=1e6)
    uniform = mask.to(dtype).expand(3, 6) / mask.sum()
    torch.testing.assert_close(hot, uniform, atol=1e-5, rtol=0)
    # entropy falls as the temperature falls
    entropy = [-(w * w.clamp_min(1e-30).log()).sum(-1) for w in
               (masked_softmax(scores, mask=mask, temperature=t) for t in (4.0, 1.0, 0.25))]
    assert torch.all(entropy[0] > entropy[1]) and torch.all(entropy[1] > entropy[2])


@pytest.mark.parametrize("dtype", DTYPES)
def test_invariant_to_a_constant_per_row(device, dtype):
    scores = rand(2, 3, 5, device=device, dtype=dtype)
    shift = 100 * rand(2, 3, 1, device=device, dtype=dtype)
    mask = torch.tensor([T, F, T, T, F], device=device)
    torch.testing.assert_close(masked_softmax(scores + shift, mask=mask), masked_softmax(scores, mask=mask))


def test_large_scores_do_not_overflow(device):
    scores = torch.tensor([[1000.0, 999.0, -1000.0]], device=device)
    weights = masked_softmax(scores, mask=torch.tensor([T, T, F], device=device))
    e = math.exp(-1.0)
    torch.testing.assert_close(weights, torch.tensor([[1 / (1 + e), e / (1 + e), 0.0]], device=device))


# --------------------------------------------------------------------------- gradcheck
def test_gradcheck_with_mask_and_all_masked_row(device):
    scores = rand(2, 3, 4, device=device, requires_grad=True)
    mask = torch.tensor([[T, F, T, T], [F, F, F, F], [T, T, T, F]], device=device)  # row 1 all masked
    assert torch.autograd.gradcheck(lambda s: masked_softmax(s, mask=mask, temperature=0.7), (scores,))
    assert torch.autograd.gradgradcheck(lambda s: masked_softmax(s, mask=mask), (scores,))


def test_gradcheck_with_valid_lens(device):
    scores = rand(3, 2, 4, device=device, requires_grad=True)
    lens = torch.tensor([4, 0, 2], device=device)
    assert torch.autograd.gradcheck(lambda s: masked_softmax(s, valid_lens=lens), (scores,))
    assert torch.autograd.gradcheck(lambda s: masked_softmax(s), (scores,))


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_temperature(device, temperature):
    with pytest.raises(ValueError, match="temperature must be a positive finite number"):
        masked_softmax(rand(2, 3, device=device), temperature=temperature)


def test_mask_must_be_bool(device):
    with pytest.raises(TypeError, match="mask must be a bool tensor.*torch.float32"):
        masked_softmax(rand(2, 3, device=device), mask=torch.ones(2, 3, device=device))
    with pytest.raises(TypeError, match="mask must be a bool tensor.*torch.int64"):
        masked_softmax(rand(2, 3, device=device), mask=torch.ones(2, 3, dtype=torch.long, device=device))


def test_mask_with_wrong_number_of_keys(device):
    message = r"keys have 7 positions but mask has 5 \(scores \(2, 3, 7\), mask \(2, 3, 5\)\)"
    with pytest.raises(ValueError, match=message):
        masked_softmax(rand(2, 3, 7, device=device), mask=torch.ones(2, 3, 5, dtype=torch.bool, device=device))


def test_mask_that_does_not_broadcast(device):
    with pytest.raises(ValueError, match=r"mask of shape \(4, 3, 7\) does not broadcast to scores of shape \(2, 3"):
        masked_softmax(rand(2, 3, 7, device=device), mask=torch.ones(4, 3, 7, dtype=torch.bool, device=device))
    with pytest.raises(ValueError, match=r"mask of shape \(5, 3, 7\) does not broadcast to scores of shape \(3, 7"):
        masked_softmax(rand(3, 7, device=device), mask=torch.ones(5, 3, 7, dtype=torch.bool, device=device))


def test_valid_lens_shape_errors(device):
    scores = rand(2, 3, 4, device=device)
    with pytest.raises(ValueError, match=r"batch size 3 but scores \(2, 3, 4\) have 2"):
        masked_softmax(scores, valid_lens=torch.tensor([1, 2, 3], device=device))
    with pytest.raises(ValueError, match=r"lengths for 2 queries but scores \(2, 3, 4\) have 3"):
        masked_softmax(scores, valid_lens=torch.ones(2, 2, dtype=torch.long, device=device))
    with pytest.raises(ValueError, match="length of 5 but there are only 4 keys"):
        masked_softmax(scores, valid_lens=torch.tensor([5, 1], device=device))
    with pytest.raises(ValueError, match=r"\(B,\) or \(B, Tq\), got \(2, 3, 1\)"):
        masked_softmax(scores, valid_lens=torch.ones(2, 3, 1, dtype=torch.long, device=device))


def test_scores_must_be_floating(device):
    with pytest.raises(TypeError, match="floating-point"):
        masked_softmax(torch.ones(2, 3, dtype=torch.long, device=device))
