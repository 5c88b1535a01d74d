"""The fairness set of the assignment of the chapter "Attention by differentiability", graded by
tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids in the instructor notebook: ``wrong`` answers
have one bug each and must lose points in the exercise ``loses`` only (the tests of exercises 2-5 put reference
functions in place of the learner's earlier ones, so a bug in exercise 1 costs nothing in exercise 2, nor one in
exercise 3 in exercise 4); ``reference`` answers run the course's reference and must lose that exercise's points
with the message ``message``; ``right`` answers are correct but written differently and get full marks.
``message`` is a part of the message that the failing test shows the learner.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1: the Gumbel-softmax sample
    dict(name="gumbel_noise_is_minus_log_u", kind="wrong", loses="gumbel_softmax_sample",
         message="gives g = -log(-log u)", answers={"gumbel_softmax_sample": '''
def gumbel_softmax_sample(logits, u, tau):
    g = -torch.log(u)  # exponential noise, not Gumbel
    return torch.softmax((logits + g) / tau, dim=-1)
'''}),
    dict(name="gumbel_without_temperature", kind="wrong", loses="gumbel_softmax_sample",
         message="proportional to p_k^2", answers={"gumbel_softmax_sample": '''
def gumbel_softmax_sample(logits, u, tau):
    return torch.softmax(logits - torch.log(-torch.log(u)), dim=-1)  # tau is never used
'''}),
    dict(name="gumbel_overflows_at_small_tau", kind="wrong", loses="gumbel_softmax_sample",
         message="must stay finite", answers={"gumbel_softmax_sample": '''
def gumbel_softmax_sample(logits, u, tau):
    e = torch.exp((logits - torch.log(-torch.log(u))) / tau)  # no shift: exp overflows to inf, inf / inf = NaN
    return e / e.sum(-1, keepdim=True)
'''}),
    dict(name="gumbel_calls_the_reference", kind="reference", loses="gumbel_softmax_sample",
         message="reference implementation", answers={"gumbel_softmax_sample": '''
from solutions.taxonomy import gumbel_softmax as relaxed


def gumbel_softmax_sample(logits, u, tau):
    return relaxed(logits, tau, noise=-torch.log(-torch.log(u)))
'''}),
    dict(name="gumbel_in_log_space_float64", kind="right", answers={"gumbel_softmax_sample": '''
def gumbel_softmax_sample(logits, u, tau):
    x = (logits.double() - (-u.double().log()).log()) / tau
    return torch.log_softmax(x, dim=-1).exp().to(logits.dtype)
'''}),
    # ------------------------------------------------------------------ exercise 2: straight-through
    dict(name="straight_through_without_gradient", kind="wrong", loses="straight_through_sample",
         message="must carry a gradient", answers={"straight_through_sample": '''
def straight_through_sample(logits, u, tau):
    y = gumbel_softmax_sample(logits, u, tau)
    return F.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)  # no path back to the logits
'''}),
    dict(name="straight_through_returns_the_soft_sample", kind="wrong", loses="straight_through_sample",
         message="one-hot argmax of y", answers={"straight_through_sample": '''
def straight_through_sample(logits, u, tau):
    return gumbel_softmax_sample(logits, u, tau)  # never made one-hot
'''}),
    dict(name="straight_through_backward_sign", kind="wrong", loses="straight_through_sample",
         message="the backward pass is that of the soft sample", answers={"straight_through_sample": '''
def straight_through_sample(logits, u, tau):
    y = gumbel_softmax_sample(logits, u, tau)
    hard = F.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
    return hard + y.detach() - y  # the gradient of -y
'''}),
    dict(name="straight_through_pytorch_order", kind="right", answers={"straight_through_sample": '''
def straight_through_sample(logits, u, tau):
    y = gumbel_softmax_sample(logits, u, tau)
    hard = torch.zeros_like(y).scatter_(-1, y.argmax(-1, keepdim=True), 1.0)
    return hard - y.detach() + y  # may differ from one-hot in the last digit
'''}),
    # ------------------------------------------------------------------ a cascade: only exercise 1 loses
    dict(name="gumbel_without_temperature_and_straight_through_on_it", kind="wrong", loses="gumbel_softmax_sample",
         message="proportional to p_k^2", answers={"gumbel_softmax_sample": '''
def gumbel_softmax_sample(logits, u, tau):
    return torch.softmax(logits - torch.log(-torch.log(u)), dim=-1)  # tau is never used
''', "straight_through_sample": '''
def straight_through_sample(logits, u, tau):
    y = gumbel_softmax_sample(logits, u, tau)
    hard = F.one_hot(y.argmax(-1), y.shape[-1]).to(y.dtype)
    return hard + (y - y.detach())
'''}),
    # ------------------------------------------------------------------ exercise 3: the score-function estimate
    dict(name="reinforce_forgets_alpha", kind="wrong", loses="reinforce_estimates",
         message="(2 - 1)(e_0 - alpha)", answers={"reinforce_estimates": '''
def reinforce_estimates(logits, z, losses, baseline=0.0):
    picked = F.one_hot(z, logits.shape[-1]).to(logits.dtype)
    return (losses - baseline)[:, None].to(logits.dtype) * picked  # the gradient of log alpha_z is not e_z
'''}),
    dict(name="reinforce_ignores_the_baseline", kind="wrong", loses="reinforce_estimates",
         message="(2 - 1)(e_0 - alpha)", answers={"reinforce_estimates": '''
def reinforce_estimates(logits, z, losses, baseline=0.0):
    alpha = torch.softmax(logits, -1)
    return losses[:, None].to(logits.dtype) * (F.one_hot(z, logits.shape[-1]).to(logits.dtype) - alpha)
'''}),
    dict(name="reinforce_sign_flipped", kind="wrong", loses="reinforce_estimates",
         message="(2 - 1)(e_0 - alpha)", answers={"reinforce_estimates": '''
def reinforce_estimates(logits, z, losses, baseline=0.0):
    alpha = torch.softmax(logits, -1)
    return (baseline - losses)[:, None].to(logits.dtype) * (F.one_hot(z, logits.shape[-1]).to(logits.dtype) - alpha)
'''}),
    dict(name="reinforce_calls_the_reference", kind="reference", loses="reinforce_estimates",
         message="reference implementation", answers={"reinforce_estimates": '''
from solutions.taxonomy.differentiability import categorical_log_prob, score_function_surrogate


def reinforce_estimates(logits, z, losses, baseline=0.0):
    s = logits.detach().expand(len(z), -1).clone().requires_grad_(True)
    surrogate = score_function_surrogate(categorical_log_prob(s, z), losses, baseline)
    return torch.autograd.grad(surrogate.sum(), s)[0]
'''}),
    dict(name="reinforce_by_autograd", kind="right", answers={"reinforce_estimates": '''
def reinforce_estimates(logits, z, losses, baseline=0.0):
    s = logits.detach().repeat(len(z), 1).requires_grad_(True)  # (S, K): one copy per sample
    log_alpha = torch.log_softmax(s, dim=-1).gather(1, z[:, None]).squeeze(1)
    weight = torch.as_tensor(losses - baseline, dtype=s.dtype, device=s.device)
    (grad,) = torch.autograd.grad((weight * log_alpha).sum(), s)
    return grad
'''}),
    # ------------------------------------------------------------------ exercise 4: leave-one-out
    dict(name="loo_includes_its_own_sample", kind="wrong", loses="leave_one_out_estimates",
         message="b_0 = 4 (the other loss)", answers={"leave_one_out_estimates": '''
def leave_one_out_estimates(logits, z, losses):
    if len(losses) < 2:
        raise ValueError("need two samples")
    return reinforce_estimates(logits, z, losses, losses.mean())  # f_n is in its own baseline: biased
'''}),
    dict(name="loo_accepts_one_sample", kind="wrong", loses="leave_one_out_estimates",
         message="raise a ValueError", answers={"leave_one_out_estimates": '''
def leave_one_out_estimates(logits, z, losses):
    others = (losses.sum() - losses) / (len(losses) - 1)  # 0 / 0 for one sample
    return reinforce_estimates(logits, z, losses, others)
'''}),
    dict(name="loo_by_a_mask", kind="right", answers={"leave_one_out_estimates": '''
def leave_one_out_estimates(logits, z, losses):
    S = len(losses)
    if S <= 1:
        raise ValueError(f"{S} sample(s): no others to average")
    others = ~torch.eye(S, dtype=torch.bool, device=losses.device)  # (S, S): True off the diagonal
    baseline = (others * losses[None, :]).sum(1) / (S - 1)
    return reinforce_estimates(logits, z, losses, baseline)
'''}),
    # ------------------------------------------------------------------ exercise 5: enumeration
    dict(name="enumerated_is_the_soft_gradient", kind="wrong", loses="enumerated_gradient",
         message="0.28125, is soft attention's", answers={"enumerated_gradient": '''
def enumerated_gradient(logits, objective):
    s = logits.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(objective(torch.softmax(s, -1)).sum(), s)  # the gradient of f(alpha)
    return grad
'''}),
    dict(name="enumerated_forgets_the_mean", kind="wrong", loses="enumerated_gradient",
         message="[-1/3, 0, 1/3]", answers={"enumerated_gradient": '''
def enumerated_gradient(logits, objective):
    B, K = logits.shape
    eye = torch.eye(K, dtype=logits.dtype, device=logits.device)
    f = torch.stack([objective(eye[k].expand(B, K)) for k in range(K)], -1)
    return torch.softmax(logits, -1) * f  # alpha * f, without subtracting J
'''}),
    dict(name="enumerated_calls_the_reference", kind="reference", loses="enumerated_gradient",
         message="reference implementation", answers={"enumerated_gradient": '''
from solutions.taxonomy.differentiability import exact_gradient


def enumerated_gradient(logits, objective):
    B, K = logits.shape
    eye = torch.eye(K, dtype=logits.dtype, device=logits.device)
    f = torch.stack([objective(eye[k].expand(B, K)) for k in range(K)], -1)
    return exact_gradient(logits, f)
'''}),
    dict(name="enumerated_by_autograd_and_einsum", kind="right", answers={"enumerated_gradient": '''
def enumerated_gradient(logits, objective):
    B, K = logits.shape
    s = logits.detach().clone().requires_grad_(True)
    one_hots = torch.eye(K, dtype=s.dtype, device=s.device)[:, None, :].expand(K, B, K)  # (K, B, K)
    f = torch.stack([objective(one_hots[k]) for k in range(K)])  # (K, B)
    J = torch.einsum("bk,kb->b", torch.softmax(s, -1), f.detach())
    return torch.autograd.grad(J.sum(), s)[0]
'''}),
]
