"""The fairness set of the chapter 12 assignment (channel and spatial attention), graded by tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids in the instructor notebook: ``wrong`` answers
have one bug each and must lose points in the exercise ``loses`` only; ``reference`` answers run the course's
reference and must lose that exercise's points with the message ``message``; ``right`` answers are correct but
written differently and get full marks.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1: squeeze_excite_last
    dict(name="se_last_without_relu", kind="wrong", loses="squeeze_excite_last", message="s = sigmoid(W2 relu",
         answers={"squeeze_excite_last": '''
def squeeze_excite_last(x, w1, b1, w2, b2):
    z = x.mean(dim=(-3, -2))
    s = torch.sigmoid((z @ w1.T + b1) @ w2.T + b2)  # the ReLU between the two layers is missing
    return x * s[..., None, None, :], s
'''}),
    dict(name="se_last_max_pool_squeeze", kind="wrong", loses="squeeze_excite_last", message="mean over the H and W",
         answers={"squeeze_excite_last": '''
def squeeze_excite_last(x, w1, b1, w2, b2):
    z = x.amax(dim=(-3, -2))  # CBAM's max pool instead of SE's mean
    s = torch.sigmoid(torch.relu(z @ w1.T + b1) @ w2.T + b2)
    return x * s[..., None, None, :], s
'''}),
    dict(name="se_last_calls_the_reference", kind="reference", loses="squeeze_excite_last",
         message="reference implementation", answers={"squeeze_excite_last": '''
from solutions.vision import SqueezeExcitation as Block


def squeeze_excite_last(x, w1, b1, w2, b2):
    block = Block(w1.shape[1], reduction=w1.shape[1] // w1.shape[0]).to(device=x.device, dtype=x.dtype)
    with torch.no_grad():
        block.reduce.weight.copy_(w1), block.reduce.bias.copy_(b1)
        block.expand.weight.copy_(w2), block.expand.bias.copy_(b2)
        lead, (H, W, C) = x.shape[:-3], x.shape[-3:]
        out, s = block(x.reshape(-1, H, W, C).permute(0, 3, 1, 2))
    return out.permute(0, 2, 3, 1).reshape(x.shape), s.reshape(*lead, C)
'''}),
    dict(name="se_last_einsum_in_float64", kind="right", answers={"squeeze_excite_last": '''
def squeeze_excite_last(x, w1, b1, w2, b2):
    dtype = x.dtype
    x64, w1, b1, w2, b2 = (t.double() for t in (x, w1, b1, w2, b2))
    H, W = x64.shape[-3], x64.shape[-2]
    z = torch.einsum("...hwc->...c", x64) / (H * W)
    hidden = torch.clamp(torch.einsum("rc,...c->...r", w1, z) + b1, min=0)
    s = 1 / (1 + torch.exp(-(torch.einsum("cr,...r->...c", w2, hidden) + b2)))
    return (x64 * s.unsqueeze(-2).unsqueeze(-2)).to(dtype), s.to(dtype)
'''}),
    # ------------------------------------------------------------------ exercise 2: eca_gate
    dict(name="eca_gate_wraps_around", kind="wrong", loses="eca_gate", message="and 0 before the first",
         answers={"eca_gate": '''
def eca_gate(z, weight):
    k = weight.shape[0]
    if k % 2 == 0:
        raise ValueError("even kernel")
    half = k // 2
    total = sum(weight[j] * torch.roll(z, shifts=half - j, dims=-1) for j in range(k))  # circular, not zero padding
    return torch.sigmoid(total)
'''}),
    dict(name="eca_gate_flipped_kernel", kind="wrong", loses="eca_gate", message="reads the previous channel",
         answers={"eca_gate": '''
def eca_gate(z, weight):
    k = weight.shape[0]
    if k % 2 == 0:
        raise ValueError("even kernel")
    half = k // 2
    padded = F.pad(z, (half, half))
    C = z.shape[-1]
    flipped = weight.flip(0)  # a true convolution: the kernel is reversed
    return torch.sigmoid(sum(flipped[j] * padded[..., j:j + C] for j in range(k)))
'''}),
    dict(name="eca_gate_through_importlib", kind="reference", loses="eca_gate", message="reference implementation",
         answers={"eca_gate": '''
import importlib


def eca_gate(z, weight):
    module = importlib.import_module("solutions.vision.channel")
    eca = module.EfficientChannelAttention(z.shape[-1], kernel_size=weight.shape[0]).to(device=z.device, dtype=z.dtype)
    with torch.no_grad():
        eca.conv.weight.copy_(weight.view(1, 1, -1))
        return eca(z.reshape(-1, z.shape[-1], 1, 1))[1].reshape(z.shape)
'''}),
    dict(name="eca_gate_conv1d_flattened", kind="right", answers={"eca_gate": '''
def eca_gate(z, weight):
    if weight.numel() % 2 == 0:
        raise ValueError(f"odd kernel sizes only, got {weight.numel()}")
    flat = z.reshape(-1, 1, z.shape[-1])  # (N, 1, C)
    out = F.conv1d(flat, weight.view(1, 1, -1), padding=weight.numel() // 2)
    return torch.sigmoid(out).reshape(z.shape)
'''}),
    # ------------------------------------------------------------------ exercise 3: spatial_attention_map
    dict(name="spatial_padding_ignores_dilation", kind="wrong", loses="spatial_attention_map",
         message="keeps H x W for any dilation", answers={"spatial_attention_map": '''
def spatial_attention_map(f, weight, dilation=1):
    pools = torch.stack([f.mean(dim=1), f.amax(dim=1)], dim=1)
    k = weight.shape[-1]
    return torch.sigmoid(F.conv2d(pools, weight, padding=k // 2, dilation=dilation)).squeeze(1)
'''}),
    dict(name="spatial_pools_in_the_wrong_order", kind="wrong", loses="spatial_attention_map",
         message="reads the max map", answers={"spatial_attention_map": '''
def spatial_attention_map(f, weight, dilation=1):
    pools = torch.stack([f.amax(dim=1), f.mean(dim=1)], dim=1)  # [max; mean]: the filter's channels swapped
    reach = dilation * (weight.shape[-1] - 1) // 2
    return torch.sigmoid(F.conv2d(pools, weight, padding=reach, dilation=dilation)).squeeze(1)
'''}),
    dict(name="spatial_explicit_pad_and_unfold", kind="right", answers={"spatial_attention_map": '''
def spatial_attention_map(f, weight, dilation=1):
    B, _, H, W = f.shape
    k = weight.shape[-1]
    reach = dilation * (k - 1) // 2
    pools = torch.cat([f.mean(dim=1, keepdim=True), f.max(dim=1, keepdim=True).values], dim=1)
    patches = F.unfold(F.pad(pools, (reach,) * 4), kernel_size=k, dilation=dilation)  # (B, 2 k k, H W)
    scores = torch.einsum("p,bpl->bl", weight.reshape(-1), patches)
    return torch.sigmoid(scores).view(B, H, W)
'''}),
    # ------------------------------------------------------------------ exercise 4: zoom_theta
    dict(name="zoom_with_align_corners_true_formula", kind="wrong", loses="zoom_theta", message="left half",
         answers={"zoom_theta": '''
def zoom_theta(boxes, height, width):
    x0, y0, x1, y1 = boxes.unbind(-1)
    zero = torch.zeros_like(x0)
    # pixel centres at -1 and +1 (align_corners=True), not the edges
    sx, tx = (x1 - x0 - 1) / (width - 1), (x0 + x1 - 1) / (width - 1) - 1
    sy, ty = (y1 - y0 - 1) / (height - 1), (y0 + y1 - 1) / (height - 1) - 1
    return torch.stack([torch.stack([sx, zero, tx], -1), torch.stack([zero, sy, ty], -1)], -2)
'''}),
    dict(name="zoom_height_and_width_swapped", kind="wrong", loses="zoom_theta",
         message="whole image gives the identity",
         answers={"zoom_theta": '''
def zoom_theta(boxes, height, width):
    x0, y0, x1, y1 = boxes.unbind(-1)
    zero = torch.zeros_like(x0)
    sx, tx = (x1 - x0) / height, (x0 + x1) / height - 1
    sy, ty = (y1 - y0) / width, (y0 + y1) / width - 1
    return torch.stack([torch.stack([sx, zero, tx], -1), torch.stack([zero, sy, ty], -1)], -2)
'''}),
    dict(name="zoom_by_composing_pixel_maps", kind="right", answers={"zoom_theta": '''
def zoom_theta(boxes, height, width):
    # normalised output -> box pixels -> normalised input, as 3x3 homogeneous matrices
    B = boxes.shape[0]
    eye = torch.eye(3, dtype=boxes.dtype, device=boxes.device).expand(B, 3, 3)
    to_box = eye.clone()
    to_box[:, 0, 0] = (boxes[:, 2] - boxes[:, 0]) / 2
    to_box[:, 0, 2] = (boxes[:, 2] + boxes[:, 0]) / 2
    to_box[:, 1, 1] = (boxes[:, 3] - boxes[:, 1]) / 2
    to_box[:, 1, 2] = (boxes[:, 3] + boxes[:, 1]) / 2
    to_input = torch.tensor([[2 / width, 0, -1], [0, 2 / height, -1], [0, 0, 1]], dtype=boxes.dtype,
                            device=boxes.device)
    return (to_input @ to_box)[:, :2, :]
'''}),
]
