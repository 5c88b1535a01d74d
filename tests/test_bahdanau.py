"""Tests for solutions.history.bahdanau: RNNsearch (additive attention decoder) and the RNNencdec baseline."""
from types import SimpleNamespace

import pytest
import torch

from solutions.history.bahdanau import (AttentionState, BahdanauConfig, DeepOutput, RNNencdec, RNNsearch, additive_attention, alignment_energies, initial_state, project_annotations)
from solutions.data import TranslationData, Vocab
from solutions.train import count_parameters
from solutions.history.seq2seq import evaluate, greedy_decode, teacher_forcing, train_seq2seq

EOS, BOS = Vocab.eos_id, Vocab.bos_id
MODELS = [RNNsearch, RNNencdec]


def _model(cls, device, dtype=torch.float32, seed=0, **sizes):
    torch.manual_seed(seed)
    config = BahdanauConfig.tiny() if not sizes else BahdanauConfig(11, 13, **sizes)
    return cls(config).to(device=device, dtype=dtype).eval()


def _batch(device):
    """Three sources of lengths 4, 2 and 1 (the last one is the empty sentence [EOS]), and gold targets."""
    src = torch.tensor([[4, 5, 6, EOS], [7, EOS, 0, 0], [EOS, 0, 0, 0]], device=device)
    src_lens = torch.tensor([4, 2, 1], device=device)
    tgt_in = torch.tensor([[BOS, 4, 5, 6], [BOS, 7, 8, 0], [BOS, 0, 0, 0]], device=device)
    return src, src_lens, tgt_in


# --------------------------------------------------------------------------- config
def test_config_defaults_tiny_and_errors():
    config = BahdanauConfig(30, 40)
    assert (config.embed_dim, config.hidden_dim, config.align_dim, config.output_dim) == (64, 64, 64, 64)
    assert config.maxout and config.dropout == 0.0
    tiny = BahdanauConfig.tiny()
    assert max(tiny.embed_dim, tiny.hidden_dim, tiny.align_dim, tiny.output_dim) < 8
    with pytest.raises(ValueError, match="hidden_dim must be a positive integer"):
        BahdanauConfig(30, 40, hidden_dim=0)
    with pytest.raises(ValueError, match="dropout"):
        BahdanauConfig(30, 40, dropout=1.0)


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("cls", MODELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_shapes_and_dtypes(device, cls, dtype):
    model = _model(cls, device, dtype)
    src, src_lens, _ = _batch(device)
    state = model.encode(src, src_lens)
    assert state.hidden.shape == (3, 5) and state.hidden.dtype == dtype
    logits, weights, state = model.step(torch.full((3,), BOS, device=device), state)
    assert logits.shape == (3, 13) and logits.dtype == dtype and logits.device.type == device.type
    assert state.hidden.shape == (3, 5)
    if cls is RNNsearch:
        assert weights.shape == (3, 4)
        assert state.annotations.shape == (3, 4, 10) and state.projected.shape == (3, 4, 4)
    else:
        assert weights is None, "the encoder-decoder without attention has no weights"
        assert state.context.shape == (3, 10)


@pytest.mark.parametrize("cls", MODELS)
def test_step_refuses_a_wrong_batch(device, cls):
    model = _model(cls, device)
    src, src_lens, _ = _batch(device)
    state = model.encode(src, src_lens)
    with pytest.raises(ValueError, match=r"prev_tokens must be \(B,\) = \(3,\)"):
        model.step(torch.tensor([BOS, BOS], device=device), state)
    with pytest.raises(ValueError, match="length 0"):
        model.encode(src, torch.tensor([4, 0, 1], device=device))


# --------------------------------------------------------------------------- attention properties
def test_weights_sum_to_one_and_are_zero_on_padding(device):
    model = _model(RNNsearch, device)
    src, src_lens, tgt_in = _batch(device)
    _, weights = teacher_forcing(model, src, src_lens, tgt_in)  # (B, T, S)
    assert weights.shape == (3, 4, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, device=device))
    padding = torch.arange(4, device=device) >= src_lens[:, None, None]  # (B, 1, S)
    assert torch.all(weights.masked_select(padding.expand_as(weights)) == 0), "padding gets exactly 0"
    assert torch.all(weights[2, :, 0] == 1), "the empty sentence [EOS] puts all its weight on EOS"
    assert torch.all(weights[~padding.expand_as(weights)] > 0), "a softmax gives every real position some weight"


@pytest.mark.parametrize("cls", MODELS)
def test_padded_batch_equals_each_example_alone(device, cls):
    model = _model(cls, device, torch.float64)
    src, src_lens, tgt_in = _batch(device)
    logits, weights = teacher_forcing(model, src, src_lens, tgt_in)
    for b in range(3):
        n = int(src_lens[b])
        alone_logits, alone_weights = teacher_forcing(model, src[b:b + 1, :n], src_lens[b:b + 1], tgt_in[b:b + 1])
        torch.testing.assert_close(logits[b:b + 1], alone_logits)
        if cls is RNNsearch:
            torch.testing.assert_close(weights[b:b + 1, :, :n], alone_weights)


