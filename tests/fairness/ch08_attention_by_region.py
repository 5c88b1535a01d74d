"""The fairness set of the chapter 8 assignment (attention by region), graded by tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids in the instructor notebook: ``wrong`` answers
have one bug each and must lose points in the exercise ``loses`` only; ``reference`` answers run the course's
reference and must lose that exercise's points with the message ``message``; ``right`` answers are correct but
written differently and get full marks.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1: glimpse_patches
    dict(name="patches_windows_transposed", kind="wrong", loses="glimpse_patches", message="location (r, c)",
         answers={"glimpse_patches": '''
def glimpse_patches(images, patch, stride):
    B, C, H, W = images.shape
    for side in (H, W):
        if side < patch or (side - patch) % stride != 0:
            raise ValueError("no tiling")
    windows = images.unfold(2, patch, stride).unfold(3, patch, stride)  # (B, C, Gy, Gx, P, P)
    return windows.permute(0, 2, 3, 1, 5, 4)  # each window transposed: x and y swapped inside it
'''}),
    dict(name="patches_no_tiling_check", kind="wrong", loses="glimpse_patches", message="ValueError",
         answers={"glimpse_patches": '''
def glimpse_patches(images, patch, stride):
    return images.unfold(2, patch, stride).unfold(3, patch, stride).permute(0, 2, 3, 1, 4, 5)  # no ValueError
'''}),
    dict(name="patches_call_the_reference", kind="reference", loses="glimpse_patches", message="reference implementation",
         answers={"glimpse_patches": '''
from solutions.taxonomy import extract_patches as cut


def glimpse_patches(images, patch, stride):
    B, C, H, W = images.shape
    if H < patch or W < patch or (H - patch) % stride or (W - patch) % stride:
        raise ValueError("no tiling")
    gy, gx = (H - patch) // stride + 1, (W - patch) // stride + 1
    if C == 1 and H == W:
        return cut(images, patch, stride).view(B, gy, gx, 1, patch, patch)
    cols = F.unfold(images, patch, stride=stride)
    return cols.view(B, C, patch, patch, gy, gx).permute(0, 4, 5, 1, 2, 3)
'''}),
    dict(name="patches_by_f_unfold", kind="right", answers={"glimpse_patches": '''
def glimpse_patches(images, patch, stride):
    B, C, H, W = images.shape
    if min(H, W) < patch or (H - patch) % stride or (W - patch) % stride:
        raise ValueError(f"{patch}-pixel windows every {stride} pixels do not tile {H} x {W}")
    gy, gx = (H - patch) // stride + 1, (W - patch) // stride + 1
    columns = F.unfold(images, kernel_size=patch, stride=stride)  # (B, C P P, Gy Gx)
    return columns.reshape(B, C, patch, patch, gy, gx).permute(0, 4, 5, 1, 2, 3).contiguous()
'''}),
    # ------------------------------------------------------------------ exercise 2: threshold_weights
    dict(name="threshold_keeps_weights_unnormalised", kind="wrong", loses="threshold_weights", message="renormalises",
         answers={"threshold_weights": '''
def threshold_weights(scores, threshold):
    p = torch.exp(scores - torch.logsumexp(scores, -1, keepdim=True))
    kept = (p >= threshold) | (scores == scores.amax(-1, keepdim=True))
    return p * kept  # the soft weights of the kept inputs, not renormalised over the kept set
'''}),
    dict(name="threshold_may_drop_everything", kind="wrong", loses="threshold_weights", message="most likely input",
         answers={"threshold_weights": '''
def threshold_weights(scores, threshold):
    p = torch.exp(scores - torch.logsumexp(scores, -1, keepdim=True))
    kept = p >= threshold  # the most likely input is not kept when tau is above every weight
    mass = p * kept
    return mass / mass.sum(-1, keepdim=True).clamp_min(1e-30)
'''}),
    dict(name="threshold_through_masked_softmax", kind="reference", loses="threshold_weights",
         message="reference implementation", answers={"threshold_weights": '''
import solutions.attention as core


def threshold_weights(scores, threshold):
    p = core.masked_softmax(scores)
    return core.masked_softmax(scores, (p >= threshold) | (p == p.amax(-1, keepdim=True)))
'''}),
    dict(name="threshold_by_sorting_in_float64", kind="right", answers={"threshold_weights": '''
def threshold_weights(scores, threshold):
    e = scores.double()
    p = torch.exp(e - torch.logsumexp(e, dim=-1, keepdim=True))
    order = torch.argsort(p, dim=-1, descending=True)
    keep_sorted = torch.gather(p, -1, order) >= threshold
    keep_sorted[..., 0] = True  # the most likely input
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    kept_scores = torch.where(keep, e, torch.full_like(e, float("-inf")))
    weights = torch.exp(kept_scores - torch.logsumexp(kept_scores, dim=-1, keepdim=True))
    return weights.to(scores.dtype)
'''}),
    # ------------------------------------------------------------------ exercise 3: gaussian_local_weights
    dict(name="gaussian_with_sigma_equal_to_the_radius", kind="wrong", loses="gaussian_local_weights",
         message="exp(-2)", answers={"gaussian_local_weights": '''
def gaussian_local_weights(scores, centre, radius):
    B, Gy, Gx = scores.shape
    i = torch.arange(Gy, dtype=scores.dtype, device=scores.device)[None, :, None] - centre[:, 0, None, None]
    j = torch.arange(Gx, dtype=scores.dtype, device=scores.device)[None, None, :] - centre[:, 1, None, None]
    window = (i.abs() <= radius) & (j.abs() <= radius)
    inside = scores.masked_fill(~window, float("-inf"))
    soft = torch.softmax(inside.flatten(1), -1).view(B, Gy, Gx)
    return soft * torch.exp(-(i ** 2 + j ** 2) / (2 * radius ** 2))  # sigma = D instead of D / 2
'''}),
    dict(name="gaussian_softmax_over_the_whole_grid", kind="wrong", loses="gaussian_local_weights",
         message="1/9", answers={"gaussian_local_weights": '''
def gaussian_local_weights(scores, centre, radius):
    B, Gy, Gx = scores.shape
    i = torch.arange(Gy, dtype=scores.dtype, device=scores.device)[None, :, None] - centre[:, 0, None, None]
    j = torch.arange(Gx, dtype=scores.dtype, device=scores.device)[None, None, :] - centre[:, 1, None, None]
    window = (i.abs() <= radius) & (j.abs() <= radius)
    soft = torch.softmax(scores.flatten(1), -1).view(B, Gy, Gx)  # normalised over every location, then cut
    return soft * window * torch.exp(-(i ** 2 + j ** 2) / (2 * (radius / 2) ** 2))
'''}),
    dict(name="gaussian_through_the_course_mask", kind="reference", loses="gaussian_local_weights",
         message="reference implementation", answers={"gaussian_local_weights": '''
from solutions.attention import masked_softmax as align


def gaussian_local_weights(scores, centre, radius):
    B, Gy, Gx = scores.shape
    i = torch.arange(Gy, dtype=scores.dtype, device=scores.device)[None, :, None] - centre[:, 0, None, None]
    j = torch.arange(Gx, dtype=scores.dtype, device=scores.device)[None, None, :] - centre[:, 1, None, None]
    window = (i.abs() <= radius) & (j.abs() <= radius)
    soft = align(scores.reshape(B, -1), window.reshape(B, -1)).view(B, Gy, Gx)
    return soft * torch.exp(-(i ** 2 + j ** 2) / (2 * (radius / 2) ** 2))
'''}),
    dict(name="gaussian_by_outer_products", kind="right", answers={"gaussian_local_weights": '''
def gaussian_local_weights(scores, centre, radius):
    sigma2 = (radius / 2) ** 2
    rows = torch.arange(scores.shape[1], device=scores.device, dtype=scores.dtype)
    cols = torch.arange(scores.shape[2], device=scores.device, dtype=scores.dtype)
    dr = rows[None, :] - centre[:, :1]  # (B, Gy)
    dc = cols[None, :] - centre[:, 1:]  # (B, Gx)
    in_r, in_c = dr.abs() <= radius, dc.abs() <= radius
    window = torch.einsum("bi,bj->bij", in_r.to(scores.dtype), in_c.to(scores.dtype)) > 0
    gauss = torch.einsum("bi,bj->bij", torch.exp(-dr ** 2 / (2 * sigma2)), torch.exp(-dc ** 2 / (2 * sigma2)))
    e = torch.where(window, scores, torch.full_like(scores, -float("inf")))
    e = e - e.amax(dim=(1, 2), keepdim=True)
    mass = torch.exp(e)
    return mass / mass.sum(dim=(1, 2), keepdim=True) * gauss
'''}),
    # ------------------------------------------------------------------ exercise 4: reinforce_moving_baseline
    dict(name="baseline_includes_the_current_batch", kind="wrong", loses="reinforce_moving_baseline",
         message="b1 = 0", answers={"reinforce_moving_baseline": '''
def reinforce_moving_baseline(log_probs, rewards, decay):
    T, B = rewards.shape
    b = torch.zeros((), dtype=rewards.dtype, device=rewards.device)
    baselines = []
    for t in range(T):
        b = decay * b + (1 - decay) * rewards[t].detach().mean()  # updated before it is used: sees batch t
        baselines.append(b)
    baselines = torch.stack(baselines)
    return -((rewards.detach() - baselines[:, None]) * log_probs).mean(), baselines
'''}),
    dict(name="reinforce_sign_flipped", kind="wrong", loses="reinforce_moving_baseline", message="gradient",
         answers={"reinforce_moving_baseline": '''
def reinforce_moving_baseline(log_probs, rewards, decay):
    T, B = rewards.shape
    b, baselines = rewards.new_zeros(()), []
    for t in range(T):
        baselines.append(b)
        b = decay * b + (1 - decay) * rewards[t].detach().mean()
    baselines = torch.stack(baselines)
    return ((rewards.detach() - baselines[:, None]) * log_probs).mean(), baselines  # ascends the loss
'''}),
    dict(name="reinforce_through_the_course_terms", kind="reference", loses="reinforce_moving_baseline",
         message="reference implementation", answers={"reinforce_moving_baseline": '''
from solutions import taxonomy


def reinforce_moving_baseline(log_probs, rewards, decay):
    T, B = rewards.shape
    b, baselines = rewards.new_zeros(()), []
    for t in range(T):
        baselines.append(b)
        b = decay * b + (1 - decay) * rewards[t].detach().mean()
    baselines = torch.stack(baselines)
    policy, _ = taxonomy.reinforce_terms(log_probs.reshape(-1), rewards.detach().reshape(-1),
                                         baselines[:, None].expand(T, B).reshape(-1))
    return policy, baselines
'''}),
    dict(name="reinforce_closed_form_baselines", kind="right", answers={"reinforce_moving_baseline": '''
def reinforce_moving_baseline(log_probs, rewards, decay):
    # b_t = (1 - beta) * sum_{s < t} beta^(t - 1 - s) rbar_s, as one matrix product
    with torch.no_grad():
        T = rewards.shape[0]
        means = rewards.mean(dim=-1)  # (T,)
        t = torch.arange(T, device=rewards.device)
        power = (t[:, None] - 1 - t[None, :]).clamp(min=0).to(rewards.dtype)
        weights = (1 - decay) * torch.pow(torch.as_tensor(decay, dtype=rewards.dtype, device=rewards.device), power)
        weights = weights * (t[None, :] < t[:, None])  # only the batches before t
        baselines = weights @ means
        advantage = rewards - baselines[:, None]
    return -torch.einsum("tb,tb->", advantage, log_probs) / rewards.numel(), baselines
'''}),
]
