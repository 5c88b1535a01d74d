"""Attention by hierarchy (solutions.taxonomy.hierarchy) and its data (solutions.data.induction, .documents):
oracles, properties, gradcheck in float64, masks, every available device."""
import pytest
import torch
from torch import nn

from helpers import rand
from solutions.attention import MultiHeadAttention
from solutions.data.documents import MARKER_ID, PAD_ID, document_vocabulary, make_planted_documents
from solutions.data.induction import make_induction_data
from solutions.taxonomy import (AttentionOnlyConfig, AttentionOnlyTransformer, AttentionPooling, FlatAttentionNetwork,
                                HANConfig, HierarchicalAttentionNetwork, document_accuracy, document_loss,
                                induction_accuracy, induction_loss, induction_score, planted_sentence_scores,
                                previous_token_score)
from solutions.taxonomy.hierarchy import flatten_documents
from solutions.train import fit


# ------------------------------------------------------------------------------ the induction data
def test_induction_data_is_deterministic_and_repeats_a_segment_of_distinct_tokens():
    a, b = make_induction_data(50, seed=3), make_induction_data(50, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a.tokens, make_induction_data(50, seed=4).tokens)
    for tokens, n in zip(a.tokens, a.segment):
        n = int(n)
        segment = tokens[:n]
        assert len(set(segment.tolist())) == n, "the segment's tokens are distinct"
        assert torch.equal(tokens[n:2 * n], segment), "the segment is repeated right after itself"
    assert set(a.segment.tolist()) <= set(range(5, 13)) and len(set(a.segment.tolist())) > 3


def test_induction_targets_follow_from_the_first_occurrence():
    data = make_induction_data(40, seed=0)
    assert torch.equal(data.targets[:, :-1], data.tokens[:, 1:])
    for tokens, targets, scored, n in zip(*data):
        positions = scored.nonzero().flatten().tolist()
        assert positions == list(range(int(n), 2 * int(n) - 1))
        for t in positions:
            first = (tokens[:t] == tokens[t]).nonzero().flatten().tolist()
            assert len(first) == 1, "the current token occurred once before"
            assert targets[t] == tokens[first[0] + 1], "the target is the token that followed that occurrence"


@pytest.mark.parametrize("kwargs", [dict(segment=(1, 4)), dict(segment=(5, 13), length=24),
                                    dict(vocab_size=6, segment=(5, 8)), dict(segment=(6, 5))])
def test_induction_data_rejects_impossible_settings(kwargs):
    with pytest.raises(ValueError):
        make_induction_data(4, **kwargs)


# ------------------------------------------------------------------------------ the documents
def test_planted_documents_are_deterministic_and_well_formed():
    docs = make_planted_documents(200, seed=5)
    again = make_planted_documents(200, seed=5)
    assert all(torch.equal(x, y) for x, y in zip(docs, again))
    assert not torch.equal(docs.words, make_planted_documents(200, seed=6).words)
    vocab = document_vocabulary()
    topic_ids = {i for i, w in enumerate(vocab) if w[:-1] in ("sport", "music", "food", "travel")}
    for words, lengths, label, planted in zip(*docs):
        real = lengths > 0
        assert real.sum() >= 4 and bool(real[: int(real.sum())].all()), "sentences first, padding sentences after"
        assert 0 <= planted < real.sum()
        for s in range(len(lengths)):
            sentence, W = words[s], int(lengths[s])
            assert (sentence[W:] == PAD_ID).all() and (sentence[:W] != PAD_ID).all(), "padding only after the words"
            topics = [w for w in sentence[:W].tolist() if w in topic_ids]
            assert len(topics) == (1 if W else 0), "one topic word per sentence"
            assert ((sentence == MARKER_ID).sum() == 1) == (s == planted), "the marker is in the planted sentence only"
            if s == planted:
                assert vocab[topics[0]].startswith(("sport", "music", "food", "travel")[int(label)]), \
                    "the label is the planted sentence's topic"


