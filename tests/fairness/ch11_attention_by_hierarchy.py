"""The fairness set of the assignment on attention by hierarchy, graded by tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids in the instructor notebook: ``wrong``
answers have one bug each and must lose points in the exercise ``loses`` only (exercise 3's tests use the
reference ``attention_pool`` and ``masked_mean``, so a bug there costs nothing in exercise 3); ``reference``
answers run the course's reference and must lose that exercise's points with the message ``message``;
``right`` answers are correct but written differently and get full marks. ``message`` is a part of the
message that the failing test shows the learner.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1: attention_pool
    dict(name="pool_softmax_over_features", kind="wrong", loses="attention_pool", message="sum to 1",
         answers={"attention_pool": '''
def attention_pool(h, context, W, b, mask=None):
    u = torch.tanh(h @ W + b)
    scores = u @ context
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=0)  # over the first dimension, not the positions
    if mask is not None:
        weights = weights * mask
    return (weights.unsqueeze(-1) * h).sum(dim=-2), weights
'''}),
    dict(name="pool_without_tanh", kind="wrong", loses="attention_pool", message="tanh(1)",
         answers={"attention_pool": '''
def attention_pool(h, context, W, b, mask=None):
    scores = (h @ W + b) @ context  # u_t = h_t W + b: the tanh is missing
    if mask is not None:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights * mask
    return (weights.unsqueeze(-1) * h).sum(dim=-2), weights
'''}),
    dict(name="pool_empty_sequence_nan", kind="wrong", loses="attention_pool", message="weight exactly 0",
         answers={"attention_pool": '''
def attention_pool(h, context, W, b, mask=None):
    scores = torch.tanh(h @ W + b) @ context
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # a row of -inf gives NaN
    weights = torch.softmax(scores, dim=-1)
    return (weights.unsqueeze(-1) * h).sum(dim=-2), weights
'''}),
    dict(name="pool_calls_the_reference", kind="reference", loses="attention_pool", message="reference implementation",
         answers={"attention_pool": '''
from solutions.attention import attention as course_attention


def attention_pool(h, context, W, b, mask=None):
    query = context.expand(*h.shape[:-2], 1, context.shape[-1])
    pooled, weights = course_attention(query, torch.tanh(h @ W + b), h, "dot",
                                       None if mask is None else mask.unsqueeze(-2))
    return pooled.squeeze(-2), weights.squeeze(-2)
'''}),
    # ------------------------------------------------------------------ exercise 2: masked_mean
    dict(name="mean_over_padding_too", kind="wrong", loses="masked_mean", message="1/2 each",
         answers={"masked_mean": '''
def masked_mean(h, mask):
    weights = torch.ones(mask.shape, dtype=h.dtype, device=h.device) / mask.shape[-1]  # counts the padding
    weights = weights * mask
    return (weights.unsqueeze(-1) * h).sum(dim=-2), weights
'''}),
    # ------------------------------------------------------------------ exercise 3: document_vector
    dict(name="document_keeps_padding_sentences", kind="wrong", loses="document_vector",
         message="padding sentence", answers={"document_vector": '''
def document_vector(h, sentence_lengths, word_params, sentence_params, average=False):
    word_mask = torch.arange(h.shape[2], device=h.device) < sentence_lengths.unsqueeze(-1)
    pool = (lambda x, *params, mask: masked_mean(x, mask)) if average else attention_pool
    sentences, word_weights = pool(h, *word_params, mask=word_mask)
    everything = torch.ones(sentence_lengths.shape, dtype=torch.bool, device=h.device)  # padding sentences count
    v, sentence_weights = pool(sentences, *sentence_params, mask=everything)
    return v, word_weights, sentence_weights
'''}),
    dict(name="document_swaps_the_parameters", kind="wrong", loses="document_vector",
         message="word parameters", answers={"document_vector": '''
def document_vector(h, sentence_lengths, word_params, sentence_params, average=False):
    word_mask = torch.arange(h.shape[2], device=h.device) < sentence_lengths.unsqueeze(-1)
    if average:
        sentences, word_weights = masked_mean(h, word_mask)
        v, sentence_weights = masked_mean(sentences, sentence_lengths > 0)
    else:  # the sentence parameters at the word level and the other way round
        sentences, word_weights = attention_pool(h, *sentence_params, mask=word_mask)
        v, sentence_weights = attention_pool(sentences, *word_params, mask=sentence_lengths > 0)
    return v, word_weights, sentence_weights
'''}),
    # ------------------------------------------------------------------ exercise 4: previous_token_score
    dict(name="previous_where_shifted_by_one", kind="wrong", loses="previous_token_score",
         message="position 0 never does", answers={"previous_token_score": '''
def previous_token_score(weights, where=None):
    previous = torch.diagonal(weights, offset=-1, dim1=-2, dim2=-1)  # (B, H, T-1)
    if where is None:
        return previous.mean(dim=(0, 2))
    kept = where[:, :-1].unsqueeze(1).to(previous.dtype)  # shifted: where[t-1] decides for t
    return (previous * kept).sum(dim=(0, 2)) / kept.sum()
'''}),
    # ------------------------------------------------------------------ exercise 5: induction_score
    dict(name="induction_off_by_one", kind="wrong", loses="induction_score", message="perfect induction head",
         answers={"induction_score": '''
def induction_score(weights, segment):
    B, H, T, _ = weights.shape
    t = torch.arange(T, device=weights.device)
    n = segment.unsqueeze(1)
    scored = (t >= n) & (t <= 2 * n - 2)
    target = (t - n).clamp(0, T - 1)  # the earlier occurrence itself, not the token after it
    picked = torch.gather(weights, 3, target[:, None, :, None].expand(B, H, T, 1)).squeeze(-1)
    kept = scored.unsqueeze(1).to(weights.dtype)
    return (picked * kept).sum(dim=(0, 2)) / kept.sum()
'''}),
    dict(name="induction_mean_of_sequence_means", kind="wrong", loses="induction_score", message="counts once",
         answers={"induction_score": '''
def induction_score(weights, segment):
    B, H, T, _ = weights.shape
    t = torch.arange(T, device=weights.device)
    n = segment.unsqueeze(1)
    scored = ((t >= n) & (t <= 2 * n - 2)).unsqueeze(1).to(weights.dtype)  # (B, 1, T)
    picked = torch.gather(weights, 3, (t - n + 1).clamp(0, T - 1)[:, None, :, None].expand(B, H, T, 1)).squeeze(-1)
    per_sequence = (picked * scored).sum(-1) / scored.sum(-1)  # every sequence weighs the same
    return per_sequence.mean(0)
'''}),
    # ------------------------------------------------------------------ right, written differently
    dict(name="einsum_and_float64", kind="right", answers={
        "attention_pool": '''
def attention_pool(h, context, W, b, mask=None):
    dtype = h.dtype
    x = h.double()
    scores = torch.einsum("...ta,a->...t", torch.tanh(torch.einsum("...td,da->...ta", x, W.double()) + b.double()),
                          context.double())
    if mask is None:
        mask = torch.ones(scores.shape, dtype=torch.bool, device=h.device)
    scores = scores.masked_fill(~mask, -math.inf)
    top = scores.amax(-1, keepdim=True)
    e = torch.exp(scores - torch.where(torch.isinf(top), torch.zeros_like(top), top))
    total = e.sum(-1, keepdim=True)
    weights = e / torch.where(total > 0, total, torch.ones_like(total))
    return torch.einsum("...t,...td->...d", weights, x).to(dtype), weights.to(dtype)
''',
        "masked_mean": '''
def masked_mean(h, mask):
    weights = torch.where(mask, 1.0, 0.0).to(h.dtype)
    weights = weights / weights.sum(-1, keepdim=True).clamp(min=1)
    return torch.einsum("...t,...td->...d", weights, h), weights
''',
        "previous_token_score": '''
def previous_token_score(weights, where=None):
    B, H, T, _ = weights.shape
    t = torch.arange(1, T, device=weights.device)
    previous = weights[:, :, t, t - 1]  # (B, H, T-1), advanced indexing
    keep = torch.ones(B, T - 1, dtype=weights.dtype, device=weights.device) if where is None \\
        else where[:, 1:].to(weights.dtype)
    return torch.einsum("bht,bt->h", previous, keep) / keep.sum()
'''}),
    dict(name="loops_over_sequences_and_reshapes", kind="right", answers={
        "document_vector": '''
def document_vector(h, sentence_lengths, word_params, sentence_params, average=False):
    B, S, W, D = h.shape
    flat = h.reshape(B * S, W, D)  # every sentence of every document in one batch
    word_mask = (torch.arange(W, device=h.device)[None, :] < sentence_lengths.reshape(B * S, 1))
    if average:
        sentences, word_weights = masked_mean(flat, word_mask)
        v, sentence_weights = masked_mean(sentences.reshape(B, S, D), sentence_lengths != 0)
    else:
        sentences, word_weights = attention_pool(flat, word_params[0], word_params[1], word_params[2], word_mask)
        v, sentence_weights = attention_pool(sentences.reshape(B, S, D), *sentence_params, mask=sentence_lengths != 0)
    return v, word_weights.reshape(B, S, W), sentence_weights
''',
        "induction_score": '''
def induction_score(weights, segment):
    total = torch.zeros(weights.shape[1], dtype=weights.dtype, device=weights.device)
    count = 0
    for b, n in enumerate(segment.tolist()):  # a loop over sequences and positions, written plainly
        for t in range(n, 2 * n - 1):
            total = total + weights[b, :, t, t - n + 1]
            count += 1
    return total / count
'''}),
]
