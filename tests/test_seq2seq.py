"""The shared encoder-decoder machinery: encoder, teacher forcing, loss, training, greedy decoding, evaluation."""
import pytest
import torch
from torch import nn

from solutions.data import Vocab, sentence_pair
from solutions.attention import attention
from solutions.history.seq2seq import (Evaluation, RNNEncoder, accuracy_by, evaluate, greedy_decode, sequence_loss,
                                     teacher_forced_scores, teacher_forcing, train_seq2seq)
from solutions.train import count_parameters

EOS, BOS = Vocab.eos_id, Vocab.bos_id


class TinyTranslator(nn.Module):
    """The smallest attention model for these tests: RNNEncoder + GRU cell + dot-product attention."""

    def __init__(self, src_vocab: int, tgt_vocab: int, dim: int = 16, attend: bool = True):
        super().__init__()
        self.encoder = RNNEncoder(src_vocab, dim, dim // 2)
        self.embedding = nn.Embedding(tgt_vocab, dim)
        self.cell = nn.GRUCell(2 * dim, dim)
        self.out = nn.Linear(2 * dim, tgt_vocab)
        self.attend = attend

    def encode(self, src, src_lens):
        annotations, final = self.encoder(src, src_lens)
        keep = torch.arange(src.shape[1], device=src.device) < src_lens.unsqueeze(1)  # (B, S)
        return annotations, keep, final

    def step(self, prev, state):
        annotations, keep, hidden = state
        if self.attend:
            context, weights = attention(hidden.unsqueeze(1), annotations, annotations, mask=keep.unsqueeze(1))
            context, weights = context.squeeze(1), weights.squeeze(1)
        else:
            context, weights = annotations.new_zeros(hidden.shape), None
        hidden = self.cell(torch.cat([self.embedding(prev), context], -1), hidden)
        return self.out(torch.cat([hidden, context], -1)), weights, (annotations, keep, hidden)


class Scripted(nn.Module):
    """Emits a fixed sequence of tokens per example, whatever the input; uniform attention."""

    def __init__(self, scripts, vocab=10):
        super().__init__()
        self.scripts, self.vocab = scripts, vocab
        self.dummy = nn.Parameter(torch.zeros(()))

    def encode(self, src, src_lens):
        return (src_lens, 0)

    def step(self, prev, state):
        src_lens, t = state
        logits = torch.zeros(len(self.scripts), self.vocab)
        for b, script in enumerate(self.scripts):
            logits[b, script[t] if t < len(script) else 5] = 1.0
        keep = (torch.arange(int(src_lens.max())) < src_lens.unsqueeze(1)).float()  # (B, S)
        return logits, keep / keep.sum(-1, keepdim=True), (src_lens, t + 1)


def test_encoder_shapes_padding_and_packing(device):
    torch.manual_seed(0)
    encoder = RNNEncoder(vocab_size=12, embed_dim=8, hidden_dim=5).to(device)
    src = torch.tensor([[4, 5, 6, EOS], [7, EOS, 0, 0]], device=device)
    lens = torch.tensor([4, 2], device=device)
    annotations, final = encoder(src, lens)
    assert annotations.shape == (2, 4, 10) and final.shape == (2, 10)
    assert torch.all(annotations[1, 2:] == 0), "padding positions get zero annotations"
    alone, alone_final = encoder(src[1:, :2], lens[1:])
    torch.testing.assert_close(annotations[1:, :2], alone)
    torch.testing.assert_close(final[1:], alone_final)
    # the final state is the last forward state and the first backward state
    torch.testing.assert_close(final[:, :5], annotations[torch.arange(2), lens - 1, :5])
    torch.testing.assert_close(final[:, 5:], annotations[:, 0, 5:])
    with pytest.raises(ValueError, match="length 0"):
        encoder(src, torch.tensor([4, 0], device=device))
    with pytest.raises(ValueError, match=r"src_lens must be \(B,\)"):
        encoder(src, torch.tensor([4], device=device))


def test_sequence_loss_ignores_padding():
    logits = torch.randn(2, 3, 7)
    targets = torch.tensor([[4, 5, EOS], [6, EOS, 0]])
    flat = [nn.functional.cross_entropy(logits[b, t], targets[b, t], reduction="sum") for b, t in
            [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]]
    torch.testing.assert_close(sequence_loss(logits, targets), torch.stack(flat).sum() / 5)
    with pytest.raises(ValueError, match="disagree"):
        sequence_loss(logits, targets[:, :2])


def test_greedy_decoding_stops_at_eos_and_at_max_len():
    model = Scripted([[4, 5, EOS], [6, 6, 6, 6, 6, 6], [EOS]])
    src = torch.tensor([[4, EOS], [5, EOS], [EOS, 0]])
    out = greedy_decode(model, src, torch.tensor([2, 2, 1]), max_len=4)
    assert out.tokens == [[4, 5], [6, 6, 6, 6], []]
    assert out.finished == [True, False, True]
    assert [tuple(w.shape) for w in out.weights] == [(3, 2), (4, 2), (1, 1)], "one row per step, EOS step included"
    assert torch.allclose(out.weights[2], torch.ones(1, 1)), "an empty sentence ([EOS]) attends to its EOS"
    exact = greedy_decode(Scripted([[4, 4, EOS]]), src[:1], torch.tensor([2]), max_len=2)
    assert exact.tokens == [[4, 4]] and exact.finished == [True], "EOS right after max_len tokens still counts"


def test_greedy_decoding_refuses_bad_input():
    model = Scripted([[EOS]])
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode(model, torch.tensor([[EOS]]), torch.tensor([1]), max_len=0)
    with pytest.raises(ValueError, match="length 0"):
        greedy_decode(model, torch.tensor([[EOS]]), torch.tensor([0]), max_len=3)
    with pytest.raises(ValueError, match="empty"):
        greedy_decode(model, torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, dtype=torch.long), max_len=3)


