"""The fairness set of chapter 7's assignment (BERT), graded by tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids in the instructor notebook: ``wrong``
answers have one bug each and must lose points in the exercise ``loses`` only; ``reference`` answers run the
course's reference or a function the task forbids and must lose that exercise's points with the message
``message``; ``right`` answers are correct but written differently and get full marks. ``message`` is a part
of the message that the failing test shows the learner.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1
    # the chapter's procedure: each token selected with probability 0.15, no budget
    dict(name="mask_independent_draws", kind="wrong", loses="mask_tokens", message="a budget of 0",
         answers={"mask_tokens": '''
def mask_tokens(input_ids, num_to_predict, vocab_size, generator, mask_id=MASK_ID, num_special=NUM_SPECIAL,
                mask_prob=0.8, random_prob=0.1):
    u = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
    v = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
    r = torch.randint(num_special, vocab_size, input_ids.shape, generator=generator).to(input_ids.device)
    chosen = (input_ids >= num_special) & (u < 0.15)
    out = torch.where(chosen & (v < mask_prob), torch.full_like(input_ids, mask_id), input_ids)
    out = torch.where(chosen & (v >= mask_prob) & (v < mask_prob + random_prob), r, out)
    return out, torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
'''}),
    # the budget taken from every position, specials and padding included
    dict(name="mask_ranks_every_position", kind="wrong", loses="mask_tokens", message="min(k, n)",
         answers={"mask_tokens": '''
def mask_tokens(input_ids, num_to_predict, vocab_size, generator, mask_id=MASK_ID, num_special=NUM_SPECIAL,
                mask_prob=0.8, random_prob=0.1):
    u = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
    v = torch.rand(input_ids.shape, generator=generator).to(input_ids.device)
    r = torch.randint(num_special, vocab_size, input_ids.shape, generator=generator).to(input_ids.device)
    rank = u.argsort(-1).argsort(-1)  # specials take part in the ranking
    chosen = (input_ids >= num_special) & (rank < num_to_predict.to(input_ids.device)[:, None])
    out = torch.where(chosen & (v < mask_prob), torch.full_like(input_ids, mask_id), input_ids)
    out = torch.where(chosen & (v >= mask_prob) & (v < mask_prob + random_prob), r, out)
    return out, torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
'''}),
    dict(name="mask_labels_after_replacement", kind="wrong", loses="mask_tokens", message="ORIGINAL id",
         answers={"mask_tokens": '''
def mask_tokens(input_ids, num_to_predict, vocab_size, generator, mask_id=MASK_ID, num_special=NUM_SPECIAL,
                mask_prob=0.8, random_prob=0.1):
    here = input_ids.device
    u = torch.rand(input_ids.shape, generator=generator).to(here)
    v = torch.rand(input_ids.shape, generator=generator).to(here)
    r = torch.randint(num_special, vocab_size, input_ids.shape, generator=generator).to(here)
    ordinary = input_ids >= num_special
    rank = torch.where(ordinary, u, 2.0).argsort(-1).argsort(-1)
    chosen = ordinary & (rank < num_to_predict.to(here)[:, None])
    out = torch.where(chosen & (v < mask_prob), torch.full_like(input_ids, mask_id), input_ids)
    out = torch.where(chosen & (v >= mask_prob) & (v < mask_prob + random_prob), r, out)
    return out, torch.where(chosen, out, torch.full_like(input_ids, IGNORE_INDEX))  # the masked id, not the original
'''}),
    # ------------------------------------------------------------------ exercise 2
    dict(name="embed_unbiased_variance", kind="wrong", loses="embed", message="biased",
         answers={"embed": '''
def embed(input_ids, token_type_ids, token_table, segment_table, position_table, gamma, beta, eps=1e-12):
    z = token_table[input_ids] + segment_table[token_type_ids] + position_table[:input_ids.shape[-1]]
    return gamma * (z - z.mean(-1, keepdim=True)) / torch.sqrt(z.var(-1, keepdim=True) + eps) + beta  # unbiased var
'''}),
    dict(name="embed_positions_from_one", kind="wrong", loses="embed", message="positions count from 0",
         answers={"embed": '''
def embed(input_ids, token_type_ids, token_table, segment_table, position_table, gamma, beta, eps=1e-12):
    T = input_ids.shape[-1]
    z = token_table[input_ids] + segment_table[token_type_ids] + position_table[1:T + 1]  # positions 1..T
    mu = z.mean(-1, keepdim=True)
    return gamma * (z - mu) / torch.sqrt(((z - mu) ** 2).mean(-1, keepdim=True) + eps) + beta
'''}),
    dict(name="embed_with_layer_norm", kind="reference", loses="embed", message="LayerNorm",
         answers={"embed": '''
def embed(input_ids, token_type_ids, token_table, segment_table, position_table, gamma, beta, eps=1e-12):
    z = token_table[input_ids] + segment_table[token_type_ids] + position_table[:input_ids.shape[-1]]
    return F.layer_norm(z, z.shape[-1:], gamma, beta, eps)  # the task says: no F.layer_norm
'''}),
    # ------------------------------------------------------------------ exercise 3
    dict(name="loss_smoothing_over_other_words", kind="wrong", loses="masked_lm_loss", message="smoothing 0.2",
         answers={"masked_lm_loss": '''
def masked_lm_loss(logits, labels, smoothing=0.0):
    keep = labels != IGNORE_INDEX
    if not keep.any():
        return logits.sum() * 0.0
    x = logits[keep]
    log_p = x - torch.logsumexp(x, -1, keepdim=True)
    V = x.shape[-1]
    target = torch.full_like(log_p, smoothing / (V - 1)).scatter(-1, labels[keep][:, None], 1 - smoothing)  # eps / (V - 1)
    return -(target * log_p).sum(-1).mean()
'''}),
    dict(name="loss_log_of_exp", kind="wrong", loses="masked_lm_loss", message="log-sum-exp",
         answers={"masked_lm_loss": '''
def masked_lm_loss(logits, labels, smoothing=0.0):
    keep = labels != IGNORE_INDEX
    if not keep.any():
        return logits.sum() * 0.0
    e = torch.exp(logits[keep])
    log_p = torch.log(e / e.sum(-1, keepdim=True))  # overflows for large logits
    nll = -log_p.gather(-1, labels[keep][:, None])[:, 0]
    return ((1 - smoothing) * nll - smoothing * log_p.mean(-1)).mean()
'''}),
    dict(name="loss_mean_over_every_position", kind="wrong", loses="masked_lm_loss", message="p(label) = 3/6",
         answers={"masked_lm_loss": '''
def masked_lm_loss(logits, labels, smoothing=0.0):
    keep = labels != IGNORE_INDEX
    if not keep.any():
        return logits.sum() * 0.0
    log_p = logits - torch.logsumexp(logits, -1, keepdim=True)
    nll = -log_p.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
    per_position = ((1 - smoothing) * nll - smoothing * log_p.mean(-1)) * keep
    return per_position.mean()  # divided by B * T instead of the number of selected positions
'''}),
    dict(name="loss_with_cross_entropy", kind="reference", loses="masked_lm_loss", message="does not allow",
         answers={"masked_lm_loss": '''
def masked_lm_loss(logits, labels, smoothing=0.0):
    keep = labels != IGNORE_INDEX
    if not keep.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[keep], labels[keep], label_smoothing=smoothing)
'''}),
    # ------------------------------------------------------------------ exercise 4
    dict(name="mean_pooling_includes_padding", kind="wrong", loses="pooled_logits", message="padding excluded",
         answers={"pooled_logits": '''
def pooled_logits(hidden, attention_mask, W_p, b_p, W_o, b_o, pooling="cls"):
    r = hidden[:, 0] if pooling == "cls" else hidden.mean(1)  # padding included
    return torch.tanh(r @ W_p.T + b_p) @ W_o.T + b_o
'''}),
    dict(name="pooler_without_tanh", kind="wrong", loses="pooled_logits", message="tanh",
         answers={"pooled_logits": '''
def pooled_logits(hidden, attention_mask, W_p, b_p, W_o, b_o, pooling="cls"):
    m = attention_mask.to(hidden.dtype)[..., None]
    r = hidden[:, 0] if pooling == "cls" else (hidden * m).sum(1) / m.sum(1)
    return (r @ W_p.T + b_p) @ W_o.T + b_o  # no tanh
'''}),
    dict(name="pooled_calls_the_reference", kind="reference", loses="pooled_logits", message="reference implementation",
         answers={"pooled_logits": '''
import solutions.history.bert as bert


def pooled_logits(hidden, attention_mask, W_p, b_p, W_o, b_o, pooling="cls"):
    pooler = bert.BertPooler(bert.BertConfig.tiny(hidden_size=hidden.shape[-1], num_heads=1))
    pooler = pooler.to(device=hidden.device, dtype=hidden.dtype)
    with torch.no_grad():
        pooler.dense.weight.copy_(W_p)
        pooler.dense.bias.copy_(b_p)
    if pooling == "mean":
        m = attention_mask.to(hidden.dtype)[..., None]
        hidden = ((hidden * m).sum(1) / m.sum(1))[:, None]
    return pooler(hidden) @ W_o.T + b_o
'''}),
    # ------------------------------------------------------------------ right, written differently
    dict(name="loops_and_float64", kind="right", answers={
        "mask_tokens": '''
def mask_tokens(input_ids, num_to_predict, vocab_size, generator, mask_id=MASK_ID, num_special=NUM_SPECIAL,
                mask_prob=0.8, random_prob=0.1):
    u = torch.rand(input_ids.shape, generator=generator)
    v = torch.rand(input_ids.shape, generator=generator)
    r = torch.randint(num_special, vocab_size, input_ids.shape, generator=generator)
    ids = input_ids.cpu()
    masked, labels = ids.clone(), torch.full_like(ids, IGNORE_INDEX)
    for b in range(ids.shape[0]):  # one sequence at a time
        positions = [t for t in range(ids.shape[1]) if ids[b, t] >= num_special]
        positions.sort(key=lambda t: float(u[b, t]))
        for t in positions[:int(num_to_predict[b])]:
            labels[b, t] = ids[b, t]
            if v[b, t] < mask_prob:
                masked[b, t] = mask_id
            elif v[b, t] < mask_prob + random_prob:
                masked[b, t] = r[b, t]
    return masked.to(input_ids.device), labels.to(input_ids.device)
''',
        "embed": '''
def embed(input_ids, token_type_ids, token_table, segment_table, position_table, gamma, beta, eps=1e-12):
    T = input_ids.shape[1]
    z = (token_table.index_select(0, input_ids.reshape(-1)).view(*input_ids.shape, -1)
         + segment_table[token_type_ids] + position_table[torch.arange(T, device=input_ids.device)]).double()
    centred = z - z.mean(dim=-1, keepdim=True)
    normed = centred * torch.rsqrt(centred.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (normed * gamma.double() + beta.double()).to(token_table.dtype)
''',
        "masked_lm_loss": '''
def masked_lm_loss(logits, labels, smoothing=0.0):
    flat, targets = logits.reshape(-1, logits.shape[-1]), labels.reshape(-1)
    rows = (targets != IGNORE_INDEX).nonzero().squeeze(-1)
    if rows.numel() == 0:
        return (logits * 0).sum()
    x = flat[rows]
    top = x.max(-1, keepdim=True).values
    log_p = x - top - torch.log(torch.exp(x - top).sum(-1, keepdim=True))
    V = x.shape[-1]
    weights = torch.nn.functional.one_hot(targets[rows], V).to(x.dtype) * (1 - smoothing) + smoothing / V
    return -(weights * log_p).sum() / rows.numel()
''',
        "pooled_logits": '''
def pooled_logits(hidden, attention_mask, W_p, b_p, W_o, b_o, pooling="cls"):
    if pooling == "mean":
        m = attention_mask.unsqueeze(-1)
        r = torch.where(m, hidden, torch.zeros_like(hidden)).sum(1) / m.sum(1).to(hidden.dtype)
    else:
        r = hidden.select(1, 0)
    c = torch.tanh(torch.einsum("ed,bd->be", W_p, r) + b_p)
    return torch.einsum("ce,be->bc", W_o, c) + b_o
'''}),
    dict(name="topk_and_nn_functional", kind="right", answers={
        "mask_tokens": '''
def mask_tokens(input_ids, num_to_predict, vocab_size, generator, mask_id=MASK_ID, num_special=NUM_SPECIAL,
                mask_prob=0.8, random_prob=0.1):
    dev = input_ids.device
    u, v = torch.rand(input_ids.shape, generator=generator).to(dev), torch.rand(input_ids.shape, generator=generator).to(dev)
    r = torch.randint(num_special, vocab_size, input_ids.shape, generator=generator).to(dev)
    ordinary = input_ids >= num_special
    k = torch.minimum(num_to_predict.to(dev), ordinary.sum(-1))
    # the k-th smallest u among the ordinary tokens is the threshold
    sorted_u = torch.where(ordinary, u, torch.ones_like(u) * 9).sort(-1).values
    threshold = torch.where(k > 0, sorted_u.gather(-1, (k - 1).clamp(min=0)[:, None])[:, 0], torch.full_like(k, -1, dtype=u.dtype))
    selected = ordinary & (u <= threshold[:, None])
    kind = torch.bucketize(v, torch.tensor([mask_prob, mask_prob + random_prob], device=dev), right=True)
    masked = input_ids.clone()
    masked[selected & (kind == 0)] = mask_id
    masked[selected & (kind == 1)] = r[selected & (kind == 1)]
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    labels[selected] = input_ids[selected]
    return masked, labels
''',
        "masked_lm_loss": '''
def masked_lm_loss(logits, labels, smoothing=0.0):
    keep = labels != IGNORE_INDEX
    if keep.sum() == 0:
        return logits.sum() * 0.0
    log_p = logits - logits.logsumexp(-1, keepdim=True)
    nll = -log_p.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    smooth = -log_p.mean(-1)
    per_position = (1 - smoothing) * nll + smoothing * smooth
    return torch.where(keep, per_position, torch.zeros_like(per_position)).sum() / keep.sum()
'''}),
]
