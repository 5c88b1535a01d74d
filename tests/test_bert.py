"""Tests for solutions.history.bert: input representation, masking procedure, tied MLM head, losses, NSP data.

The encoder is the course's own EncoderLayer (GELU, post-LN), PROVEN EQUAL to PyTorch's
nn.TransformerEncoderLayer with copied weights, one layer and the whole BERT; nn's bool padding mask means
True = ignore, ours True = real token, hence the ``~``.
"""
import math
import random
from collections import Counter
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from solutions.attention import MultiHeadAttention
from solutions.data import Vocab, generate_sentences
from solutions.history.bert import (
    CLASS_TOPICS, IGNORE_INDEX, IS_NEXT, NOT_NEXT, OBJECT_TOPICS,
    BertConfig, BertEmbeddings, BertForPreTraining, BertForSequenceClassification, BertModel, BertPooler,
    BertVocab,
    classifier_accuracy, collate, encode_pair, evaluate_pretraining, generate_documents,
    make_pretraining_batch, mask_tokens, mlm_loss, nsp_pairs, object_class, pretrain, subject_of,
    train_classifier,
)
from solutions.history.transformer import EncoderLayer

V = 40  # vocabulary size of the tiny models
NS = BertVocab.num_special
TOL64 = dict(atol=1e-10, rtol=1e-8)


def _model(device, cls=BertForPreTraining, dtype=torch.float32, seed=0, **kw):
    torch.manual_seed(seed)
    config = BertConfig.tiny(vocab_size=V, **kw)
    model = cls(config) if cls is not BertForSequenceClassification else cls(config, 3)
    return model.to(device=device, dtype=dtype).eval()


def _inputs(device, B=3, T=9, seed=0):
    """[CLS] w w [SEP] w w [SEP] [PAD] ... with segments and a padding mask (True = real token)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = [T, T - 3, 4][:B] + [T] * max(0, B - 3)
    encoded = []
    for n in lengths:
        words = torch.randint(NS, V, (n - 3,), generator=gen).tolist()
        cut = len(words) // 2
        ids = [BertVocab.cls_id] + words[:cut] + [BertVocab.sep_id] + words[cut:] + [BertVocab.sep_id]
        encoded.append((ids, [0] * (cut + 2) + [1] * (len(words) - cut + 1)))
    return collate(encoded, device=device)


def _copy_encoder_layer(ours: EncoderLayer, theirs: nn.TransformerEncoderLayer) -> None:
    """nn's packed in-projection (3D, D) into our q/k/v projections (D, D) each; the rest one to one."""
    with torch.no_grad():
        mha = ours.self_attn
        for proj, w, b in zip((mha.q_proj, mha.k_proj, mha.v_proj), theirs.self_attn.in_proj_weight.chunk(3),
                              theirs.self_attn.in_proj_bias.chunk(3)):  # 3 × (D, D), 3 × (D,)
            proj.weight.copy_(w)
            proj.bias.copy_(b)
        for mine, their in ((mha.out_proj, theirs.self_attn.out_proj), (ours.ff.linear1, theirs.linear1),
                            (ours.ff.linear2, theirs.linear2), (ours.norm1, theirs.norm1), (ours.norm2, theirs.norm2)):
            mine.weight.copy_(their.weight)
            mine.bias.copy_(their.bias)


def _randomise(module: nn.Module, seed: int) -> None:
    """Every parameter ~ N(0, 0.3²), LayerNorm weights around 1, so that each copied weight matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = 0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)
            p.copy_(1 + noise if "norm" in name and name.endswith("weight") else noise)


class _ReferenceBert(nn.Module):
    """BERT on PyTorch's own layers: our embeddings and pooler around nn.TransformerEncoderLayer (GELU, post-LN)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(config.hidden_size, config.num_heads, config.intermediate_size,
                                       dropout=config.dropout, activation="gelu", batch_first=True,
                                       layer_norm_eps=config.layer_norm_eps)
            for _ in range(config.num_layers))
        self.pooler = BertPooler(config)

    def forward(self, x, s, keep):
        h = self.embeddings(x, s)  # (B, T, D)
        for layer in self.layers:
            h = layer(h, src_key_padding_mask=~keep)  # nn: True = ignore
        return h, self.pooler(h)


