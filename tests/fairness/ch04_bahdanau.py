"""The fairness set of chapter 4's assignment (Bahdanau attention), graded by tests/test_fairness.py.

Each variant replaces the answer cells named by their grade ids in the instructor notebook: ``wrong``
answers have one bug each and must lose points in the exercise ``loses`` only; ``reference`` answers run the
course's reference and must lose that exercise's points with the message ``message``; ``right`` answers are
correct but written differently and get full marks. ``message`` is a part of the message that the failing
test shows the learner.
"""

VARIANTS = [
    # ------------------------------------------------------------------ exercise 1
    # softmax over every position, then the mask, then renormalise: right for small energies, 0/0 for large
    dict(name="weights_renormalised_after_softmax", kind="wrong", loses="alignment_weights", message="huge energy",
         answers={"alignment_weights": '''
def alignment_weights(states, projected, W_a, v_a, mask):
    energies = torch.tanh((states @ W_a.T)[:, :, None, :] + projected[:, None]) @ v_a  # (B, T, S)
    weights = torch.softmax(energies, dim=-1) * mask[:, None, :]
    return weights / weights.sum(-1, keepdim=True)
'''}),
    dict(name="weights_loop_over_states", kind="wrong", loses="alignment_weights", message="without a Python loop",
         answers={"alignment_weights": '''
def alignment_weights(states, projected, W_a, v_a, mask):
    rows = []
    for t in range(states.shape[1]):  # one decoder state at a time
        energies = torch.tanh((states[:, t] @ W_a.T)[:, None, :] + projected) @ v_a  # (B, S)
        rows.append(energies.masked_fill(~mask, float("-inf")).softmax(-1))
    return torch.stack(rows, dim=1)
'''}),
    dict(name="weights_ignore_the_mask", kind="wrong", loses="alignment_weights", message="exactly 0",
         answers={"alignment_weights": '''
def alignment_weights(states, projected, W_a, v_a, mask):
    energies = torch.tanh((states @ W_a.T)[:, :, None, :] + projected[:, None]) @ v_a
    return energies.softmax(-1)  # padded positions take part in the softmax
'''}),
    # ------------------------------------------------------------------ exercise 2
    dict(name="forward_state_at_the_padded_end", kind="wrong", loses="initial_state", message="not at the last padded position",
         answers={"initial_state": '''
def initial_state(annotations, src_lens, W_s, b_s, direction="backward"):
    n = annotations.shape[-1] // 2
    r = annotations[:, 0, n:] if direction == "backward" else annotations[:, -1, :n]  # the padded end
    return torch.tanh(r @ W_s.T + b_s)
'''}),
    dict(name="initial_state_halves_swapped", kind="wrong", loses="initial_state", message="last n features",
         answers={"initial_state": '''
def initial_state(annotations, src_lens, W_s, b_s, direction="backward"):
    n = annotations.shape[-1] // 2
    rows = torch.arange(annotations.shape[0])
    if direction == "backward":
        r = annotations[:, 0, :n]  # the forward half
    else:
        r = annotations[rows, src_lens - 1, n:]
    return torch.tanh(r @ W_s.T + b_s)
'''}),
    dict(name="initial_state_calls_the_reference", kind="reference", loses="initial_state", message="reference implementation",
         answers={"initial_state": '''
from solutions.history import bahdanau as course


def initial_state(annotations, src_lens, W_s, b_s, direction="backward"):
    n = annotations.shape[-1] // 2
    layer = nn.Linear(n, n).to(device=annotations.device, dtype=annotations.dtype)
    with torch.no_grad():
        layer.weight.copy_(W_s)
        layer.bias.copy_(b_s)
    if direction == "backward":
        return course.initial_state(annotations, layer)
    rows = torch.arange(annotations.shape[0], device=annotations.device)
    return torch.tanh(layer(annotations[rows, src_lens.to(annotations.device) - 1, :n]))
'''}),
    # ------------------------------------------------------------------ exercise 3
    dict(name="step_context_before_embedding", kind="wrong", loses="decoder_step", message="embedding first",
         answers={"decoder_step": '''
def decoder_step(prev_tokens, state, annotations, projected, mask, embedding, W_a, v_a, cell):
    weights = alignment_weights(state[:, None, :], projected, W_a, v_a, mask)[:, 0]
    context = torch.einsum("bs,bsd->bd", weights, annotations)
    return cell(torch.cat((context, embedding(prev_tokens)), dim=1), state), context, weights  # wrong order
'''}),
    dict(name="step_ignores_the_mask", kind="wrong", loses="decoder_step", message="real positions",
         answers={"decoder_step": '''
def decoder_step(prev_tokens, state, annotations, projected, mask, embedding, W_a, v_a, cell):
    weights = alignment_weights(state[:, None, :], projected, W_a, v_a, torch.ones_like(mask))[:, 0]
    context = torch.einsum("bs,bsd->bd", weights, annotations)
    return cell(torch.cat((embedding(prev_tokens), context), dim=1), state), context, weights
'''}),
    # a cascade: a wrong exercise 1 that exercise 3 uses; only exercise 1 loses
    dict(name="cascade_from_unnormalised_weights", kind="wrong", loses="alignment_weights", answers={
        "alignment_weights": '''
def alignment_weights(states, projected, W_a, v_a, mask):
    energies = torch.tanh((states @ W_a.T)[:, :, None, :] + projected[:, None]) @ v_a
    return torch.exp(energies) * mask[:, None, :]  # forgot to normalise
''',
        "decoder_step": '''
def decoder_step(prev_tokens, state, annotations, projected, mask, embedding, W_a, v_a, cell):
    weights = alignment_weights(state.unsqueeze(1), projected, W_a, v_a, mask).squeeze(1)
    context = (weights.unsqueeze(-1) * annotations).sum(1)
    return cell(torch.cat((embedding(prev_tokens), context), dim=1), state), context, weights
'''}),
    # ------------------------------------------------------------------ exercise 4
    dict(name="greedy_with_gradients", kind="wrong", loses="greedy_translate", message="no_grad",
         answers={"greedy_translate": '''
def greedy_translate(model, src, src_lens, max_len, bos_id=1, eos_id=2):
    state = model.encode(src, src_lens)  # no torch.no_grad()
    prev = torch.full((src.shape[0],), bos_id, dtype=torch.long, device=src.device)
    out, done = [[] for _ in range(src.shape[0])], [False] * src.shape[0]
    for _ in range(max_len):
        logits, _, state = model.step(prev, state)
        prev = logits.argmax(-1)
        for b, token in enumerate(prev.tolist()):
            if not done[b]:
                if token == eos_id:
                    done[b] = True
                else:
                    out[b].append(token)
        if all(done):
            break
    return out
'''}),
    dict(name="greedy_keeps_going_after_eos", kind="wrong", loses="greedy_translate", message="ignore what comes after",
         answers={"greedy_translate": '''
def greedy_translate(model, src, src_lens, max_len, bos_id=1, eos_id=2):
    with torch.no_grad():
        state = model.encode(src, src_lens)
        prev = torch.full((src.shape[0],), bos_id, dtype=torch.long, device=src.device)
        out, done = [[] for _ in range(src.shape[0])], [False] * src.shape[0]
        for _ in range(max_len):
            logits, _, state = model.step(prev, state)
            prev = logits.argmax(-1)
            for b, token in enumerate(prev.tolist()):
                if token == eos_id:
                    done[b] = True
                else:
                    out[b].append(token)  # also after this sentence's EOS
            if all(done):
                break
    return out
'''}),
    dict(name="greedy_calls_the_reference", kind="reference", loses="greedy_translate", message="reference implementation",
         answers={"greedy_translate": '''
from solutions.history.seq2seq import greedy_decode as decode


def greedy_translate(model, src, src_lens, max_len, bos_id=1, eos_id=2):
    return decode(model, src, src_lens, max_len, bos_id, eos_id).tokens
'''}),
    # ------------------------------------------------------------------ right, written differently
    dict(name="einsum_and_float64", kind="right", answers={
        "alignment_weights": '''
def alignment_weights(states, projected, W_a, v_a, mask):
    x = torch.tanh(torch.einsum("an,btn->bta", W_a.double(), states.double()).unsqueeze(2) + projected.double().unsqueeze(1))
    e = torch.einsum("btsa,a->bts", x, v_a.double())
    keep = mask.unsqueeze(1)
    e = torch.where(keep, e, torch.full_like(e, -math.inf))
    e = e - e.max(dim=-1, keepdim=True).values
    w = torch.where(keep, torch.exp(e), torch.zeros_like(e))
    return (w / w.sum(-1, keepdim=True)).to(states.dtype)
''',
        "initial_state": '''
def initial_state(annotations, src_lens, W_s, b_s, direction="backward"):
    B, S, two_n = annotations.shape
    forward, backward = annotations.split(two_n // 2, dim=-1)
    if direction == "backward":
        r = backward[:, 0]
    else:
        index = (src_lens.to(annotations.device).long() - 1).view(B, 1, 1).expand(B, 1, two_n // 2)
        r = forward.gather(1, index).squeeze(1)
    return torch.tanh(torch.einsum("mn,bn->bm", W_s, r) + b_s)
''',
        "decoder_step": '''
def decoder_step(prev_tokens, state, annotations, projected, mask, embedding, W_a, v_a, cell):
    weights = alignment_weights(state.unsqueeze(1), projected, W_a, v_a, mask).squeeze(1)
    context = torch.bmm(weights.unsqueeze(1), annotations).squeeze(1)
    x = torch.cat([embedding(prev_tokens), context], dim=-1)
    return cell(x, state), context, weights
''',
        "greedy_translate": '''
@torch.no_grad()
def greedy_translate(model, src, src_lens, max_len, bos_id=1, eos_id=2):
    state = model.encode(src, src_lens)
    B = src.shape[0]
    prev = torch.full((B,), bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    steps = []
    while len(steps) < max_len and not bool(done.all()):
        logits, _, state = model.step(prev, state)
        prev = logits.argmax(-1)
        steps.append(torch.where(done, torch.full_like(prev, eos_id), prev))
        done |= prev == eos_id
    out = []
    for row in (torch.stack(steps, 1).tolist() if steps else [[] for _ in range(B)]):
        out.append(row[:row.index(eos_id)] if eos_id in row else row)
    return out
'''}),
    dict(name="masked_fill_with_finite_low", kind="right", answers={
        "alignment_weights": '''
def alignment_weights(states, projected, W_a, v_a, mask):
    B, T, n = states.shape
    q = (states.reshape(B * T, n) @ W_a.T).reshape(B, T, 1, -1)
    e = (torch.tanh(q + projected[:, None]) * v_a).sum(-1)
    e = e.masked_fill(~mask[:, None, :], torch.finfo(e.dtype).min)
    w = torch.softmax(e, dim=-1)
    return w * mask[:, None, :]
''',
        "initial_state": '''
def initial_state(annotations, src_lens, W_s, b_s, direction="backward"):
    n = annotations.shape[-1] // 2
    if direction == "forward":
        last = torch.nn.functional.one_hot(src_lens.long() - 1, annotations.shape[1]).to(annotations)  # (B, S)
        r = torch.einsum("bs,bsn->bn", last.to(annotations.device), annotations[..., :n])
    else:
        r = annotations[:, 0, -n:]
    return torch.tanh(torch.nn.functional.linear(r, W_s, b_s))
'''}),
]