def test_step_attention_equals_equations_5_and_6_by_hand(device):
    model = _model(RNNsearch, device, torch.float64)
    src, src_lens, _ = _batch(device)
    state = model.encode(src, src_lens)
    # one step so that s_{i-1} is not s_0
    _, _, state = model.step(torch.tensor([BOS, BOS, BOS], device=device), state)
    prev = torch.tensor([4, 7, 5], device=device)
    logits, weights, new_state = model.step(prev, state)

    W_a, U_a, v_a = model.score.w_query, model.score.w_key, model.score.v
    for b in range(3):
        s, h, n = state.hidden[b], state.annotations[b], int(src_lens[b])
        e = torch.stack([v_a @ torch.tanh(W_a @ s + U_a @ h[j]) for j in range(n)])  # A.1.2
        alpha = torch.exp(e) / torch.exp(e).sum()  # eq. (6), over the real positions only
        c = sum(alpha[j] * h[j] for j in range(n))  # eq. (5)
        torch.testing.assert_close(weights[b, :n], alpha)
        assert torch.all(weights[b, n:] == 0)
        # eq. (4): the new state reads [E y_{i-1} ; c_i]; the output layer reads (s_i, E y_{i-1}, c_i)
        emb = model.embedding(prev[b:b + 1])
        s_new = model.cell(torch.cat([emb, c[None]], -1), s[None])
        torch.testing.assert_close(new_state.hidden[b:b + 1], s_new)
        torch.testing.assert_close(logits[b:b + 1], model.output(s_new, emb, c[None]))
    assert new_state.annotations is state.annotations and new_state.projected is state.projected


def test_precomputed_energies_equal_the_additive_score(device):
    model = _model(RNNsearch, device, torch.float64)
    gen = torch.Generator().manual_seed(1)
    annotations = torch.randn(2, 6, 10, generator=gen, dtype=torch.float64).to(device)
    state = torch.randn(2, 5, generator=gen, dtype=torch.float64).to(device)
    projected = project_annotations(model.score, annotations)
    torch.testing.assert_close(projected, annotations @ model.score.w_key.T)
    reference = model.score(state.unsqueeze(1), annotations).squeeze(1)  # solutions.attention.scores.AdditiveScore
    torch.testing.assert_close(alignment_energies(state, projected, model.score), reference)
    with pytest.raises(ValueError, match=r"state must be \(B, N\) with N = 5"):
        alignment_energies(torch.zeros(2, 4, dtype=torch.float64, device=device), projected, model.score)
    with pytest.raises(ValueError, match=r"annotations must be \(B, S, D\) with D = 10"):
        project_annotations(model.score, annotations[..., :8])
    with pytest.raises(ValueError, match="must agree on"):
        additive_attention(state, annotations, projected, torch.ones(2, 5, dtype=torch.bool, device=device),
                           model.score)


def test_initial_state_reads_the_first_backward_state(device):
    model = _model(RNNsearch, device, torch.float64)
    src, src_lens, _ = _batch(device)
    state = model.encode(src, src_lens)
    _, final = model.encoder(src, src_lens)  # (B, 2H): [h→_last ; h←_1]
    expected = torch.tanh(final[:, 5:] @ model.init_state.weight.T + model.init_state.bias)
    torch.testing.assert_close(state.hidden, expected)
    torch.testing.assert_close(initial_state(state.annotations, model.init_state), expected)
    with pytest.raises(ValueError, match="bidirectional"):
        initial_state(state.annotations[..., :9], model.init_state)


def test_deep_output_maxout_and_tanh(device):
    torch.manual_seed(0)
    for maxout in (True, False):
        layer = DeepOutput(3, 2, 4, output_dim=5, vocab_size=7, maxout=maxout).to(device)
        s, y, c = torch.randn(6, 3, device=device), torch.randn(6, 2, device=device), torch.randn(6, 4, device=device)
        pre = layer.hidden(torch.cat([s, y, c], -1))
        t = torch.maximum(pre[:, 0::2], pre[:, 1::2]) if maxout else torch.tanh(pre)
        assert pre.shape == (6, 10 if maxout else 5)
        torch.testing.assert_close(layer(s, y, c), layer.out(t))


# --------------------------------------------------------------------------- gradients
def test_gradcheck_of_a_step_wrt_annotations_and_state(device):
    model = _model(RNNsearch, device, torch.float64)
    src, src_lens, _ = _batch(device)
    with torch.no_grad():
        state = model.encode(src, src_lens)
    prev = torch.tensor([4, 7, 5], device=device)
    annotations = state.annotations.clone().requires_grad_(True)
    hidden = state.hidden.clone().requires_grad_(True)

    def one_step(annotations, hidden):
        projected = project_annotations(model.score, annotations)
        logits, weights, new = model.step(prev, AttentionState(annotations, projected, state.mask, hidden))
        return logits, weights, new.hidden

    assert torch.autograd.gradcheck(one_step, (annotations, hidden))