def test_the_label_is_not_simply_the_most_frequent_topic():
    """Counting topics over the document (what averaging can do at best) finds the label only sometimes."""
    docs = make_planted_documents(2000, seed=0)
    topic = ((docs.words - 2) // 2).clamp(-1, 4)  # topic of a topic word (ids 2..9), else -1 or 4
    is_topic = (docs.words >= 2) & (docs.words < 10)
    counts = torch.stack([((topic == c) & is_topic).sum(dim=(1, 2)) for c in range(4)], dim=1)  # (N, 4)
    majority = (counts.argmax(1) == docs.labels).float().mean()
    assert 0.3 < majority < 0.7, majority


def test_document_vocabulary_and_arguments():
    vocab = document_vocabulary(40, 4, 2)
    assert vocab[:4] == ["<pad>", "MARK", "sport0", "sport1"] and len(vocab) == 40
    with pytest.raises(ValueError):
        document_vocabulary(10, 4, 2)
    with pytest.raises(ValueError):
        make_planted_documents(3, words=(1, 3))


# ------------------------------------------------------------------------------ attention pooling
def test_attention_pooling_weights_sum_to_one_over_real_positions_and_padding_is_masked(device):
    torch.manual_seed(0)
    pool = AttentionPooling(6, 5).to(device=device, dtype=torch.float64)
    h = rand(3, 4, 7, 6, device=device)
    lengths = torch.tensor([[7, 3, 1, 0], [2, 7, 5, 4], [0, 0, 6, 1]], device=device)
    mask = torch.arange(7, device=device) < lengths[..., None]  # (3, 4, 7)
    pooled, weights = pool(h, mask)
    assert pooled.shape == (3, 4, 6) and weights.shape == (3, 4, 7)
    real = lengths > 0
    torch.testing.assert_close(weights.sum(-1)[real], torch.ones(int(real.sum()), dtype=torch.float64, device=device))
    assert torch.all(weights[~mask] == 0), "padding positions get weight exactly 0"
    assert torch.all(pooled[~real] == 0) and torch.all(weights[~real] == 0), "an empty sequence pools to zeros"
    # changing the padded features changes nothing
    h2 = torch.where(mask[..., None], h, rand(3, 4, 7, 6, device=device) * 100)
    torch.testing.assert_close(pool(h2, mask)[0], pooled)


def test_attention_pooling_follows_yangs_equations(device):
    """u_t = tanh(W h_t + b), α = softmax(u_tᵀ u) over the real positions, s = Σ α_t h_t, written out."""
    torch.manual_seed(1)
    pool = AttentionPooling(4, 3).to(device=device, dtype=torch.float64)
    h = rand(2, 5, 4, device=device)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]], device=device)
    pooled, weights = pool(h, mask)
    u = torch.tanh(h @ pool.proj.weight.T + pool.proj.bias)  # (2, 5, 3)
    e = (u @ pool.context).masked_fill(~mask, float("-inf"))  # (2, 5)
    alpha = torch.exp(e - e.max(-1, keepdim=True).values)
    alpha = alpha / alpha.sum(-1, keepdim=True)
    torch.testing.assert_close(weights, alpha, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pooled, (alpha[..., None] * h).sum(1), rtol=1e-12, atol=1e-12)


def test_the_averaging_switch_equals_the_masked_mean(device):
    pool = AttentionPooling(6, 5, average=True).to(device=device, dtype=torch.float64)
    h = rand(4, 9, 6, device=device)
    lengths = torch.tensor([9, 4, 1, 0], device=device)
    mask = torch.arange(9, device=device) < lengths[:, None]
    pooled, weights = pool(h, mask)
    mean = (h * mask[..., None]).sum(1) / lengths.clamp(min=1)[:, None]
    torch.testing.assert_close(pooled, mean, rtol=1e-12, atol=1e-12)
    expected = mask.double() / lengths.clamp(min=1)[:, None].double()
    torch.testing.assert_close(weights, expected.to(torch.float64), rtol=1e-12, atol=1e-12)


def test_attention_pooling_gradcheck_in_float64(device):
    torch.manual_seed(2)
    pool = AttentionPooling(3, 4).to(device=device, dtype=torch.float64)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]], device=device)
    h = rand(2, 4, 3, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: pool(x, mask)[0], (h,))
    assert torch.autograd.gradcheck(lambda x: pool(x, mask)[1], (h,))


