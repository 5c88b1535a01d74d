"""Tests for solutions.history.bert: input representation, masking procedure, tied MLM head, losses, NSP data."""
import math
import random

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from solutions.history.bert import (IGNORE_INDEX, IS_NEXT, NOT_NEXT, OBJECT_CLASSES, BertConfig, BertEmbeddings, BertForPreTraining, BertForSequenceClassification, BertModel, WordVocab, classifier_accuracy, collate, encode_pair, evaluate_pretraining, generate_documents, make_pretraining_batch, mask_tokens, mlm_loss, nsp_pairs, object_class, pretrain, subject_of, train_classifier)
from solutions.data import generate_sentences

V = 40  # vocabulary size of the tiny models
NS = WordVocab.num_special


def _model(device, cls=BertForPreTraining, dtype=torch.float32, seed=0, **kw):
    torch.manual_seed(seed)
    model = cls(BertConfig.tiny(V), **kw) if cls is not BertForSequenceClassification else cls(BertConfig.tiny(V), 3)
    return model.to(device=device, dtype=dtype).eval()


def _inputs(device, B=3, T=9, seed=0):
    """[CLS] w w [SEP] w w [SEP] [PAD] ... with segments and a padding mask (True = real token)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = [T, T - 3, 4][:B] + [T] * max(0, B - 3)
    encoded = []
    for n in lengths:
        words = torch.randint(NS, V, (n - 3,), generator=gen).tolist()
        cut = len(words) // 2
        ids = [WordVocab.cls_id] + words[:cut] + [WordVocab.sep_id] + words[cut:] + [WordVocab.sep_id]
        encoded.append((ids, [0] * (cut + 2) + [1] * (len(words) - cut + 1)))
    return collate(encoded, device=device)


# ------------------------------------------------------------------------------------ config, vocab
def test_config_defaults_are_bert_base_and_errors():
    c = BertConfig()
    assert (c.num_layers, c.hidden_size, c.num_heads, c.intermediate_size) == (12, 768, 12, 3072)
    with pytest.raises(ValueError, match="divisible"):
        BertConfig.tiny(hidden_size=15)
    with pytest.raises(ValueError, match="vocab_size"):
        BertConfig.tiny(vocab_size=0)


def test_vocab_specials_first_and_round_trip():
    vocab = WordVocab.build([("b", "a"), ("a", "c")])
    assert len(vocab) == NS + 3 and vocab.encode(["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]) == [0, 1, 2, 3, 4]
    assert vocab.encode(["a", "b", "c", "zzz"]) == [5, 6, 7, vocab.unk_id]
    assert vocab.decode([5, 7]) == ["a", "c"]
    with pytest.raises(ValueError, match="outside"):
        vocab.decode([99])


def test_encode_pair_segments_and_collate():
    vocab = WordVocab.build([("I", "like", "tea"), ("you", "drink", "water")])
    ids, seg = encode_pair(vocab, ["I", "like", "tea"], ["you", "drink", "water"])
    assert vocab.decode(ids) == ["[CLS]", "I", "like", "tea", "[SEP]", "you", "drink", "water", "[SEP]"]
    assert seg == [0] * 5 + [1] * 4
    single, seg1 = encode_pair(vocab, ["I", "like", "tea"])
    assert len(single) == 5 and seg1 == [0] * 5
    x, s, m = collate([(ids, seg), (single, seg1)])
    assert x.shape == s.shape == m.shape == (2, 9) and m.dtype == torch.bool
    assert m[1].tolist() == [True] * 5 + [False] * 4 and x[1, 5:].eq(vocab.pad_id).all() and s[1, 5:].eq(0).all()


# ------------------------------------------------------------------------------------------- shapes
def test_shapes_and_attention_weights(device):
    model = _model(device)
    x, s, m = _inputs(device)
    mlm, nsp, attn = model(x, s, m, return_attention=True)
    assert mlm.shape == (3, 9, V) and nsp.shape == (3, 2)
    assert len(attn) == 2 and all(w.shape == (3, 2, 9, 9) for w in attn)
    for w in attn:
        torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, 9, device=device))
        assert torch.all(w.masked_select(~m[:, None, None, :].expand_as(w)) == 0), "padded keys get weight 0"
    assert model(x, s, m)[2] == [], "weights only when asked for"
    pooled = model.bert(x, s, m).pooled
    assert pooled.shape == (3, 16) and pooled.abs().max() <= 1, "the pooler ends in tanh"
    clf = _model(device, BertForSequenceClassification)
    assert clf(x, s, m).shape == (3, 3)


def test_returned_weights_are_the_ones_the_layer_uses(device):
    """The re-run of self_attn gives the weights that, fed through the post-LN layer by hand, give its output."""
    model = _model(device, dtype=torch.float64)
    x, s, m = _inputs(device)
    h = model.bert.embeddings(x, s)
    out, weights = model.bert.encoder(h, m, return_attention=True)
    for layer, w in zip(model.bert.encoder.layers, weights):
        attn = layer.self_attn
        D, H = h.shape[-1], attn.num_heads
        v = F.linear(h, attn.in_proj_weight[2 * D:], attn.in_proj_bias[2 * D:])  # (B, T, D)
        v = v.view(*h.shape[:2], H, D // H).transpose(1, 2)  # (B, H, T, Dh)
        mixed = (w @ v).transpose(1, 2).reshape(h.shape)  # (B, T, D)
        a = layer.norm1(h + attn.out_proj(mixed))
        by_hand = layer.norm2(a + layer.linear2(F.gelu(layer.linear1(a))))
        h = layer(h, src_key_padding_mask=~m)
        torch.testing.assert_close(by_hand[m], h[m])
    torch.testing.assert_close(h, out)
    out2, none = model.bert.encoder(model.bert.embeddings(x, s), m)
    assert none == [] and torch.equal(out, out2), "asking for weights does not change the output"


def test_bad_inputs_raise(device):
    model = _model(device)
    x, s, m = _inputs(device)
    with pytest.raises(ValueError, match="max_position"):
        model(torch.ones(1, 40, dtype=torch.long, device=device))
    with pytest.raises(ValueError, match="token_type_ids"):
        model(x, s[:, :-1], m)
    with pytest.raises(TypeError, match="bool"):
        model(x, s, m.long())
    with pytest.raises(ValueError, match="no real token"):
        model(x, s, torch.zeros_like(m))
    with pytest.raises(ValueError, match="input_ids"):
        model(x[0])


# ------------------------------------------------------------------------------------- embeddings
def test_segment_and_position_embeddings_change_the_output(device):
    model = _model(device)
    x, s, m = _inputs(device)
    base = model.bert(x, s, m).hidden
    assert not torch.allclose(model.bert(x, torch.zeros_like(s), m).hidden[m], base[m]), "segments matter"
    emb = model.bert.embeddings
    same = torch.full((1, 6), 7, dtype=torch.long, device=device)  # one word at six positions
    e = emb(same)
    assert not torch.allclose(e[0, 0], e[0, 1]), "position embeddings tell equal words apart"
    with torch.no_grad():
        emb.position.weight.zero_()
        emb.segment.weight.zero_()
    e = emb(same, torch.ones_like(same))
    torch.testing.assert_close(e[0], e[0, :1].expand(6, -1), msg="without them, the words are identical again")


def test_embeddings_match_the_formula(device):
    emb = BertEmbeddings(BertConfig.tiny(V)).to(device).eval()
    x, s, _ = _inputs(device)
    T = x.shape[1]
    total = emb.token.weight[x] + emb.segment.weight[s] + emb.position.weight[:T]
    torch.testing.assert_close(emb(x, s), F.layer_norm(total, (16,), emb.norm.weight, emb.norm.bias, 1e-12))


def test_gradcheck_embeddings_and_layer_norm(device):
    emb = BertEmbeddings(BertConfig.tiny(12, hidden_size=4, max_position=5)).to(device=device, dtype=torch.float64)
    x = torch.tensor([[1, 6, 7, 2, 9], [1, 11, 2, 0, 0]], device=device)
    s = torch.tensor([[0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], device=device)
    names = ["token.weight", "segment.weight", "position.weight", "norm.weight", "norm.bias"]
    params = tuple(dict(emb.named_parameters())[n].detach().clone().requires_grad_() for n in names)

    def f(*p):
        return functional_call(emb, dict(zip(names, p)), (x, s))

    assert torch.autograd.gradcheck(f, params)


# ---------------------------------------------------------------------------------------- masking
def test_masking_statistics():
    """Over many draws: 15% of ordinary tokens selected; of those 80% [MASK], 10% random, 10% kept."""
    gen = torch.Generator().manual_seed(0)
    vocab_size = 1000
    ids = torch.randint(NS, vocab_size, (400, 50), generator=gen)
    ids[:, 0] = WordVocab.cls_id
    ids[:, 20] = WordVocab.sep_id
    ids[:, 40:] = WordVocab.pad_id
    ids[::7, 10] = WordVocab.unk_id
    special = ids < NS
    masked, labels = mask_tokens(ids, vocab_size, gen)
    selected = labels != IGNORE_INDEX
    assert not selected[special].any(), "specials and padding are never selected"
    assert torch.equal(masked[~selected], ids[~selected]), "unselected tokens are untouched"
    assert torch.equal(labels[selected], ids[selected]), "labels hold the original ids"

    def close(count, n, p, what):
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(count - n * p) < 4 * sigma, f"{what}: {count} of {n}, expected {n * p:.0f} ± {4 * sigma:.0f}"

    n_ordinary, n_sel = int((~special).sum()), int(selected.sum())
    close(n_sel, n_ordinary, 0.15, "selected")
    shown = masked[selected]
    n_mask = int((shown == WordVocab.mask_id).sum())
    n_same = int((shown == ids[selected]).sum())
    p_same = 0.1 + 0.1 / (vocab_size - NS)  # a random word may be the same word
    close(n_mask, n_sel, 0.8, "[MASK]")
    close(n_same, n_sel, p_same, "unchanged")
    close(n_sel - n_mask - n_same, n_sel, 1 - 0.8 - p_same, "random")
    randoms = shown[(shown != WordVocab.mask_id) & (shown != ids[selected])]
    assert randoms.min() >= NS and randoms.max() < vocab_size, "random words are ordinary words"


def test_masking_is_deterministic_per_generator(device):
    x, _, _ = _inputs(device, B=3, T=30)
    a = mask_tokens(x, V, torch.Generator().manual_seed(5))
    b = mask_tokens(x, V, torch.Generator().manual_seed(5))
    c = mask_tokens(x, V, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])
    assert a[0].device == x.device and a[1].device == x.device


def test_masking_edge_cases(device):
    x, _, _ = _inputs(device)
    masked, labels = mask_tokens(x, V, torch.Generator().manual_seed(0), select_prob=1.0, mask_prob=1.0, random_prob=0.0)
    ordinary = x >= NS
    assert torch.all(masked[ordinary] == WordVocab.mask_id) and torch.all(labels[ordinary] == x[ordinary])
    masked, labels = mask_tokens(x, V, torch.Generator().manual_seed(0), select_prob=0.0)
    assert torch.equal(masked, x) and torch.all(labels == IGNORE_INDEX)
    with pytest.raises(ValueError, match="probabilities"):
        mask_tokens(x, V, torch.Generator(), mask_prob=0.8, random_prob=0.3)
    with pytest.raises(TypeError):
        mask_tokens(x.float(), V, torch.Generator())


# ------------------------------------------------------------------------------- MLM head and loss
def test_mlm_head_weight_is_the_token_embedding(device):
    model = _model(device)
    emb = model.bert.embeddings.token.weight
    assert model.mlm_head.decoder.weight is emb and model.mlm_head.decoder.weight.data_ptr() == emb.data_ptr()
    unique = sum(p.numel() for p in model.parameters())
    assert unique == sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False)) - emb.numel()
    with torch.no_grad():
        emb[7] += 1.0  # one change, seen by both uses
    assert torch.equal(model.mlm_head.decoder.weight[7], emb[7])


def test_tied_weight_gets_gradients_from_both_uses(device):
    model = _model(device, dtype=torch.float64)
    x, s, m = _inputs(device)
    W = model.bert.embeddings.token.weight
    as_input, as_output = (W.detach().clone().requires_grad_() for _ in range(2))
    out = functional_call(model, {"bert.embeddings.token.weight": as_input, "mlm_head.decoder.weight": as_output},
                          (x, s, m), tie_weights=False)
    (out[0].square().mean() + out[1].sum()).backward()
    mlm, nsp, _ = model(x, s, m)
    (mlm.square().mean() + nsp.sum()).backward()
    assert as_input.grad.abs().sum() > 0 and as_output.grad.abs().sum() > 0
    torch.testing.assert_close(W.grad, as_input.grad + as_output.grad)
    unused = sorted(set(range(NS, V)) - set(x.flatten().tolist()))
    assert unused and W.grad[unused].abs().sum() > 0, "words absent from the input learn through the output layer"


def test_mlm_loss_ignores_unselected_positions(device):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, V, generator=gen, dtype=torch.float64).to(device)
    labels = torch.full((2, 5), IGNORE_INDEX, device=device)
    labels[0, 1], labels[1, 3], labels[1, 4] = 7, 9, 30
    loss = mlm_loss(logits, labels)
    hand = -(logits[0, 1].log_softmax(-1)[7] + logits[1, 3].log_softmax(-1)[9] + logits[1, 4].log_softmax(-1)[30]) / 3
    torch.testing.assert_close(loss, hand)
    changed = logits.clone()
    keep = labels != IGNORE_INDEX
    changed[~keep] = torch.randn(int((~keep).sum()), V, generator=gen, dtype=torch.float64).to(device) * 10
    torch.testing.assert_close(mlm_loss(changed, labels), loss)
    changed[0, 1, 7] += 1.0
    assert not torch.allclose(mlm_loss(changed, labels), loss), "selected positions do count"
    logits.requires_grad_(True)
    mlm_loss(logits, labels).backward()
    assert torch.all(logits.grad[~keep] == 0)
    none = mlm_loss(logits, torch.full_like(labels, IGNORE_INDEX))
    assert none.item() == 0 and none.requires_grad
    with pytest.raises(ValueError, match="labels"):
        mlm_loss(logits, labels[:, :4])


def test_gradcheck_mlm_loss(device):
    logits = torch.randn(2, 3, 6, dtype=torch.float64, device=device, requires_grad=True)
    labels = torch.tensor([[1, IGNORE_INDEX, 5], [IGNORE_INDEX, 0, IGNORE_INDEX]], device=device)
    assert torch.autograd.gradcheck(lambda z: mlm_loss(z, labels), (logits,))


# ------------------------------------------------------------------------------------------ padding
def test_real_tokens_do_not_depend_on_padding(device):
    model = _model(device)
    x, s, m = _inputs(device)
    assert (~m).any()
    gen = torch.Generator().manual_seed(1)
    noisy_x = torch.where(m, x, torch.randint(NS, V, x.shape, generator=gen).to(device))
    noisy_s = torch.where(m, s, torch.ones_like(s))
    a = model(x, s, m)
    b = model(noisy_x, noisy_s, m)
    torch.testing.assert_close(a[0][m], b[0][m])
    torch.testing.assert_close(a[1], b[1])
    without = model(noisy_x, noisy_s)[0]  # no mask: padding now leaks in
    assert not torch.allclose(without[m], a[0][m])


def test_batch_of_one_equals_the_padded_row(device):
    model = _model(device)
    x, s, m = _inputs(device)
    n = int(m[1].sum())
    alone = model.bert(x[1:2, :n], s[1:2, :n]).hidden
    torch.testing.assert_close(alone[0], model.bert(x, s, m).hidden[1, :n], atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------- documents and NSP
def test_documents_share_a_subject_and_nsp_pairs():
    docs = generate_documents(600, 3, seed=1)
    assert docs and all(len(d) == 3 for d in docs)
    assert all(len({subject_of(s) for s in d}) == 1 for d in docs)
    assert docs == generate_documents(600, 3, seed=1)
    pairs = nsp_pairs(docs, seed=2)
    assert len(pairs) == 2 * len(docs)
    labels = [label for *_, label in pairs]
    close = abs(labels.count(IS_NEXT) - len(pairs) / 2) < 4 * math.sqrt(len(pairs) / 4)
    assert close and set(labels) == {IS_NEXT, NOT_NEXT}
    index = {}
    for k, d in enumerate(docs):
        for s in d:
            index.setdefault(s, set()).add(k)
    consecutive = {(a, b) for d in docs for a, b in zip(d[:-1], d[1:])}
    for a, b, label in pairs:
        if label == IS_NEXT:
            assert (a, b) in consecutive
        else:
            assert index[b] - index[a], "a NotNext sentence comes from another document"
    with pytest.raises(ValueError):
        generate_documents(100, 1)


def test_subject_of():
    assert subject_of(("my", "friend", "likes", "tea")) == ("my", "friend")
    assert subject_of(("she", "likes", "tea")) == ("she",)
    for pair in generate_sentences(300, seed=3):
        rest = pair.source[len(subject_of(pair.source)):]
        assert rest[0] not in ("friend", "teacher", "mother"), pair.source_text


def test_object_classes():
    assert object_class("she drinks tea every day".split()) == "drink"
    assert object_class("my friend reads the red book on the shelf".split()) == "reading"
    assert object_class("I watch movies".split()) is None
    found = [object_class(p.source) for p in generate_sentences(2000, seed=4)]
    assert set(found) == {None, *OBJECT_CLASSES.values()}


def test_pretraining_batch_layout(device):
    docs = generate_documents(400, 2, seed=0)
    vocab = WordVocab.build([s for d in docs for s in d])
    pairs = nsp_pairs(docs)[:8]
    batch = make_pretraining_batch(pairs, vocab, torch.Generator().manual_seed(0), device)
    assert batch.input_ids.shape == batch.mlm_labels.shape == batch.attention_mask.shape
    assert batch.nsp_labels.tolist() == [label for *_, label in pairs]
    assert torch.all(batch.input_ids[:, 0] == vocab.cls_id)
    assert torch.all(batch.token_type_ids[~batch.attention_mask] == 0)


# --------------------------------------------------------------------------------------- training
def test_short_pretraining_learns_and_fine_tuning_starts_from_it(device, one_thread):
    docs = generate_documents(900, 3, seed=0)
    vocab = WordVocab.build([s for d in docs for s in d])
    pairs = nsp_pairs(docs, seed=0)
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig.tiny(len(vocab), hidden_size=32, intermediate_size=64)).to(device)
    before = evaluate_pretraining(model, pairs[:200], vocab, seed=1)
    history = pretrain(model, pairs, vocab, steps=120, batch_size=32, lr=3e-3, warmup=10, log_every=40)
    after = evaluate_pretraining(model, pairs[:200], vocab, seed=1)
    assert history[-1]["mlm_loss"] < history[0]["mlm_loss"]
    assert after.mlm_accuracy > before.mlm_accuracy + 0.1
    assert len(after.kinds) == len(after.targets) and set(after.kinds) <= {"mask", "random", "unchanged"}

    clf = BertForSequenceClassification.from_pretrained(model, 2)
    for a, b in zip(clf.bert.parameters(), model.bert.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr(), "a copy, not a shared tensor"
    sentences = [s for d in docs for s in d][:64]
    labels = [int("not" in s) for s in sentences]
    losses = train_classifier(clf, sentences, labels, vocab, epochs=8, lr=2e-3)
    assert losses[-1] < losses[0]
    assert 0 <= classifier_accuracy(clf, sentences, labels, vocab) <= 1
    with pytest.raises(ValueError):
        train_classifier(clf, sentences, labels[:3], vocab)