def test_gradcheck_of_the_attention_wrt_inputs_and_parameters(device):
    gen = torch.Generator().manual_seed(2)
    state, annotations, w_query, w_key, v = (
        torch.randn(*shape, generator=gen, dtype=torch.float64).to(device).requires_grad_(True)
        for shape in [(2, 5), (2, 4, 10), (4, 5), (4, 10), (4,)])
    mask = torch.tensor([[True] * 4, [True, True, False, False]], device=device)

    def attend(state, annotations, w_query, w_key, v):
        # the functions only read these attributes of the score module, so plain tensors can stand in
        score = SimpleNamespace(w_query=w_query, w_key=w_key, v=v, query_dim=5, key_dim=10, hidden_dim=4)
        return additive_attention(state, annotations, project_annotations(score, annotations), mask, score)

    assert torch.autograd.gradcheck(attend, (state, annotations, w_query, w_key, v))


# --------------------------------------------------------------------------- greedy decoding
def _force(model, token):
    """Make ``token`` the most likely output at every step, whatever the input."""
    with torch.no_grad():
        model.output.out.bias.zero_()
        model.output.out.bias[token] = 1e4


@pytest.mark.parametrize("cls", MODELS)
def test_greedy_decoding_stops_at_eos_and_at_max_len(device, cls):
    model = _model(cls, device)
    src, src_lens, _ = _batch(device)
    _force(model, EOS)
    out = greedy_decode(model, src, src_lens, max_len=5)
    assert out.tokens == [[], [], []] and out.finished == [True] * 3
    _force(model, 6)
    out = greedy_decode(model, src, src_lens, max_len=5)
    assert out.tokens == [[6] * 5] * 3 and out.finished == [False] * 3
    if cls is RNNsearch:
        assert [tuple(w.shape) for w in out.weights] == [(5, 4), (5, 2), (5, 1)], "one row per step, cropped"
        for w in out.weights:
            torch.testing.assert_close(w.sum(-1), torch.ones(5))
    else:
        assert out.weights == [None] * 3


def test_greedy_decoding_of_an_untrained_model(device):
    model = _model(RNNsearch, device)
    src, src_lens, _ = _batch(device)
    out = greedy_decode(model, src, src_lens, max_len=7)
    for tokens, weights, finished in zip(out.tokens, out.weights, out.finished):
        assert len(tokens) <= 7 and weights.shape[0] == len(tokens) + finished, "a row per step, EOS step included"


def test_empty_sentence(device):
    model = _model(RNNsearch, device)
    src, src_lens = torch.tensor([[EOS]], device=device), torch.tensor([1], device=device)
    _force(model, 6)
    out = greedy_decode(model, src, src_lens, max_len=3)
    assert out.tokens == [[6, 6, 6]]
    torch.testing.assert_close(out.weights[0], torch.ones(3, 1), msg="[EOS] alone gets all the weight")


# --------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def dates(make_dates):
    return make_dates(500, seed=3)


def test_short_training_lowers_the_loss_and_translates(device, dates, one_thread):
    train, valid, _ = dates
    seen = TranslationData(train.pairs[:200], train.src_vocab, train.tgt_vocab)
    torch.manual_seed(0)
    config = BahdanauConfig(len(train.src_vocab), len(train.tgt_vocab), embed_dim=32, hidden_dim=32,
                            align_dim=32, output_dim=32)
    model = RNNsearch(config).to(device)
    before = evaluate(model, seen)
    history = train_seq2seq(model, train, epochs=12, batch_size=32, lr=1e-2, seed=0)
    after = evaluate(model, seen)
    losses = [r["loss"] for r in history]
    assert losses[-1] < 0.25 * losses[0], losses
    assert before.accuracy == 0.0 and after.accuracy >= 0.5, after.accuracy
    # 400 dates do not show every year, so held-out accuracy stays low; it must still rise above 0
    assert evaluate(model, valid).accuracy > 0
    assert after.alignment.aer < before.alignment.aer, (before.alignment, after.alignment)


def test_rnnencdec_has_no_alignment_and_a_fixed_context(device, dates):
    train, valid, _ = dates
    model = RNNencdec(BahdanauConfig.tiny(src_vocab=len(train.src_vocab), tgt_vocab=len(train.tgt_vocab))).to(device)
    assert evaluate(model, valid).alignment is None
    src, src_lens, _ = _batch(device)
    state = model.encode(src, src_lens)
    _, final = model.encoder(src, src_lens)
    torch.testing.assert_close(state.context, final)
    for token in (BOS, 4, 5):
        _, weights, next_state = model.step(torch.full((3,), token, device=device), state)
        assert weights is None and next_state.context is state.context
        state = next_state
    searcher = RNNsearch(BahdanauConfig.tiny(src_vocab=len(train.src_vocab), tgt_vocab=len(train.tgt_vocab)))
    assert count_parameters(searcher) != count_parameters(model)
