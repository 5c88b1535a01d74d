"""solutions.vision: SE, ECA, CBAM and the spatial transformer, on each available device.

Shapes, dtype and device; the gates in (0, 1); the papers' equations written out by hand; the papers'
parameter counts; the identity transformer; affine_grid / grid_sample against known transforms and against
the bilinear kernel of Jaderberg et al.'s eq. 5; gradcheck in float64.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from helpers import rand
from solutions.train import count_parameters
from solutions.vision import (CBAM, ChannelGate, ConvNet, ConvNetConfig, EfficientChannelAttention, SpatialGate,
                              SpatialTransformer, SqueezeExcitation, STNClassifier, affine_resample,
                              cbam_parameters, eca_kernel_size, eca_parameters, identity_theta, se_parameters)

DTYPES = [torch.float32, torch.float64]


def modules(channels=8):
    return {"SE": SqueezeExcitation(channels, reduction=4), "ECA": EfficientChannelAttention(channels),
            "CBAM channel": ChannelGate(channels, reduction=4), "CBAM spatial": SpatialGate(),
            "CBAM": CBAM(channels, reduction=4)}


# ------------------------------------------------------------------------------------- shapes, gates
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["SE", "ECA", "CBAM channel", "CBAM spatial", "CBAM"])
def test_shapes_dtype_device_and_gates_in_open_unit_interval(device, dtype, name):
    torch.manual_seed(0)
    module = modules()[name].to(device=device, dtype=dtype)
    u = rand(3, 8, 5, 7, device=device, dtype=dtype)
    out, weights = module(u)
    assert out.shape == u.shape and out.dtype == dtype and out.device == u.device
    gates = weights if isinstance(weights, tuple) else (weights,)
    expected = {"SE": [(3, 8)], "ECA": [(3, 8)], "CBAM channel": [(3, 8)], "CBAM spatial": [(3, 5, 7)],
                "CBAM": [(3, 8), (3, 5, 7)]}[name]
    assert [tuple(g.shape) for g in gates] == expected
    for g in gates:
        assert g.dtype == dtype and g.device == u.device
        assert (g > 0).all() and (g < 1).all(), f"{name}: every gate is a sigmoid, strictly inside (0, 1)"


@pytest.mark.parametrize("name", ["SE", "ECA", "CBAM channel", "CBAM"])
def test_bad_feature_maps_raise_a_clear_error(name):
    with pytest.raises(ValueError, match=r"\(B, 8, H, W\).*\(3, 6, 5, 5\)"):
        modules()[name](torch.randn(3, 6, 5, 5))


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="must divide the 10 channels"):
        SqueezeExcitation(10, reduction=4)
    with pytest.raises(ValueError, match="odd"):
        EfficientChannelAttention(8, kernel_size=4)
    with pytest.raises(ValueError, match="odd"):
        SpatialGate(6)
    with pytest.raises(ValueError, match=r"\(B, 2, 3\)"):
        affine_resample(torch.randn(2, 1, 4, 4), torch.randn(3, 2, 3))


# ------------------------------------------------------------------------------- the papers' equations
def test_se_is_squeeze_excitation_scale(device):
    """Hu et al. 2018, eqs. 2-4, written out."""
    torch.manual_seed(1)
    se = SqueezeExcitation(8, reduction=2).to(device=device, dtype=torch.float64)
    u = rand(2, 8, 4, 3, device=device)
    z = u.sum(dim=(-2, -1)) / 12  # eq. 2
    s = torch.sigmoid(torch.relu(z @ se.reduce.weight.T + se.reduce.bias) @ se.expand.weight.T + se.expand.bias)
    out, weights = se(u)
    torch.testing.assert_close(weights, s)
    torch.testing.assert_close(out, u * s[:, :, None, None])  # eq. 4


def test_eca_convolves_each_channel_with_its_neighbours(device):
    """ω_i = σ(Σ_j w_j y_{i+j−(k−1)/2}) with zeros beyond the ends (Wang et al. 2020, eq. 9)."""
    torch.manual_seed(2)
    eca = EfficientChannelAttention(16, kernel_size=5).to(device=device, dtype=torch.float64)
    u = rand(3, 16, 4, 4, device=device)
    y = u.mean(dim=(-2, -1))  # (3, 16)
    w = eca.conv.weight.view(5)
    padded = F.pad(y, (2, 2))
    expected = torch.sigmoid(sum(w[j] * padded[:, j:j + 16] for j in range(5)))
    out, weights = eca(u)
    torch.testing.assert_close(weights, expected)
    torch.testing.assert_close(out, u * expected[:, :, None, None])


def test_cbam_is_channel_then_spatial(device):
    """Woo et al. 2018, eqs. 1-3, written out."""
    torch.manual_seed(3)
    cbam = CBAM(8, reduction=2).to(device=device, dtype=torch.float64)
    f = rand(2, 8, 6, 5, device=device)
    mlp = cbam.channel.mlp
    mc = torch.sigmoid(mlp(f.mean(dim=(2, 3))) + mlp(f.flatten(2).max(dim=-1).values))  # eq. 2
    f1 = f * mc[:, :, None, None]
    pools = torch.cat([f1.mean(dim=1, keepdim=True), f1.max(dim=1, keepdim=True).values], dim=1)
    ms = torch.sigmoid(F.conv2d(pools, cbam.spatial.conv.weight, padding=3))  # eq. 3
    out, (channel, spatial) = cbam(f)
    torch.testing.assert_close(channel, mc)
    torch.testing.assert_close(spatial, ms[:, 0])
    torch.testing.assert_close(out, f1 * ms)  # eq. 1


@pytest.mark.parametrize("channels, k", [(1, 1), (16, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5),
                                         (2048, 7)])
def test_eca_kernel_size_is_the_nearest_odd_number(channels, k):
    """k = ψ(C) = |log₂C / 2 + 1/2|_odd: a ResNet-50's four stages (C = 256, 512, 1024, 2048) get k = 5, 5, 5, 7."""
    assert eca_kernel_size(channels) == k
    assert EfficientChannelAttention(channels).kernel_size == k


