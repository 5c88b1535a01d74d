"""Alignment error rate and attention-to-links, against hand-computed values."""
import pytest
import torch

from solutions.metrics import alignment_error_rate, alignment_scores, links_from_attention
from solutions.data import Pair


def pair(sure, possible=()):
    sure = frozenset(sure)
    return Pair(("a", "b", "c"), ("x", "y", "z"), sure, sure | frozenset(possible), "a b c", "xyz")


def test_aer_by_hand():
    gold = [pair({(0, 0), (1, 1)}, {(1, 2)})]
    scores = alignment_scores([{(0, 0), (1, 2), (2, 1)}], gold)
    # |A ∩ S| = 1, |A ∩ P| = 2, |A| = 3, |S| = 2: AER = 1 - 3/5, precision 2/3, recall 1/2
    assert scores.aer == pytest.approx(0.4)
    assert scores.precision == pytest.approx(2 / 3) and scores.recall == pytest.approx(0.5)


def test_perfect_and_empty_alignments():
    gold = [pair({(0, 0), (1, 1)}, {(2, 2)}), pair({(2, 0)})]
    assert alignment_error_rate([{(0, 0), (1, 1)}, {(2, 0)}], gold) == 0.0
    assert alignment_error_rate([{(0, 0), (1, 1), (2, 2)}, {(2, 0)}], gold) == 0.0, "possible links cost nothing"
    assert alignment_error_rate([set(), set()], gold) == 1.0


def test_aer_is_pooled_over_the_corpus_not_averaged():
    gold = [pair({(0, 0)}), pair({(0, 0), (1, 1), (2, 2)})]
    # sentence 1 wrong (0 of 1), sentence 2 right (3 of 3): pooled 1 - 6/8, not the mean of 1 and 0
    assert alignment_error_rate([{(1, 0)}, {(0, 0), (1, 1), (2, 2)}], gold) == pytest.approx(0.25)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2 predicted alignments but 1 gold"):
        alignment_error_rate([set(), set()], [pair({(0, 0)})])
    with pytest.raises(ValueError, match="outside"):
        alignment_error_rate([{(3, 0)}], [pair({(0, 0)})])


def test_links_from_attention(device):
    weights = torch.tensor([[0.7, 0.2, 0.1, 0.0],   # target 0 -> source 0
                            [0.1, 0.1, 0.8, 0.0],   # target 1 -> source 2
                            [0.0, 0.0, 0.0, 1.0]],  # EOS row, attends to the EOS column
                           device=device)
    assert links_from_attention(weights) == {(0, 0), (2, 1), (3, 2)}
    assert links_from_attention(weights, source_len=3, target_len=2) == {(0, 0), (2, 1)}
    assert links_from_attention(torch.zeros(2, 3, device=device)) == set(), "a row without weight links nothing"
    with pytest.raises(ValueError, match="crop"):
        links_from_attention(weights, source_len=9)


def test_links_from_attention_with_a_null_column(device):
    """A row whose largest weight is on the EOS column links nothing, like a word given to the empty word."""
    weights = torch.tensor([[0.7, 0.2, 0.0, 0.1],   # target 0 -> source 0
                            [0.1, 0.1, 0.2, 0.6],   # target 1: EOS has the most weight -> no link
                            [0.0, 0.3, 0.4, 0.3]],  # target 2 -> source 2 (EOS is not the largest)
                           device=device)
    assert links_from_attention(weights, source_len=3) == {(0, 0), (2, 1), (2, 2)}, "without it every row links"
    assert links_from_attention(weights, source_len=3, null_column=3) == {(0, 0), (2, 2)}
    with pytest.raises(ValueError, match="null_column"):
        links_from_attention(weights, source_len=3, null_column=1)  # a real token cannot be the null column
