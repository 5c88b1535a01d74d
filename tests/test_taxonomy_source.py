"""Attention by source: cross vs self-attention, heads concatenated or averaged, the lookup tasks.

Oracles: ``nn.MultiheadAttention`` with copied weights (self and cross, masks included) and the course's
core :func:`~solutions.attention.attention` run head by head (the averaged heads). Properties: permutation
equivariance of self-attention; cross-attention's output does not change when the context is permuted
and each query's output depends on that query only; padded positions change nothing. Gradients are checked
in float64. Every test runs on each available device.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import rand
from solutions.attention import MultiHeadAttention, attention, split_heads
from solutions.data.lookups import TokenTask, contains_task, recall_task, repeat_task
from solutions.taxonomy import AttentionClassifier, CrossAttention, LearnedQueries, SelfAttention, SourceConfig
from solutions.train import evaluating, fit
from test_attention_core import PACKAGE, _SoftmaxCallers


def copy_from_torch(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    with torch.no_grad():
        for proj, w, b in zip((ours.q_proj, ours.k_proj, ours.v_proj),
                              theirs.in_proj_weight.chunk(3), theirs.in_proj_bias.chunk(3)):
            proj.weight.copy_(w)
            proj.bias.copy_(b)
        ours.out_proj.load_state_dict(theirs.out_proj.state_dict())


# ------------------------------------------------------------------------------ against nn.MultiheadAttention
@pytest.mark.parametrize("heads", [1, 4])
def test_self_attention_equals_pytorch(device, heads):
    torch.manual_seed(0)
    ours = SelfAttention(16, heads).to(device).double()
    theirs = nn.MultiheadAttention(16, heads, batch_first=True).to(device).double()
    copy_from_torch(ours.attention, theirs)
    x = rand(3, 7, 16, device=device)
    keep = torch.arange(7, device=device) < torch.tensor([7, 5, 1], device=device)[:, None]  # (B, T)
    out, weights = ours(x, keep)
    ref, ref_weights = theirs(x, x, x, key_padding_mask=~keep, average_attn_weights=False)
    assert weights.shape == (3, heads, 7, 7)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(weights, ref_weights)


@pytest.mark.parametrize("heads", [1, 2])
def test_cross_attention_equals_pytorch(device, heads):
    torch.manual_seed(1)
    ours = CrossAttention(8, heads).to(device).double()
    theirs = nn.MultiheadAttention(8, heads, batch_first=True).to(device).double()
    copy_from_torch(ours.attention, theirs)
    query, context = rand(2, 3, 8, device=device), rand(2, 6, 8, device=device)  # Tq = 3 ≠ Tk = 6
    keep = torch.tensor([[True] * 6, [True] * 2 + [False] * 4], device=device)
    out, weights = ours(query, context, keep)
    ref, ref_weights = theirs(query, context, context, key_padding_mask=~keep, average_attn_weights=False)
    assert out.shape == (2, 3, 8) and weights.shape == (2, heads, 3, 6)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(weights, ref_weights)


# ------------------------------------------------------------------------------ heads concatenated or averaged
def test_averaged_heads_equal_the_core_head_by_head(device):
    torch.manual_seed(2)
    mha = MultiHeadAttention(12, 3, combine="mean").to(device).double()
    assert mha.out_proj.in_features == 4, "averaged heads live in D / H = 4 dimensions"
    q, kv = rand(2, 5, 12, device=device), rand(2, 7, 12, device=device)
    out, weights = mha(q, kv, kv, average_weights=False)
    heads = []
    for h in range(3):
        rows = slice(4 * h, 4 * h + 4)  # head h's rows of the stacked projections

        def project(proj, x):
            return x @ proj.weight[rows].T + proj.bias[rows]

        head, w = attention(project(mha.q_proj, q), project(mha.k_proj, kv), project(mha.v_proj, kv))
        torch.testing.assert_close(weights[:, h], w)
        heads.append(head)
    expected = mha.out_proj(torch.stack(heads).mean(0))  # (1/H Σ_h head_h) W^O
    torch.testing.assert_close(out, expected)


def test_concatenated_heads_are_the_default_and_averaging_changes_only_the_combination(device):
    torch.manual_seed(3)
    concat = MultiHeadAttention(8, 2).to(device).double()
    mean = MultiHeadAttention(8, 2, combine="mean").to(device).double()
    for name in ("q_proj", "k_proj", "v_proj"):
        getattr(mean, name).load_state_dict(getattr(concat, name).state_dict())
    with torch.no_grad():  # W^O of the mean = the concatenation's W^O with both heads' blocks equal, times H
        block = torch.randn(8, 4, dtype=torch.float64, device=device)
        concat.out_proj.weight.copy_(torch.cat([block, block], dim=1))
        mean.out_proj.weight.copy_(2 * block)
        mean.out_proj.bias.copy_(concat.out_proj.bias)
    x = rand(2, 5, 8, device=device)
    torch.testing.assert_close(mean(x, x, x)[0], concat(x, x, x)[0])
    torch.testing.assert_close(mean(x, x, x)[1], concat(x, x, x)[1])  # the same attention weights


def test_combine_is_checked():
    with pytest.raises(ValueError, match="combine"):
        MultiHeadAttention(8, 2, combine="sum")
    with pytest.raises(ValueError, match="source"):
        SourceConfig(source="both")


# ------------------------------------------------------------------------------ properties
@pytest.mark.parametrize("combine", ["concat", "mean"])
def test_self_attention_is_permutation_equivariant(device, combine):
    torch.manual_seed(4)
    layer = SelfAttention(16, 4, combine).to(device).double()
    x = rand(2, 9, 16, device=device)
    perm = torch.randperm(9, device=device)
    out, weights = layer(x)
    out_p, weights_p = layer(x[:, perm])
    torch.testing.assert_close(out_p, out[:, perm])  # SelfAttn(PX) = P SelfAttn(X)
    torch.testing.assert_close(weights_p, weights[:, :, perm][:, :, :, perm])


def test_self_attention_with_positions_is_not_equivariant(device):
    """The property above can fail: learned positions break it (so the test is not vacuous)."""
    torch.manual_seed(5)
    model = AttentionClassifier(SourceConfig.tiny(max_len=6, readout="mean")).to(device).double()
    tokens = torch.tensor([[0, 1, 2, 3, 4, 5]], device=device)
    with evaluating(model):
        assert not torch.allclose(model(tokens)[0], model(tokens.flip(1))[0])


def test_cross_attention_ignores_the_order_of_the_context(device):
    torch.manual_seed(6)
    layer = CrossAttention(8, 2).to(device).double()
    query, context = rand(3, 4, 8, device=device), rand(3, 10, 8, device=device)
    perm = torch.randperm(10, device=device)
    out, weights = layer(query, context)
    out_p, weights_p = layer(query, context[:, perm])
    torch.testing.assert_close(out_p, out)  # the keys and values move together: the same answer
    torch.testing.assert_close(weights_p, weights[..., perm])


def test_each_cross_query_depends_on_itself_only(device):
    torch.manual_seed(7)
    layer = CrossAttention(8, 2).to(device).double()
    query, context = rand(1, 4, 8, device=device), rand(1, 6, 8, device=device)
    changed = query.clone()
    changed[:, 2] = rand(8, device=device)
    before, after = layer(query, context)[0], layer(changed, context)[0]
    torch.testing.assert_close(after[:, [0, 1, 3]], before[:, [0, 1, 3]])
    assert not torch.allclose(after[:, 2], before[:, 2])


def test_learned_queries_ask_the_same_question_of_every_input(device):
    torch.manual_seed(8)
    pool = LearnedQueries(8, 2, num_queries=3).to(device).double()
    context = rand(2, 5, 8, device=device)
    out, weights = pool(context)
    assert out.shape == (2, 3, 8) and weights.shape == (2, 2, 3, 5)
    same, _ = pool(context[:1].expand(2, -1, -1))
    torch.testing.assert_close(same[0], same[1])
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights[..., 0]))


@pytest.mark.parametrize("source", ["self", "cross"])
def test_padding_changes_nothing(device, source):
    torch.manual_seed(9)
    model = AttentionClassifier(SourceConfig.tiny(source=source, num_queries=2, max_len=6)).to(device).double()
    tokens = torch.tensor([[1, 2, 3, 4, 0, 0], [5, 6, 1, 2, 3, 4]], device=device)
    mask = torch.tensor([[True] * 4 + [False] * 2, [True] * 6], device=device)
    garbage = tokens.clone()
    garbage[0, 4:] = torch.tensor([6, 5], device=device)  # other tokens at the padded positions
    with evaluating(model):
        logits, weights = model(tokens, mask)
        logits_g, _ = model(garbage, mask)
        alone, _ = model(tokens[:1, :4])
    torch.testing.assert_close(logits, logits_g)
    torch.testing.assert_close(logits[:1], alone)  # padding = the shorter sequence on its own
    assert (weights[0, ..., 1 + 4:] == 0).all(), "padded keys (after the null slot) get weight 0"


def test_self_readout_last_is_the_last_position_of_the_full_layer(device):
    torch.manual_seed(10)
    full = AttentionClassifier(SourceConfig.tiny(max_len=5, readout="mean", attend_self=False)).to(device).double()
    last = AttentionClassifier(SourceConfig.tiny(max_len=5, readout="last", attend_self=False)).to(device).double()
    last.load_state_dict(full.state_dict())
    tokens = torch.tensor([[1, 2, 3, 4, 5], [6, 5, 4, 0, 0]], device=device)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2], device=device)
    with evaluating(full):
        _, all_weights = full(tokens, mask)
    with evaluating(last):
        _, weights = last(tokens, mask)
    assert weights.shape == (2, 2, 1, 6)
    torch.testing.assert_close(weights[0, :, 0], all_weights[0, :, 4])
    torch.testing.assert_close(weights[1, :, 0], all_weights[1, :, 2])


def test_attend_self_false_hides_the_diagonal(device):
    torch.manual_seed(11)
    model = AttentionClassifier(SourceConfig.tiny(attend_self=False)).to(device)
    with evaluating(model):
        _, weights = model(torch.tensor([[1, 1, 2, 3]], device=device))  # (1, H, 4, 1 + 4)
    diagonal = weights[..., 1:].diagonal(dim1=-2, dim2=-1)
    assert (diagonal == 0).all(), "no position attends to itself"
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights[..., 0]))


def test_multi_field_inputs_sum_their_embeddings(device):
    torch.manual_seed(12)
    model = AttentionClassifier(SourceConfig.tiny(vocab_sizes=(4, 3))).to(device)
    inputs = torch.tensor([[[1, 2], [3, 0]]], device=device)  # (B, T, F)
    expected = model.embeddings[0](inputs[..., 0]) + model.embeddings[1](inputs[..., 1])
    torch.testing.assert_close(model.embed(inputs), expected)
    with pytest.raises(ValueError, match="F = 2 fields"):
        model(torch.tensor([[1, 2]], device=device))


@pytest.mark.parametrize("source,combine", [("self", "concat"), ("self", "mean"), ("cross", "concat")])
def test_gradcheck(device, source, combine):
    torch.manual_seed(13)
    layer = (SelfAttention(6, 2, combine) if source == "self" else CrossAttention(6, 2, combine)).to(device).double()
    x = rand(2, 4, 6, device=device, requires_grad=True)
    y = rand(2, 3, 6, device=device, requires_grad=True)
    if source == "self":
        assert torch.autograd.gradcheck(lambda x: layer(x)[0], (x,))
    else:
        assert torch.autograd.gradcheck(lambda y, x: layer(y, x)[0], (y, x))


def test_the_classifier_normalises_its_scores_with_the_core(device):
    model = AttentionClassifier(SourceConfig.tiny(source="cross")).to(device)
    with _SoftmaxCallers() as spy:
        model(torch.tensor([[1, 2, 3]], device=device))
    core = (PACKAGE / "attention").resolve()
    assert (core / "masking.py") in spy.callers
    assert all(c is not None and c.parent == core for c in spy.callers), spy.callers


# ------------------------------------------------------------------------------ the tasks
def test_contains_task():
    task = contains_task(400, length=6, vocab=10, target=3, seed=0)
    assert task.inputs.shape == (400, 6) and task.vocab_sizes == (10,) and task.num_classes == 2
    has = (task.inputs == 3).any(-1)
    assert torch.equal(has.long(), task.labels)
    assert all(len(set(row.tolist())) == 6 for row in task.inputs), "distinct tokens"
    where = task.where["target"]
    rows = torch.arange(400)[has]
    assert (task.inputs[rows, where[has]] == 3).all() and (where[~has] == -1).all()
    assert 150 < int(task.labels.sum()) < 250
    assert torch.equal(contains_task(400, length=6, vocab=10, target=3, seed=0).inputs, task.inputs)
    assert not torch.equal(contains_task(400, length=6, vocab=10, target=3, seed=1).inputs, task.inputs)


def test_repeat_task():
    task = repeat_task(500, length=5, vocab=9, seed=1)
    distinct = torch.tensor([len(set(row.tolist())) for row in task.inputs])
    assert torch.equal(task.labels, (distinct == 4).long()), "label 1: exactly one pair of equal tokens"
    assert ((distinct == 4) | (distinct == 5)).all()
    pair = task.where["pair"]
    yes = task.labels == 1
    assert (pair[yes, 0] < pair[yes, 1]).all() and (pair[~yes] == -1).all()
    rows = torch.arange(500)[yes]
    assert (task.inputs[rows, pair[yes, 0]] == task.inputs[rows, pair[yes, 1]]).all()
    assert 200 < int(yes.sum()) < 300
    assert torch.equal(repeat_task(500, length=5, vocab=9, seed=1).inputs, task.inputs)


def test_recall_task():
    task = recall_task(300, num_items=5, num_keys=7, num_values=4, seed=2)
    assert task.inputs.shape == (300, 6, 2) and task.vocab_sizes == (7, 5) and task.num_classes == 16
    items, query = task.inputs[:, :5], task.inputs[:, 5]
    assert (query[:, 1] == 4).all(), "the query's value field is '?'"
    assert all(len(set(row.tolist())) == 5 for row in items[..., 0]), "distinct keys"
    match = task.where["match"]
    assert (match >= 1).all() and (match < 5).all()
    rows = torch.arange(300)
    assert torch.equal(items[rows, match, 0], query[:, 0]), "the query key is the key of the matching item"
    assert torch.equal(task.labels, items[rows, match, 1] * 4 + items[:, 0, 1])
    assert torch.equal(recall_task(300, num_items=5, num_keys=7, num_values=4, seed=2).inputs, task.inputs)


def test_token_task_split_and_batches():
    task = repeat_task(10, length=3, vocab=5, seed=0)
    first, rest = task.split(7)
    assert len(first) == 7 and len(rest) == 3 and torch.equal(rest.where["pair"], task.where["pair"][7:])
    batches = list(task.batches(4, seed=0))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    seen = torch.cat([x for x, _ in batches])
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, task.inputs.tolist()))
    assert torch.equal(torch.cat([x for x, _ in task.batches(4, seed=0)]), seen), "the same seed, the same order"
    with pytest.raises(ValueError):
        task.split(10)
    with pytest.raises(ValueError):
        repeat_task(3, length=6, vocab=4)


# ------------------------------------------------------------------------------ training through fit
def test_self_attention_learns_to_find_repeats_and_trains_through_fit(device, one_thread):
    """A few hundred steps of the one training loop: self-attention (each position asking about the others)
    separates sequences with a repeated token from sequences without."""
    train, test = repeat_task(3000, length=5, vocab=12, seed=0).split(2500)
    torch.manual_seed(0)
    model = AttentionClassifier(SourceConfig(vocab_sizes=(12,), d_model=16, d_ff=32, attend_self=False)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def loss(m, batch):
        x, y = (t.to(device) for t in batch)
        return F.cross_entropy(m(x)[0], y)

    history = fit(model, lambda e: train.batches(100, seed=e), loss, optimizer, epochs=8, progress=False)
    assert history[-1]["loss"] < history[0]["loss"]
    with evaluating(model):
        accuracy = (model(test.inputs.to(device))[0].argmax(-1).cpu() == test.labels).float().mean().item()
    assert accuracy > 0.85, f"accuracy {accuracy:.2f}"


def test_token_task_is_a_dataclass_of_tensors():
    task = TokenTask(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long), (4,), 2)
    assert len(task) == 2 and task.where == {}


def test_train_lookup_and_lookup_accuracy(device, one_thread):
    from solutions.taxonomy import lookup_accuracy, train_lookup
    train, test = contains_task(600, length=4, vocab=8, seed=0).split(500)
    torch.manual_seed(0)
    model = AttentionClassifier(SourceConfig(vocab_sizes=(8,), source="cross", d_model=8, d_ff=8)).to(device)
    history = train_lookup(model, train, epochs=6, lr=1e-2, batch_size=50, seed=0)
    assert len(history) == 6 and history[-1]["loss"] < history[0]["loss"]
    accuracy = lookup_accuracy(model, test, batch_size=30)
    assert accuracy > 0.9, f"a learned query finds token 0: accuracy {accuracy:.2f}"
    with evaluating(model):
        by_hand = (model(test.inputs.to(device))[0].argmax(-1).cpu() == test.labels).float().mean().item()
    assert accuracy == pytest.approx(by_hand)


def test_weight_on_positions(device):
    from solutions.taxonomy import weight_on_positions
    weights = torch.tensor([[[0.1, 0.6, 0.3], [0.5, 0.5, 0.0]],
                            [[0.2, 0.2, 0.6], [1.0, 0.0, 0.0]]], device=device)  # (N=2, H=2, Tk=3)
    positions = torch.tensor([[1, 0, -1], [2, -1, -1]], device=device)  # (N, R=3); -1: no such key
    got = weight_on_positions(weights, positions)
    expected = torch.tensor([[(0.6 + 0.6) / 2, 0.1, 0.0], [(0.5 + 0.0) / 2, 0.5, 0.0]], device=device)
    torch.testing.assert_close(got, expected)