# ------------------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize("channels, r", [(16, 4), (64, 16), (256, 16), (24, 3)])
def test_parameter_counts_are_the_papers_formulas(channels, r):
    assert count_parameters(SqueezeExcitation(channels, r, bias=False)) == 2 * channels**2 // r == \
        se_parameters(channels, r, bias=False), "SE adds 2C²/r weights (Hu et al. 2018, eq. 5)"
    assert count_parameters(SqueezeExcitation(channels, r)) == se_parameters(channels, r) == \
        2 * channels**2 // r + channels // r + channels
    k = eca_kernel_size(channels)
    assert count_parameters(EfficientChannelAttention(channels)) == k == eca_parameters(channels), \
        "ECA adds k weights"
    assert count_parameters(SpatialGate()) == 2 * 7 * 7, "CBAM's spatial filter: 2 maps × 7 × 7"
    assert count_parameters(CBAM(channels, r, bias=False)) == 2 * channels**2 // r + 98 == \
        cbam_parameters(channels, r, bias=False)
    assert count_parameters(CBAM(channels, r)) == cbam_parameters(channels, r)


def test_eca_needs_far_fewer_parameters_than_se():
    """ECA-Net's claim, for a ResNet-50's stages (C = 256 … 2048 at r = 16): k ≤ 9 weights against 2C²/r."""
    for channels in (256, 512, 1024, 2048):
        assert eca_parameters(channels) <= 9 and se_parameters(channels, 16) > 900 * eca_parameters(channels)


# --------------------------------------------------------------------------------- the transformer
@pytest.mark.parametrize("dtype", DTYPES)
def test_identity_transformer_returns_its_input(device, dtype):
    torch.manual_seed(4)
    stn = SpatialTransformer(in_channels=2, hidden=4).to(device=device, dtype=dtype)
    u = torch.rand(3, 2, 12, 10, device=device, dtype=dtype)
    v, theta = stn(u)
    torch.testing.assert_close(theta, identity_theta(3, device=device, dtype=dtype))
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(v, u, rtol=tol, atol=tol)  # the grid lands on the pixel centres


def test_output_size_and_zero_padding(device):
    u = torch.ones(2, 1, 8, 8, device=device, dtype=torch.float64)
    v = affine_resample(u, identity_theta(2, device=device, dtype=torch.float64), size=(4, 6))
    assert v.shape == (2, 1, 4, 6)
    half = identity_theta(1, device=device, dtype=torch.float64) * 2  # reads twice as far: the outer half is off the input
    out = affine_resample(u[:1], half)
    assert out[0, 0, 4, 4] == 1 and out[0, 0, 0, 0] == 0