def test_attention_pooling_is_permutation_invariant(device):
    """One learned query over a set of keys: permuting the positions (and the mask with them) permutes the
    weights the same way and leaves the pooled vector unchanged."""
    torch.manual_seed(11)
    pool = AttentionPooling(5, 4).to(device=device, dtype=torch.float64)
    h = rand(3, 8, 5, device=device)
    mask = torch.rand(3, 8, device=device) > 0.3
    pooled, weights = pool(h, mask)
    perm = torch.randperm(8, device=device)
    pooled_p, weights_p = pool(h[:, perm], mask[:, perm])
    torch.testing.assert_close(pooled_p, pooled, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(weights_p, weights[:, perm], rtol=1e-12, atol=1e-12)


def test_han_without_encoders_ignores_the_order_of_sentences_and_words(device):
    """With encoder="none" both levels are set poolings: shuffling the sentences of a document, and the words
    within a sentence, changes no prediction (the GRU encoders of Yang et al. are what reads order)."""
    torch.manual_seed(12)
    model = HierarchicalAttentionNetwork(HANConfig.tiny(encoder="none")).to(device=device, dtype=torch.float64)
    docs = make_planted_documents(4, vocab_size=12, num_topics=3, words_per_topic=1, sentences=(5, 5),
                                  words=(6, 6), seed=6).to(device)
    logits, _, beta = model(docs.words, docs.sentence_lengths)
    sentences, words = torch.randperm(5, device=device), torch.randperm(6, device=device)
    shuffled = docs.words[:, sentences][:, :, words]
    logits_p, _, beta_p = model(shuffled, docs.sentence_lengths[:, sentences])
    torch.testing.assert_close(logits_p, logits, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(beta_p, beta[:, sentences], rtol=1e-12, atol=1e-12)


def test_attention_pooling_rejects_a_mask_of_the_wrong_shape():
    pool = AttentionPooling(3, 4)
    with pytest.raises(ValueError, match="mask must be"):
        pool(torch.randn(2, 5, 3), torch.ones(2, 4, dtype=torch.bool))


# ------------------------------------------------------------------------------ the attention-only transformer
def test_attention_only_transformer_equals_the_residual_sum_of_its_layers(device):
    """x_l = x_{l-1} + MHA_l(x_{l-1}) with a causal mask, checked against the core's MultiHeadAttention
    and against PyTorch's nn.MultiheadAttention with the same weights."""
    torch.manual_seed(3)
    config = AttentionOnlyConfig.tiny()
    model = AttentionOnlyTransformer(config).to(device=device, dtype=torch.float64)
    tokens = torch.randint(0, config.vocab_size, (3, 7), device=device)
    logits, weights = model(tokens)
    assert logits.shape == (3, 7, config.vocab_size) and len(weights) == config.num_layers
    x = model.embed(tokens) + model.position.weight[:7]
    causal = torch.ones(7, 7, dtype=torch.bool, device=device).triu(1)  # PyTorch's convention: True = masked
    for layer, w in zip(model.layers, weights):
        assert isinstance(layer, MultiHeadAttention)
        theirs = nn.MultiheadAttention(config.d_model, config.num_heads, batch_first=True).to(device, torch.float64)
        with torch.no_grad():
            theirs.in_proj_weight.copy_(torch.cat([layer.q_proj.weight, layer.k_proj.weight, layer.v_proj.weight]))
            theirs.in_proj_bias.copy_(torch.cat([layer.q_proj.bias, layer.k_proj.bias, layer.v_proj.bias]))
            theirs.out_proj.weight.copy_(layer.out_proj.weight)
            theirs.out_proj.bias.copy_(layer.out_proj.bias)
        out, their_w = theirs(x, x, x, attn_mask=causal, average_attn_weights=False)
        torch.testing.assert_close(w, their_w, rtol=1e-10, atol=1e-12)
        x = x + out
    torch.testing.assert_close(logits, model.unembed(x), rtol=1e-10, atol=1e-12)


def test_attention_only_transformer_never_looks_ahead(device):
    torch.manual_seed(4)
    config = AttentionOnlyConfig.tiny(num_layers=3)
    model = AttentionOnlyTransformer(config).to(device)
    tokens = torch.randint(0, config.vocab_size, (2, 9), device=device)
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % config.vocab_size
    a, weights = model(tokens)
    b, _ = model(changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    for w in weights:
        assert torch.all(w.triu(1) == 0), "no weight on a later position"
    with pytest.raises(ValueError, match="max_len"):
        model(torch.zeros(1, config.max_len + 1, dtype=torch.long, device=device))


def test_attention_only_transformer_gradcheck_in_float64(device):
    torch.manual_seed(5)
    model = AttentionOnlyTransformer(AttentionOnlyConfig.tiny(d_model=4)).to(device=device, dtype=torch.float64)
    tokens = torch.randint(0, 8, (2, 5), device=device)
    x0 = model.embed(tokens).detach().requires_grad_(True)

    def run(x):  # the layers and the unembedding, from the embedded input
        x = x + model.position.weight[:5]
        for layer in model.layers:
            x = x + layer(x, x, x, is_causal=True)[0]
        return model.unembed(x)
    assert torch.autograd.gradcheck(run, (x0,))


def test_head_scores_on_hand_made_heads():
    data = make_induction_data(6, seed=0)
    B, T = data.tokens.shape
    eye = torch.eye(T)
    previous = torch.diag(torch.ones(T - 1), -1)
    previous[0, 0] = 1
    induction = eye.clone().expand(B, T, T).clone()
    for b, n in enumerate(data.segment.tolist()):
        for t in range(n, 2 * n - 1):
            induction[b, t] = 0
            induction[b, t, t - n + 1] = 1
    weights = torch.stack([previous.expand(B, T, T), eye.expand(B, T, T), induction], dim=1)  # (B, 3, T, T)
    torch.testing.assert_close(previous_token_score(weights), torch.tensor([1.0, 0.0, 0.0]))
    torch.testing.assert_close(induction_score(weights, data), torch.tensor([0.0, 0.0, 1.0]))
    segment = torch.arange(T) < data.segment[:, None]  # (B, T): the first copy
    half = weights.clone()
    half[:, 0, :, :] = torch.where(segment[:, :, None], previous, eye)  # previous token inside the segment only
    assert torch.isclose(previous_token_score(half, segment)[0], torch.tensor(1.0))
    assert previous_token_score(half)[0] < 0.6
    with pytest.raises(ValueError):
        previous_token_score(torch.ones(2, 3, 4))
    with pytest.raises(ValueError):
        previous_token_score(weights, segment[:, :-1])


def test_two_layers_learn_the_induction_task_and_one_layer_does_not(one_thread):
    """A small version of the chapter's experiment (the chapter runs it with 3 seeds)."""
    train, test = make_induction_data(4096, seed=1), make_induction_data(256, seed=2)
    accuracy = {}
    for layers in (1, 2):
        torch.manual_seed(0)
        model = AttentionOnlyTransformer(AttentionOnlyConfig(num_layers=layers, num_heads=1))
        fit(model, lambda e: train.batches(64, seed=e), induction_loss, torch.optim.Adam(model.parameters(), 3e-3),
            epochs=4, progress=False)
        accuracy[layers] = induction_accuracy(model, test)
    assert accuracy[2] > 0.95 and accuracy[1] < 0.6, accuracy


# ------------------------------------------------------------------------------ the HAN and the flat model
@pytest.mark.parametrize("encoder", ["gru", "none"])
@pytest.mark.parametrize("pooling", ["attention", "average"])
def test_han_shapes_masks_and_padding_independence(device, encoder, pooling):
    torch.manual_seed(6)
    config = HANConfig.tiny(encoder=encoder, pooling=pooling)
    model = HierarchicalAttentionNetwork(config).to(device)
    docs = make_planted_documents(5, vocab_size=12, num_topics=3, words_per_topic=1, seed=1).to(device)
    logits, alpha, beta = model(docs.words, docs.sentence_lengths)
    S, W = docs.words.shape[1:]
    assert logits.shape == (5, 3) and alpha.shape == (5, S, W) and beta.shape == (5, S)
    word_mask = torch.arange(W, device=device) < docs.sentence_lengths[..., None]
    real = docs.sentence_lengths > 0
    ones = torch.ones(int(real.sum()), device=device)
    torch.testing.assert_close(alpha.sum(-1)[real], ones)
    torch.testing.assert_close(beta.sum(-1), torch.ones(5, device=device))
    assert torch.all(alpha[~word_mask] == 0) and torch.all(beta[~real] == 0), "padding gets no weight"
    if pooling == "average":
        torch.testing.assert_close(beta, real / real.sum(-1, keepdim=True))
    # padding ids other than 0 change nothing: the masks, not the padding id, decide
    noisy = torch.where(word_mask, docs.words, torch.randint_like(docs.words, 2, 12))
    torch.testing.assert_close(model(noisy, docs.sentence_lengths)[0], logits)


def test_han_sentence_vectors_are_the_word_pooled_encodings(device):
    """With encoder="none", a sentence vector is the attention-weighted sum of its word embeddings and the
    document vector the attention-weighted sum of the sentence vectors (eqs. 7 and 10 of Yang et al.)."""
    torch.manual_seed(7)
    model = HierarchicalAttentionNetwork(HANConfig.tiny(encoder="none")).to(device=device, dtype=torch.float64)
    docs = make_planted_documents(4, vocab_size=12, num_topics=3, words_per_topic=1, seed=2).to(device)
    logits, alpha, beta = model(docs.words, docs.sentence_lengths)
    s = (alpha[..., None] * model.embed(docs.words)).sum(2)  # (B, S, E)
    v = (beta[..., None] * s).sum(1)  # (B, E)
    torch.testing.assert_close(logits, model.classifier(v), rtol=1e-12, atol=1e-12)


def test_flatten_documents_keeps_the_words_in_reading_order():
    words = torch.tensor([[[3, 4, 0], [5, 0, 0], [0, 0, 0]], [[6, 7, 8], [9, 10, 11], [12, 0, 0]]])
    lengths = torch.tensor([[2, 1, 0], [3, 3, 1]])
    flat, n = flatten_documents(words, lengths)
    assert n.tolist() == [3, 7]
    assert flat.tolist() == [[3, 4, 5, 0, 0, 0, 0], [6, 7, 8, 9, 10, 11, 12]]


def test_flat_model_pools_every_word_of_the_document(device):
    torch.manual_seed(8)
    model = FlatAttentionNetwork(HANConfig.tiny()).to(device)
    docs = make_planted_documents(3, vocab_size=12, num_topics=3, words_per_topic=1, seed=3).to(device)
    logits, weights = model(docs.words, docs.sentence_lengths)
    total = docs.sentence_lengths.sum(-1)
    assert logits.shape == (3, 3) and weights.shape == (3, int(total.max()))
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, device=device))
    assert torch.all(weights[torch.arange(weights.shape[1], device=device) >= total[:, None]] == 0)


def test_han_gradcheck_in_float64(device):
    torch.manual_seed(9)
    model = HierarchicalAttentionNetwork(HANConfig.tiny()).to(device=device, dtype=torch.float64)
    docs = make_planted_documents(2, vocab_size=12, num_topics=3, words_per_topic=1, sentences=(2, 3),
                                  words=(2, 4), seed=4).to(device)
    emb = model.embed(docs.words).detach().requires_grad_(True)
    word_mask = torch.arange(docs.words.shape[2], device=device) < docs.sentence_lengths[..., None]

    def run(e):
        h = model.word_encoder(e, docs.sentence_lengths)
        s, _ = model.word_pool(h, word_mask)
        hs = model.sentence_encoder(s, (docs.sentence_lengths > 0).sum(-1))
        return model.sentence_pool(hs, docs.sentence_lengths > 0)[0]
    assert torch.autograd.gradcheck(run, (emb,))


def test_han_config_rejects_unknown_switches():
    with pytest.raises(ValueError):
        HANConfig(encoder="lstm")
    with pytest.raises(ValueError):
        HANConfig(pooling="max")


def test_han_with_attention_learns_the_planted_sentence_and_averaging_does_not(one_thread):
    """A small version of the chapter's experiment: without encoders, only sentence attention can pick the
    sentence with the marker; its weights point at the planted sentence."""
    train, test = make_planted_documents(1000, seed=1), make_planted_documents(300, seed=2)
    result = {}
    for pooling in ("attention", "average"):
        torch.manual_seed(0)
        model = HierarchicalAttentionNetwork(HANConfig(encoder="none", pooling=pooling))
        fit(model, lambda e: train.batches(64, seed=e), document_loss, torch.optim.Adam(model.parameters(), 1e-2),
            epochs=8, progress=False)
        result[pooling] = document_accuracy(model, test), planted_sentence_scores(model, test)
    assert result["attention"][0] > 0.95 and result["average"][0] < 0.7, result
    assert result["attention"][1]["top1"] > 0.95 and result["attention"][1]["weight"] > 0.8, result


# ------------------------------------------------------------------------------ built on the core
def test_every_model_normalises_its_scores_with_the_core(device):
    from test_attention_core import PACKAGE, _SoftmaxCallers
    core = (PACKAGE / "attention").resolve()
    torch.manual_seed(10)
    docs = make_planted_documents(3, vocab_size=12, num_topics=3, words_per_topic=1, seed=5).to(device)
    runs = {
        "attention-only": lambda: AttentionOnlyTransformer(AttentionOnlyConfig.tiny()).to(device)(
            torch.randint(0, 8, (2, 6), device=device)),
        "HAN": lambda: HierarchicalAttentionNetwork(HANConfig.tiny()).to(device)(docs.words, docs.sentence_lengths),
        "HAN average": lambda: HierarchicalAttentionNetwork(HANConfig.tiny(pooling="average")).to(device)(
            docs.words, docs.sentence_lengths),
        "flat": lambda: FlatAttentionNetwork(HANConfig.tiny()).to(device)(docs.words, docs.sentence_lengths),
    }
    for name, run in runs.items():
        with _SoftmaxCallers() as spy:
            run()
        assert (core / "masking.py") in spy.callers, f"{name} never called the core's masked_softmax"
        outside = {str(c) for c in spy.callers if c is None or c.parent != core}
        assert not outside, f"{name} computed attention outside the core, in {sorted(outside)}"