@pytest.fixture(scope="module")
def dates(make_dates):
    return make_dates(600, seed=5)


def test_training_learns_and_is_deterministic(device, dates):
    train, valid, _ = dates
    histories, accuracies = [], []
    for _ in range(2):
        torch.manual_seed(0)
        model = TinyTranslator(len(train.src_vocab), len(train.tgt_vocab)).to(device)
        before = evaluate(model, valid)
        histories.append(train_seq2seq(model, train, epochs=3, batch_size=32, lr=1e-2, seed=1))
        accuracies.append(evaluate(model, valid))
    if device.type == "cpu":
        assert histories[0] == histories[1], "same seed, same run"
    losses = [h["loss"] for h in histories[0]]
    assert losses[-1] < 0.8 * losses[0], losses
    assert before.accuracy == 0.0
    # three epochs teach the words, not yet the alignment (AER 0.74 measured): check the links' bookkeeping
    # instead — one argmax link per target word (EOS row dropped), scored against every gold sure link
    scores = accuracies[0].alignment
    assert scores.predicted == sum(len(p.target) for p in valid.pairs)
    assert scores.sure == sum(len(p.alignment) for p in valid.pairs)


def test_early_stopping_on_the_validation_loss(device, dates):
    train, valid, _ = dates
    with pytest.raises(ValueError, match="valid"):
        train_seq2seq(TinyTranslator(len(train.src_vocab), len(train.tgt_vocab)), train, epochs=2, patience=1)
    torch.manual_seed(0)
    model = TinyTranslator(len(train.src_vocab), len(train.tgt_vocab)).to(device)
    untrained = teacher_forced_scores(model, valid)[1]
    # one batch by hand: the mean over its non-padding target tokens
    batch = next(valid.batches(len(valid))).to(device)
    with torch.no_grad():
        logits, _ = teacher_forcing(model, batch.src, batch.src_lens, batch.tgt_in)
    assert untrained == pytest.approx(sequence_loss(logits, batch.tgt_out).item(), rel=1e-5)
    # lr 0.2 makes Adam diverge after a few good steps: the validation loss stops improving early
    history = train_seq2seq(model, train, epochs=12, batch_size=32, lr=0.2, seed=1, valid=valid, patience=2)
    losses = [h["valid_loss"] for h in history]
    best = min(range(len(losses)), key=losses.__getitem__)
    assert len(history) == best + 3 <= 12, f"two epochs without improvement after the best, then stop: {losses}"
    assert teacher_forced_scores(model, valid)[1] == pytest.approx(losses[best], rel=1e-5), "the best weights are restored"
    assert all("valid_accuracy" in h for h in history)
    # on the validation exact match (higher is better): a diverging model stays at 0, so the first epoch is the best
    with pytest.raises(ValueError, match="monitor"):
        train_seq2seq(model, train, epochs=2, valid=valid, patience=1, monitor="accuracy")
    torch.manual_seed(0)
    model = TinyTranslator(len(train.src_vocab), len(train.tgt_vocab)).to(device)
    history = train_seq2seq(model, train, epochs=12, batch_size=32, lr=0.2, seed=1, valid=valid, patience=1,
                            monitor="valid_accuracy")
    assert [h["valid_accuracy"] for h in history] == [0.0, 0.0], "no rise after epoch 1: stop after epoch 2"


def test_teacher_forcing_and_evaluation_shapes(device, dates):
    train, valid, _ = dates
    torch.manual_seed(0)
    model = TinyTranslator(len(train.src_vocab), len(train.tgt_vocab)).to(device)
    batch = next(valid.batches(8)).to(device)
    logits, weights = teacher_forcing(model, batch.src, batch.src_lens, batch.tgt_in)
    assert logits.shape == (*batch.tgt_in.shape, len(train.tgt_vocab))
    assert weights.shape == (*batch.tgt_in.shape, batch.src.shape[1])
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights[..., 0]))
    padded = torch.arange(batch.src.shape[1], device=device) >= batch.src_lens[:, None, None]
    assert torch.all(weights.masked_select(padded) == 0), "padding gets no attention"
    result = evaluate(model, valid)
    assert len(result.predictions) == len(valid) and len(result.weights) == len(valid)
    # EOS as the empty word: a word whose largest weight is on EOS loses its link, so recall cannot rise
    with_null = evaluate(model, valid, eos_as_null=True)
    assert with_null.predictions == result.predictions, "the option changes the links only"
    assert with_null.alignment.recall <= result.alignment.recall
    blind = TinyTranslator(len(train.src_vocab), len(train.tgt_vocab), attend=False).to(device)
    assert evaluate(blind, valid).alignment is None, "no attention, no alignment"
    assert count_parameters(blind) == sum(p.numel() for p in blind.parameters())


def test_accuracy_by_groups():
    pairs = [sentence_pair("I love machine learning"), sentence_pair("I love tea"), sentence_pair("I love coffee")]
    result = Evaluation(pairs, [p.target for p in pairs], [True, False, True], 2 / 3, None, [None] * 3)
    assert accuracy_by(result) == {3: (2, 0.5), 4: (1, 1.0)}