def test_a_quarter_turn_is_rot90(device):
    """θ = [[0, −1, 0], [1, 0, 0]]: output (x, y) reads input (−y, x); the pixel centres map onto pixel centres."""
    u = rand(2, 3, 6, 6, device=device)
    theta = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0]], device=device, dtype=torch.float64).expand(2, 2, 3)
    torch.testing.assert_close(affine_resample(u, theta), torch.rot90(u, k=1, dims=(-2, -1)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(affine_resample(u, theta, mode="nearest"), torch.rot90(u, 1, (-2, -1)))


@pytest.mark.parametrize("dx, dy", [(2, 0), (0, -3), (1, 2)])
def test_a_translation_by_whole_pixels_shifts_and_pads_with_zeros(device, dx, dy):
    u = rand(1, 2, 7, 8, device=device)
    H, W = u.shape[-2:]
    theta = torch.tensor([[[1.0, 0.0, 2 * dx / W], [0.0, 1.0, 2 * dy / H]]], device=device, dtype=torch.float64)
    expected = torch.zeros_like(u)  # output pixel (i, j) reads input pixel (i + dy, j + dx)
    rows, cols = slice(max(0, -dy), min(H, H - dy)), slice(max(0, -dx), min(W, W - dx))
    src_rows, src_cols = slice(rows.start + dy, rows.stop + dy), slice(cols.start + dx, cols.stop + dx)
    expected[..., rows, cols] = u[..., src_rows, src_cols]
    torch.testing.assert_close(affine_resample(u, theta), expected, rtol=1e-12, atol=1e-12)


def test_grid_sample_is_the_bilinear_kernel_of_eq_5(device):
    """V_i = Σ_nm U_nm max(0, 1 − |x_i − m|) max(0, 1 − |y_i − n|), in pixel coordinates (Jaderberg et al., eq. 5)."""
    torch.manual_seed(5)
    u = rand(1, 1, 5, 6, device=device)
    theta = torch.tensor([[[0.8, -0.3, 0.1], [0.25, 0.9, -0.2]]], device=device, dtype=torch.float64)
    H, W = u.shape[-2:]
    grid = F.affine_grid(theta, [1, 1, 4, 3], align_corners=False)[0]  # (4, 3, 2), eq. 1
    xs, ys = ((grid[..., 0] + 1) * W - 1) / 2, ((grid[..., 1] + 1) * H - 1) / 2  # pixel coordinates
    m, n = torch.arange(W, device=device, dtype=u.dtype), torch.arange(H, device=device, dtype=u.dtype)
    kx = (1 - (xs[..., None] - m).abs()).clamp(min=0)  # (4, 3, W)
    ky = (1 - (ys[..., None] - n).abs()).clamp(min=0)  # (4, 3, H)
    expected = torch.einsum("nm,ijn,ijm->ij", u[0, 0], ky, kx)
    torch.testing.assert_close(affine_resample(u, theta, size=(4, 3))[0, 0], expected)


# ------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("name", ["SE", "ECA", "CBAM", "STN"])
def test_gradcheck_in_float64(device, name):
    torch.manual_seed(6)
    module = {**modules(4), "STN": SpatialTransformer(4, hidden=3)}[name].to(device=device, dtype=torch.float64)
    if name == "SE":
        module = SqueezeExcitation(4, reduction=2).to(device=device, dtype=torch.float64)
    if name == "STN":  # move θ away from the identity so that its gradient is not a special case
        torch.nn.init.normal_(module.theta.weight, std=0.1)
    u = rand(2, 4, 5, 5, device=device, requires_grad=True)
    params = tuple(p for p in module.parameters())
    def run(u, *weights):
        for p, w in zip(params, weights):
            p.data = w.detach()
        out, _ = torch.func.functional_call(module, dict(zip([n for n, _ in module.named_parameters()], weights)),
                                            (u,))
        return out
    leaves = tuple(p.detach().clone().requires_grad_(True) for p in params)
    assert torch.autograd.gradcheck(run, (u, *leaves), eps=1e-6, atol=1e-5, nondet_tol=1e-7 if device.type == "cuda" else 0.0)


def test_affine_resample_gradcheck_in_theta(device):
    u = rand(1, 2, 5, 6, device=device)
    # bilinear sampling has kinks where a sample point crosses a pixel centre: none lies near one here
    theta = torch.tensor([[[0.83, 0.17, 0.031], [-0.12, 0.91, 0.07]]], device=device, dtype=torch.float64,
                         requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: affine_resample(u, t), (theta,), eps=1e-6, atol=1e-5,
                                    nondet_tol=1e-7 if device.type == "cuda" else 0.0)


# ------------------------------------------------------------------------------------ the convnet
@pytest.mark.parametrize("attention", [None, "se", "eca", "cbam"])
def test_convnet_returns_logits_and_each_stages_weights(device, attention):
    torch.manual_seed(7)
    net = ConvNet(ConvNetConfig.tiny(attention=attention, reduction=2)).to(device)
    logits, weights = net(torch.rand(3, 1, 12, 12, device=device))
    assert logits.shape == (3, 10) and len(weights) == 2
    if attention is None:
        assert weights == [None, None]
    elif attention == "cbam":
        assert [(tuple(c.shape), tuple(s.shape)) for c, s in weights] == [((3, 4), (3, 12, 12)), ((3, 8), (3, 6, 6))]
    else:
        assert [tuple(w.shape) for w in weights] == [(3, 4), (3, 8)]
    base = count_parameters(ConvNet(ConvNetConfig.tiny()))
    added = {None: 0, "se": se_parameters(4, 2) + se_parameters(8, 2), "eca": eca_kernel_size(4) + eca_kernel_size(8),
             "cbam": cbam_parameters(4, 2) + cbam_parameters(8, 2)}[attention]
    assert count_parameters(net) == base + added


def test_stn_classifier_rectifies_then_classifies(device):
    torch.manual_seed(8)
    model = STNClassifier(ConvNetConfig.tiny(), hidden=4, size=(10, 10)).to(device)
    x = torch.rand(2, 1, 16, 16, device=device)
    logits, (rectified, theta) = model(x)
    assert logits.shape == (2, 10) and rectified.shape == (2, 1, 10, 10) and theta.shape == (2, 2, 3)
    logits.sum().backward()
    assert model.transformer.theta.weight.grad.abs().sum() > 0, "θ learns from the classifier's loss"


def test_unknown_module_raises():
    with pytest.raises(ValueError, match="attention must be one of"):
        ConvNet(ConvNetConfig(attention="nonlocal"))