# ------------------------------------------------------------------------------------ config, vocab
def test_config_defaults_are_bert_base_and_errors():
    c = BertConfig()
    assert (c.num_layers, c.hidden_size, c.num_heads, c.intermediate_size) == (12, 768, 12, 3072)
    with pytest.raises(ValueError, match="divisible"):
        BertConfig.tiny(hidden_size=15)
    with pytest.raises(ValueError, match="vocab_size"):
        BertConfig.tiny(vocab_size=0)


def test_vocab_specials_first_and_round_trip():
    vocab = BertVocab.build([("b", "a"), ("a", "c")])
    assert isinstance(vocab, BertVocab) and isinstance(vocab, Vocab), "the course's one vocabulary"
    assert NS == 5 and BertVocab.bos_id is None and BertVocab.eos_id is None
    specials = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"]
    assert len(vocab) == NS + 3 and vocab.encode(specials, add_eos=False) == [0, 1, 2, 3, 4]
    assert [vocab.pad_id, vocab.cls_id, vocab.sep_id, vocab.mask_id, vocab.unk_id] == [0, 1, 2, 3, 4]
    assert vocab.encode(["a", "b", "c", "zzz"], add_eos=False) == [5, 6, 7, vocab.unk_id]
    assert vocab.decode([5, 7]) == ["a", "c"]
    assert vocab.decode([1, 5, 3, 2, 0, 0]) == ["[CLS]", "a", "[MASK]", "[SEP]"], "no EOS: nothing stops decoding"
    assert vocab.decode([1, 5, 2, 0], strip_special=False) == ["[CLS]", "a", "[SEP]", "[PAD]"]
    with pytest.raises(ValueError, match="no EOS"):
        vocab.encode(["a"])
    with pytest.raises(ValueError, match="no BOS"):
        vocab.encode(["a"], add_bos=True, add_eos=False)
    with pytest.raises(ValueError, match="outside"):
        vocab.decode([99])


