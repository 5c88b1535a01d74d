"""The fairness set of chapter 1's assignment (attention pooling), graded by tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids in the instructor notebook: ``wrong``
answers have one bug each and must lose points in the exercise ``loses`` only (exercise 4's tests use the
reference weights and pooling, exercise 5's the reference layer, so a bug there costs nothing in exercises
4 and 5); ``reference`` answers run the course's reference and must lose that exercise's points with the
message ``message``; ``right`` answers are correct but written differently and get full marks. ``message``
is a part of the message that the failing test shows the learner.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1: exp divided by a sum of exp
    dict(name="gaussian_exp_over_sum", kind="wrong", loses="kernel_attention_weights", message="far from the query",
         answers={"kernel_attention_weights": '''
def kernel_attention_weights(queries, keys, sigma, kernel="gaussian"):
    u = (queries.unsqueeze(-1) - keys.unsqueeze(-2)) / sigma
    if kernel == "gaussian":
        k = torch.exp(-u**2 / 2)
        return k / k.sum(-1, keepdim=True)  # 0/0 when every key is far away
    if kernel == "boxcar":
        k = (u.abs() <= 1).to(u.dtype)
    elif kernel == "epanechnikov":
        k = (1 - u**2).clamp(min=0)
    else:
        raise ValueError(kernel)
    total = k.sum(-1, keepdim=True)
    return k / torch.where(total > 0, total, torch.ones_like(total))
'''}),
    dict(name="gaussian_without_the_two", kind="wrong", loses="kernel_attention_weights", message="2 sigma^2",
         answers={"kernel_attention_weights": '''
def kernel_attention_weights(queries, keys, sigma, kernel="gaussian"):
    u = (queries.unsqueeze(-1) - keys.unsqueeze(-2)) / sigma
    if kernel == "gaussian":
        return torch.softmax(-u**2, dim=-1)  # the 2 is missing
    if kernel == "boxcar":
        k = (u.abs() <= 1).to(u.dtype)
    elif kernel == "epanechnikov":
        k = (1 - u**2).clamp(min=0)
    else:
        raise ValueError(kernel)
    total = k.sum(-1, keepdim=True)
    return k / torch.where(total > 0, total, torch.ones_like(total))
'''}),
    dict(name="boxcar_strict_window", kind="wrong", loses="kernel_attention_weights", message="distance exactly 1",
         answers={"kernel_attention_weights": '''
def kernel_attention_weights(queries, keys, sigma, kernel="gaussian"):
    u = (queries.unsqueeze(-1) - keys.unsqueeze(-2)) / sigma
    if kernel == "gaussian":
        return torch.softmax(-u**2 / 2, dim=-1)
    if kernel == "boxcar":
        k = (u.abs() < 1).to(u.dtype)  # < instead of <=
    elif kernel == "epanechnikov":
        k = (1 - u**2).clamp(min=0)
    else:
        raise ValueError(kernel)
    total = k.sum(-1, keepdim=True)
    return k / torch.where(total > 0, total, torch.ones_like(total))
'''}),
    dict(name="compact_kernels_divide_by_zero", kind="wrong", loses="kernel_attention_weights", message="not NaN",
         answers={"kernel_attention_weights": '''
def kernel_attention_weights(queries, keys, sigma, kernel="gaussian"):
    u = (queries.unsqueeze(-1) - keys.unsqueeze(-2)) / sigma
    if kernel == "gaussian":
        return torch.softmax(-u**2 / 2, dim=-1)
    if kernel == "boxcar":
        k = (u.abs() <= 1).to(u.dtype)
    elif kernel == "epanechnikov":
        k = (1 - u**2).clamp(min=0)
    else:
        raise ValueError(kernel)
    return k / k.sum(-1, keepdim=True)  # 0/0 for a query with no key in its window
'''}),
    dict(name="gaussian_calls_the_reference", kind="reference", loses="kernel_attention_weights",
         message="reference implementation", answers={"kernel_attention_weights": '''
import solutions.foundations.nadaraya_watson as nw


def kernel_attention_weights(queries, keys, sigma, kernel="gaussian"):
    if kernel == "gaussian":
        return nw.gaussian_kernel_weights(queries, keys, sigma)
    u = (queries.unsqueeze(-1) - keys.unsqueeze(-2)) / sigma
    if kernel == "boxcar":
        k = (u.abs() <= 1).to(u.dtype)
    elif kernel == "epanechnikov":
        k = (1 - u**2).clamp(min=0)
    else:
        raise ValueError(kernel)
    total = k.sum(-1, keepdim=True)
    return k / torch.where(total > 0, total, torch.ones_like(total))
'''}),
    # ------------------------------------------------------------------ exercise 2: unbatched matmul
    dict(name="pooling_plain_matmul", kind="wrong", loses="attention_pooling", message="a batch of 4",
         answers={"attention_pooling": '''
def attention_pooling(weights, values):
    if weights.shape[-1] != values.shape[-1]:
        raise ValueError(f"{weights.shape[-1]} keys, {values.shape[-1]} values")
    return weights @ values  # right for one sentence, wrong for a batch
'''}),
    # ------------------------------------------------------------------ exercise 3: zero the diagonal afterwards
    dict(name="loo_zero_then_renormalise", kind="wrong", loses="leave_one_out_weights", message="sigma = 0.01",
         answers={"leave_one_out_weights": '''
def leave_one_out_weights(x, sigma):
    w = torch.softmax(-(x.unsqueeze(-1) - x.unsqueeze(-2)) ** 2 / (2 * sigma**2), dim=-1)
    w = w * (1 - torch.eye(len(x), dtype=x.dtype, device=x.device))
    return w / w.sum(-1, keepdim=True)  # 0/0 when the point itself had all the weight
'''}),
    dict(name="loo_fill_minus_1e4", kind="wrong", loses="leave_one_out_weights", message="every exp of another point",
         answers={"leave_one_out_weights": '''
def leave_one_out_weights(x, sigma):
    scores = -(x.unsqueeze(-1) - x.unsqueeze(-2)) ** 2 / (2 * sigma**2)
    scores = scores.masked_fill(torch.eye(len(x), dtype=torch.bool, device=x.device), -1e4)  # not small enough
    return torch.softmax(scores, dim=-1) * (1 - torch.eye(len(x), dtype=x.dtype, device=x.device))
'''}),
    # ------------------------------------------------------------------ exercise 4: one bandwidth per dimension
    dict(name="layer_ignores_leave_one_out", kind="wrong", loses="diagonal_gaussian_pooling",
         message="leave_one_out=True", answers={"diagonal_gaussian_pooling": '''
class DiagonalGaussianPooling(nn.Module):
    def __init__(self, dim, sigma=1.0):
        super().__init__()
        self.log_sigma = nn.Parameter(torch.full((dim,), math.log(sigma)))

    @property
    def sigma(self):
        return self.log_sigma.exp()

    def forward(self, queries, keys, values, leave_one_out=False):
        if leave_one_out:
            queries = keys  # but each point still sees itself
        d = (queries.unsqueeze(-2) - keys.unsqueeze(-3)) / self.sigma
        weights = torch.softmax(-0.5 * (d * d).sum(-1), dim=-1)
        return attention_pooling(weights, values), weights
'''}),
    dict(name="layer_divides_by_sigma_not_its_square", kind="wrong", loses="diagonal_gaussian_pooling",
         message="exp(-1/2)", answers={"diagonal_gaussian_pooling": '''
class DiagonalGaussianPooling(nn.Module):
    def __init__(self, dim, sigma=1.0):
        super().__init__()
        self.log_sigma = nn.Parameter(torch.full((dim,), math.log(sigma)))

    @property
    def sigma(self):
        return self.log_sigma.exp()

    def forward(self, queries, keys, values, leave_one_out=False):
        if leave_one_out:
            queries = keys
        exponent = -0.5 * ((queries.unsqueeze(-2) - keys.unsqueeze(-3)) ** 2 / self.sigma).sum(-1)  # sigma, not sigma^2
        if leave_one_out:
            exponent = exponent.masked_fill(torch.eye(keys.shape[-2], dtype=torch.bool, device=keys.device),
                                            torch.finfo(exponent.dtype).min)
        weights = torch.softmax(exponent, dim=-1)
        return attention_pooling(weights, values), weights
'''}),
    dict(name="layer_one_shared_bandwidth", kind="wrong", loses="diagonal_gaussian_pooling",
         message="one entry per input dimension", answers={"diagonal_gaussian_pooling": '''
class DiagonalGaussianPooling(nn.Module):
    def __init__(self, dim, sigma=1.0):
        super().__init__()
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))  # one bandwidth for every dimension

    @property
    def sigma(self):
        return self.log_sigma.exp()

    def forward(self, queries, keys, values, leave_one_out=False):
        if leave_one_out:
            queries = keys
        exponent = -0.5 * ((queries.unsqueeze(-2) - keys.unsqueeze(-3)) / self.sigma).pow(2).sum(-1)
        if leave_one_out:
            exponent = exponent.masked_fill(torch.eye(keys.shape[-2], dtype=torch.bool, device=keys.device),
                                            torch.finfo(exponent.dtype).min)
        weights = torch.softmax(exponent, dim=-1)
        return attention_pooling(weights, values), weights
'''}),
    dict(name="layer_loo_zero_then_renormalise", kind="wrong", loses="diagonal_gaussian_pooling",
         message="sigma = 0.01", answers={"diagonal_gaussian_pooling": '''
class DiagonalGaussianPooling(nn.Module):
    def __init__(self, dim, sigma=1.0):
        super().__init__()
        self.log_sigma = nn.Parameter(torch.full((dim,), math.log(sigma)))

    @property
    def sigma(self):
        return self.log_sigma.exp()

    def forward(self, queries, keys, values, leave_one_out=False):
        if leave_one_out:
            queries = keys
        weights = torch.softmax(-0.5 * ((queries.unsqueeze(-2) - keys.unsqueeze(-3)) / self.sigma).pow(2).sum(-1), dim=-1)
        if leave_one_out:
            weights = weights * (1 - torch.eye(keys.shape[-2], dtype=weights.dtype, device=weights.device))
            weights = weights / weights.sum(-1, keepdim=True)  # 0/0 when the point itself had all the weight
        return attention_pooling(weights, values), weights
'''}),
    dict(name="layer_uses_the_course_softmax", kind="reference", loses="diagonal_gaussian_pooling",
         message="reference implementation", answers={"diagonal_gaussian_pooling": '''
from solutions.attention import masked_softmax as course_softmax


class DiagonalGaussianPooling(nn.Module):
    def __init__(self, dim, sigma=1.0):
        super().__init__()
        self.log_sigma = nn.Parameter(torch.full((dim,), math.log(sigma)))

    @property
    def sigma(self):
        return self.log_sigma.exp()

    def forward(self, queries, keys, values, leave_one_out=False):
        if leave_one_out:
            queries = keys
        exponent = -0.5 * ((queries.unsqueeze(-2) - keys.unsqueeze(-3)) / self.sigma).pow(2).sum(-1)
        mask = ~torch.eye(keys.shape[-2], dtype=torch.bool, device=keys.device) if leave_one_out else None
        weights = course_softmax(exponent, mask)
        return attention_pooling(weights, values), weights
'''}),
    # ------------------------------------------------------------------ exercise 5: the loss after the update
    dict(name="train_loss_after_the_step", kind="wrong", loses="train_bandwidth", message="before its epoch's update",
         answers={"train_bandwidth": '''
def train_bandwidth(layer, x, y, epochs=50, lr=0.5):
    optimizer = torch.optim.SGD(layer.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        optimizer.zero_grad()
        pred, _ = layer(x, x, y, leave_one_out=True)
        ((pred - y) ** 2).mean().backward()
        optimizer.step()
        with torch.no_grad():
            pred, _ = layer(x, x, y, leave_one_out=True)
            losses.append(((pred - y) ** 2).mean().item())  # measured after the update
    return losses
'''}),
    # ------------------------------------------------------------------ right, written differently
    dict(name="einsum_and_stable_exp", kind="right", answers={
        "kernel_attention_weights": '''
def kernel_attention_weights(queries, keys, sigma, kernel="gaussian"):
    u = (queries[..., :, None] - keys[..., None, :]) / sigma
    if kernel == "gaussian":
        logits = -0.5 * u**2
        e = torch.exp(logits - logits.amax(-1, keepdim=True))
    elif kernel == "boxcar":
        e = torch.where(u.abs() <= 1, torch.ones_like(u), torch.zeros_like(u))
    elif kernel == "epanechnikov":
        e = torch.relu(1 - u * u)
    else:
        raise ValueError(f"no kernel called {kernel}")
    z = e.sum(-1, keepdim=True)
    return torch.where(z > 0, e / z.clamp_min(torch.finfo(e.dtype).tiny), torch.zeros_like(e))
''',
        "attention_pooling": '''
def attention_pooling(weights, values):
    if weights.size(-1) != values.size(-1):
        raise ValueError(f"{weights.size(-1)} != {values.size(-1)}")
    return torch.einsum("...qk,...k->...q", weights, values)
''',
        "leave_one_out_weights": '''
def leave_one_out_weights(x, sigma):
    logits = -((x[:, None] - x[None, :]) ** 2) / (2 * sigma**2)
    logits = torch.where(torch.eye(x.numel(), dtype=torch.bool, device=x.device), -math.inf, logits)
    e = torch.exp(logits - logits.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)
''',
        "diagonal_gaussian_pooling": '''
class DiagonalGaussianPooling(nn.Module):
    def __init__(self, dim, sigma=1.0):
        super().__init__()
        self.log_sigma = nn.Parameter(math.log(sigma) * torch.ones(dim))

    @property
    def sigma(self):
        return torch.exp(self.log_sigma)

    def forward(self, queries, keys, values, leave_one_out=False):
        q = keys if leave_one_out else queries
        diff = q[..., :, None, :] - keys[..., None, :, :]  # (..., Tq, Tk, D)
        logits = -0.5 * torch.einsum("...d,...d,d->...", diff, diff, torch.exp(-2 * self.log_sigma))
        if leave_one_out:
            n = keys.shape[-2]
            logits = torch.where(torch.eye(n, dtype=torch.bool, device=keys.device), -math.inf, logits)
        e = torch.exp(logits - logits.amax(-1, keepdim=True))
        weights = e / e.sum(-1, keepdim=True)
        return torch.einsum("...qk,...k->...q", weights, values), weights
''',
        "train_bandwidth": '''
def train_bandwidth(layer, x, y, epochs=50, lr=0.5):
    opt = torch.optim.SGD([layer.log_sigma], lr=lr)
    history = []
    for epoch in range(epochs):
        predictions = layer(x, x, y, leave_one_out=True)[0]
        loss = torch.nn.functional.mse_loss(predictions, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history.append(float(loss))
    return history
'''}),
    dict(name="float64_inside", kind="right", answers={
        "kernel_attention_weights": '''
KERNELS = {"gaussian": None, "boxcar": lambda u: (u.abs() <= 1).double(), "epanechnikov": lambda u: (1 - u * u).clamp(min=0)}


def kernel_attention_weights(queries, keys, sigma, kernel="gaussian"):
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {sorted(KERNELS)}, got {kernel!r}")
    sigma = torch.as_tensor(sigma, dtype=torch.float64, device=queries.device)
    d = queries.double().unsqueeze(-1) - keys.double().unsqueeze(-2)
    if kernel == "gaussian":
        return torch.softmax(-d * d / (2 * sigma * sigma), dim=-1).to(queries.dtype)
    k = KERNELS[kernel](d / sigma)
    return torch.nan_to_num(k / k.sum(-1, keepdim=True)).to(queries.dtype)
''',
        "attention_pooling": '''
def attention_pooling(weights, values):
    if weights.shape[-1] != values.shape[-1]:
        raise ValueError(f"weights over {weights.shape[-1]} keys, values over {values.shape[-1]}")
    return (weights * values.unsqueeze(-2)).sum(-1)
''',
        "leave_one_out_weights": '''
def leave_one_out_weights(x, sigma):
    n = x.shape[0]
    d = x.double()[:, None] - x.double()[None, :]
    s = -d**2 / (2 * torch.as_tensor(sigma, dtype=torch.float64, device=x.device) ** 2)
    s = s - torch.diag(torch.full((n,), math.inf, dtype=torch.float64, device=x.device))
    return torch.softmax(s, dim=1).to(x.dtype)
''',
        "diagonal_gaussian_pooling": '''
class DiagonalGaussianPooling(nn.Module):
    def __init__(self, dim, sigma=1.0):
        super().__init__()
        self.register_parameter("log_sigma", nn.Parameter(torch.log(torch.full((dim,), float(sigma)))))

    @property
    def sigma(self):
        return torch.exp(self.log_sigma)

    def forward(self, queries, keys, values, leave_one_out=False):
        x = keys.double()
        q = x if leave_one_out else queries.double()
        inv = torch.exp(-2 * self.log_sigma.double())  # 1 / sigma^2
        sq = (q * q * inv).sum(-1)[..., :, None] + (x * x * inv).sum(-1)[..., None, :] - 2 * (q * inv) @ x.transpose(-2, -1)
        logits = -0.5 * sq.clamp_min(0)
        if leave_one_out:
            logits = logits - torch.diag(torch.full((x.shape[-2],), math.inf, dtype=torch.float64, device=x.device))
        weights = torch.softmax(logits, dim=-1).to(keys.dtype)
        return attention_pooling(weights, values), weights
'''}),
]