def test_encode_pair_segments_and_collate():
    vocab = BertVocab.build([("I", "like", "tea"), ("you", "drink", "water")])
    ids, seg = encode_pair(vocab, ["I", "like", "tea"], ["you", "drink", "water"])
    assert vocab.decode(ids) == ["[CLS]", "I", "like", "tea", "[SEP]", "you", "drink", "water", "[SEP]"]
    assert seg == [0] * 5 + [1] * 4
    single, seg1 = encode_pair(vocab, ["I", "like", "tea"])
    assert len(single) == 5 and seg1 == [0] * 5
    x, s, m = collate([(ids, seg), (single, seg1)])
    assert x.shape == s.shape == m.shape == (2, 9) and m.dtype == torch.bool
    assert m[1].tolist() == [True] * 5 + [False] * 4 and x[1, 5:].eq(vocab.pad_id).all() and s[1, 5:].eq(0).all()
    assert x[0].tolist() == ids and s[0].tolist() == seg and m[0].all()
    with pytest.raises(ValueError, match="segment ids"):
        collate([(ids, seg[:-1])])
    with pytest.raises(ValueError, match="at least one"):
        collate([])


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
    """The weights each layer returns, fed through the post-LN GELU layer by hand, give its output."""
    model = _model(device, dtype=torch.float64)
    x, s, m = _inputs(device)
    h = model.bert.embeddings(x, s)
    out, weights = model.bert.encoder(h, m, return_attention=True)
    for layer, w in zip(model.bert.encoder.layers, weights):
        attn = layer.self_attn
        B, T, D = h.shape
        v = attn.v_proj(h).view(B, T, attn.num_heads, D // attn.num_heads).transpose(1, 2)  # (B, H, T, Dh)
        mixed = (w @ v).transpose(1, 2).reshape(B, T, D)  # (B, H, T, Dh) -> (B, T, D)
        a = layer.norm1(h + attn.out_proj(mixed))
        by_hand = layer.norm2(a + layer.ff.linear2(F.gelu(layer.ff.linear1(a))))
        h, w_again = layer(h, key_padding_mask=m)
        torch.testing.assert_close(by_hand, h, **TOL64)
        torch.testing.assert_close(w_again, w, **TOL64)
    torch.testing.assert_close(h, out)
    out2, none = model.bert.encoder(model.bert.embeddings(x, s), m)
    assert none == [] and torch.equal(out, out2), "asking for weights does not change the output"


def test_training_mode_weights_are_the_ones_the_layer_used(device):
    """With attention dropout, the one pass's weights + the same dropout draw rebuild the layer's output.

    Only the attention weights are dropped here, so the layer's one random draw is F.dropout on them."""
    model = _model(device, BertModel, dtype=torch.float64).train()
    for layer in model.encoder.layers:
        layer.self_attn.dropout = 0.4
    x, s, m = _inputs(device)
    h = model.embeddings(x, s)
    for k, layer in enumerate(model.encoder.layers):
        attn = layer.self_attn
        B, T, D = h.shape
        torch.manual_seed(10 + k)
        out, w = layer(h, key_padding_mask=m)
        torch.manual_seed(10 + k)
        dropped = F.dropout(w, 0.4, training=True)  # the same draw as inside the layer
        assert not torch.equal(dropped, w), "dropout is on"
        v = attn.v_proj(h).view(B, T, attn.num_heads, D // attn.num_heads).transpose(1, 2)  # (B, H, T, Dh)
        a = layer.norm1(h + attn.out_proj((dropped @ v).transpose(1, 2).reshape(B, T, D)))
        by_hand = layer.norm2(a + layer.ff.linear2(F.gelu(layer.ff.linear1(a))))
        torch.testing.assert_close(by_hand, out, **TOL64)
        torch.testing.assert_close(w.sum(-1), torch.ones_like(w[..., 0]), msg="the softmax weights, before dropout")
        h = out


def test_one_attention_pass_per_layer_and_weights_do_not_change_training(device):
    """In training mode, asking for weights gives the same hidden states under the same seed, and every
    layer's attention runs exactly once per forward (no second pass to fetch the weights)."""
    model = _model(device, BertModel).train()
    for layer in model.encoder.layers:
        layer.self_attn.dropout = 0.3
    x, s, m = _inputs(device)
    calls = Counter()
    attention_modules = {name: mod for name, mod in model.named_modules() if isinstance(mod, MultiHeadAttention)}
    assert len(attention_modules) == 2
    hooks = [mod.register_forward_hook(lambda *_, name=name: calls.update([name]))
             for name, mod in attention_modules.items()]
    try:
        torch.manual_seed(3)
        with_weights = model(x, s, m, return_attention=True)
        assert calls == Counter({name: 1 for name in attention_modules}), f"one pass per layer, got {dict(calls)}"
        torch.manual_seed(3)
        without = model(x, s, m)
        assert calls == Counter({name: 2 for name in attention_modules}), f"one pass per layer, got {dict(calls)}"
    finally:
        for hook in hooks:
            hook.remove()
    assert len(with_weights.attentions) == 2 and without.attentions == []
    torch.testing.assert_close(with_weights.hidden, without.hidden, rtol=0, atol=0)
    torch.manual_seed(4)
    assert not torch.allclose(model(x, s, m).hidden, without.hidden), "another seed, other dropout: the test can fail"


def test_fused_attention_matches_the_readable_path(device, monkeypatch):
    """``fused=True`` runs F.scaled_dot_product_attention when no weights are asked for: same states, same
    gradients (float64, eval mode, with padding)."""
    torch.manual_seed(0)
    config = BertConfig.tiny(vocab_size=V)
    slow = BertForPreTraining(config).to(device, torch.float64).eval()
    fast = BertForPreTraining(replace(config, fused=True)).to(device, torch.float64).eval()
    fast.load_state_dict(slow.state_dict())
    x, s, m = _inputs(device)
    assert (~m).any()
    kernel_calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        kernel_calls.append(1)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", counting)
    outputs = {}
    for name, model in (("slow", slow), ("fast", fast)):
        before = len(kernel_calls)
        mlm, nsp, _ = model(x, s, m)
        outputs[name] = (model.bert(x, s, m).hidden, mlm, nsp)
        outputs[name] += torch.autograd.grad((mlm.square().mean() + nsp.square().sum()), list(model.parameters()))
        used = len(kernel_calls) - before
        assert used == (4 if name == "fast" else 0), f"{name}: {used} calls of the fused kernel"
    for a, b in zip(outputs["slow"], outputs["fast"]):
        torch.testing.assert_close(a, b, **TOL64)
    _, _, weights = fast(x, s, m, return_attention=True)
    _, _, reference = slow(x, s, m, return_attention=True)
    assert len(weights) == 2 and all(torch.allclose(a, b) for a, b in zip(weights, reference)), \
        "asking for weights takes the readable path, fused or not"


# ------------------------------------------------------------------------------------ against PyTorch
def test_gelu_encoder_layer_matches_pytorch(device):
    """One EncoderLayer(activation="gelu") equals nn.TransformerEncoderLayer(activation="gelu") with copied
    weights: outputs, input gradients and parameter gradients, float64, with a key-padding mask."""
    torch.manual_seed(0)
    D, H, Fdim, B, T = 12, 3, 20, 3, 6
    theirs = nn.TransformerEncoderLayer(D, H, Fdim, dropout=0.0, activation="gelu", batch_first=True,
                                        layer_norm_eps=1e-12, dtype=torch.float64).to(device)
    _randomise(theirs, seed=1)
    ours = EncoderLayer(D, H, Fdim, dropout=0.0, norm_first=False, eps=1e-12, activation="gelu")
    ours = ours.to(device, torch.float64)
    _copy_encoder_layer(ours, theirs)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(B, T, D, generator=gen, dtype=torch.float64).to(device).requires_grad_()
    keep = torch.arange(T, device=device) < torch.tensor([6, 4, 1], device=device).unsqueeze(1)  # (B, T)
    target = torch.randn(B, T, D, generator=gen, dtype=torch.float64).to(device)
    out, weights = ours(x, key_padding_mask=keep)
    ref = theirs(x, src_key_padding_mask=~keep)
    torch.testing.assert_close(out, ref, **TOL64)
    assert weights.shape == (B, H, T, T) and bool((weights[2, :, :, 1:] == 0).all()), "padded keys get weight 0"
    pairs = [(ours.self_attn.q_proj.weight, theirs.self_attn.in_proj_weight[:D]),
             (ours.self_attn.v_proj.bias, theirs.self_attn.in_proj_bias[2 * D:]),
             (ours.self_attn.out_proj.weight, theirs.self_attn.out_proj.weight),
             (ours.ff.linear1.weight, theirs.linear1.weight), (ours.norm2.bias, theirs.norm2.bias)]
    mine = torch.autograd.grad((out * target).sum(), [x, *(a for a, _ in pairs)])
    their_params = [theirs.self_attn.in_proj_weight, theirs.self_attn.in_proj_bias, theirs.self_attn.out_proj.weight,
                    theirs.linear1.weight, theirs.norm2.bias]
    grads = torch.autograd.grad((ref * target).sum(), [x, *their_params])
    torch.testing.assert_close(mine[0], grads[0], **TOL64)
    theirs_by_name = [grads[1][:D], grads[2][2 * D:], grads[3], grads[4], grads[5]]
    for a, b in zip(mine[1:], theirs_by_name):
        torch.testing.assert_close(a, b, **TOL64)
    assert not torch.allclose(ours(x, key_padding_mask=torch.ones_like(keep))[0], out), "the mask matters"


def test_bert_matches_a_reference_on_pytorch_layers(device):
    """The whole BertModel equals BERT built on nn.TransformerEncoderLayer with the same weights: hidden
    states, pooled vector and gradients of the embeddings (float64, with padding)."""
    torch.manual_seed(0)
    config = BertConfig.tiny(vocab_size=V)
    ours = BertModel(config).to(device, torch.float64).eval()
    reference = _ReferenceBert(config).to(device, torch.float64).eval()
    _randomise(reference, seed=5)
    ours.embeddings.load_state_dict(reference.embeddings.state_dict())
    ours.pooler.load_state_dict(reference.pooler.state_dict())
    for mine, theirs in zip(ours.encoder.layers, reference.layers):
        _copy_encoder_layer(mine, theirs)
    x, s, m = _inputs(device)
    out = ours(x, s, m)
    hidden, pooled = reference(x, s, m)
    torch.testing.assert_close(out.hidden[m], hidden[m], **TOL64)
    torch.testing.assert_close(out.pooled, pooled, **TOL64)
    g_ours = torch.autograd.grad(out.hidden[m].square().sum() + out.pooled.sum(), ours.embeddings.token.weight)[0]
    g_ref = torch.autograd.grad(hidden[m].square().sum() + pooled.sum(), reference.embeddings.token.weight)[0]
    torch.testing.assert_close(g_ours, g_ref, **TOL64)


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
    emb = BertEmbeddings(BertConfig.tiny(vocab_size=V)).to(device).eval()
    x, s, _ = _inputs(device)
    T = x.shape[1]
    total = emb.token.weight[x] + emb.segment.weight[s] + emb.position.weight[:T]
    torch.testing.assert_close(emb(x, s), F.layer_norm(total, (16,), emb.norm.weight, emb.norm.bias, 1e-12))


def test_gradcheck_embeddings_and_layer_norm(device):
    emb = BertEmbeddings(BertConfig.tiny(vocab_size=12, hidden_size=4, max_position=5))
    emb = emb.to(device=device, dtype=torch.float64)
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
    ids[:, 0] = BertVocab.cls_id
    ids[:, 20] = BertVocab.sep_id
    ids[:, 40:] = BertVocab.pad_id
    ids[::7, 10] = BertVocab.unk_id
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
    n_mask = int((shown == BertVocab.mask_id).sum())
    n_same = int((shown == ids[selected]).sum())
    p_same = 0.1 + 0.1 / (vocab_size - NS)  # a random word may be the same word
    close(n_mask, n_sel, 0.8, "[MASK]")
    close(n_same, n_sel, p_same, "unchanged")
    close(n_sel - n_mask - n_same, n_sel, 1 - 0.8 - p_same, "random")
    randoms = shown[(shown != BertVocab.mask_id) & (shown != ids[selected])]
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
    assert torch.all(masked[ordinary] == BertVocab.mask_id) and torch.all(labels[ordinary] == x[ordinary])
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


_OLD_TABLE = {  # the table bert.py kept before it derived the topics from the grammar
    **{w: "reading" for w in ("book", "books", "letter", "letters", "newspaper", "newspapers")},
    **{w: "food" for w in ("apple", "apples", "rice", "noodles")},
    **{w: "drink" for w in ("coffee", "tea", "water")},
    **{w: "subject" for w in ("learning", "mathematics", "history", "Chinese", "music")},
}


def _old_object_class(sentence):
    found = {_OLD_TABLE[w] for w in sentence if w in _OLD_TABLE}
    assert len(found) <= 1
    return found.pop() if found else None


def test_object_classes():
    assert object_class("she drinks tea every day".split()) == "drink"
    assert object_class("my friend reads the red book on the shelf".split()) == "reading"
    assert object_class("I watch movies".split()) is None
    assert OBJECT_TOPICS == _OLD_TABLE, "the topics derived from the grammar are the old table, word for word"
    assert set(CLASS_TOPICS.values()) == {"reading", "food", "drink", "subject"}
    sentences = [p.source for p in generate_sentences(20_000, seed=4)]
    found = [object_class(s) for s in sentences]
    assert found == [_old_object_class(s) for s in sentences]
    assert set(found) == {None, *OBJECT_TOPICS.values()}
    with pytest.raises(ValueError, match="several topics"):
        object_class("tea and books".split())


def test_pretraining_batch_layout(device):
    docs = generate_documents(400, 2, seed=0)
    vocab = BertVocab.build([s for d in docs for s in d])
    pairs = nsp_pairs(docs)[:8]
    batch = make_pretraining_batch(pairs, vocab, torch.Generator().manual_seed(0), device)
    assert batch.input_ids.shape == batch.mlm_labels.shape == batch.attention_mask.shape
    assert batch.nsp_labels.tolist() == [label for *_, label in pairs]
    assert torch.all(batch.input_ids[:, 0] == vocab.cls_id)
    assert torch.all(batch.token_type_ids[~batch.attention_mask] == 0)


# --------------------------------------------------------------------------------------- training
def test_short_pretraining_learns_and_fine_tuning_starts_from_it(device, one_thread):
    docs = generate_documents(900, 3, seed=0)
    vocab = BertVocab.build([s for d in docs for s in d])
    pairs = nsp_pairs(docs, seed=0)
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig.tiny(vocab_size=len(vocab), hidden_size=32, intermediate_size=64)).to(device)
    before = evaluate_pretraining(model, pairs[:200], vocab, seed=1)
    history = pretrain(model, pairs, vocab, steps=120, batch_size=32, lr=3e-3, warmup=10, log_every=40)
    after = evaluate_pretraining(model, pairs[:200], vocab, seed=1)
    assert not model.training, "pre-training leaves the model in evaluation mode"
    assert [r["step"] for r in history] == [40, 80, 120]
    assert all(set(r) == {"step", "mlm_loss", "nsp_loss", "mlm_accuracy", "nsp_accuracy"} for r in history)
    assert history[-1]["mlm_loss"] < history[0]["mlm_loss"]
    assert after.mlm_accuracy > before.mlm_accuracy + 0.1
    assert len(after.kinds) == len(after.targets) and set(after.kinds) <= {"mask", "random", "unchanged"}

    clf = BertForSequenceClassification.from_pretrained(model, 2)
    for a, b in zip(clf.bert.parameters(), model.bert.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr(), "a copy, not a shared tensor"
    sentences = [s for d in docs for s in d][:64]
    labels = [int("not" in s) for s in sentences]
    torch.manual_seed(0)  # the library never seeds the global generator: the caller does
    losses = train_classifier(clf, sentences, labels, vocab, epochs=8, lr=2e-3)
    assert len(losses) == 8 and not clf.training
    assert losses[-1] < losses[0]
    assert 0 <= classifier_accuracy(clf, sentences, labels, vocab) <= 1
    with pytest.raises(ValueError):
        train_classifier(clf, sentences, labels[:3], vocab)


def test_pretraining_records_and_no_global_seeding(one_thread, monkeypatch):
    """One record per ``log_every`` steps (the last one shorter) with the means over those steps; the
    library never seeds the global generator (the caller does, and the same seed gives the same run)."""
    docs = generate_documents(300, 2, seed=0)
    vocab = BertVocab.build([s for d in docs for s in d])
    pairs = nsp_pairs(docs, seed=0)
    config = BertConfig.tiny(vocab_size=len(vocab), dropout=0.1)

    def forbidden(*_):
        raise AssertionError("library code seeds the global random generator")

    def run(log_every):
        torch.manual_seed(0)
        model = BertForPreTraining(config)
        with monkeypatch.context() as patch:
            patch.setattr(torch, "manual_seed", forbidden)
            history = pretrain(model, pairs, vocab, steps=5, batch_size=8, log_every=log_every, progress=False)
            clf = BertForSequenceClassification.from_pretrained(model, 2)
            sentences = [s for d in docs for s in d][:16]
            losses = train_classifier(clf, sentences, [0, 1] * 8, vocab, epochs=2, progress=False)
        return model, history, losses

    model, history, losses = run(2)
    assert [r["step"] for r in history] == [2, 4, 5]
    model_again, every_step, losses_again = run(1)
    assert [r["step"] for r in every_step] == [1, 2, 3, 4, 5]
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), model_again.parameters())), \
        "the same global seed gives the same run"
    assert losses == losses_again and len(losses) == 2
    for name in ("mlm_loss", "nsp_loss", "nsp_accuracy"):
        assert history[0][name] == pytest.approx((every_step[0][name] + every_step[1][name]) / 2), name
        assert history[2][name] == pytest.approx(every_step[4][name]), name
    assert all(0 <= r["mlm_accuracy"] <= 1 and 0 <= r["nsp_accuracy"] <= 1 for r in history)
