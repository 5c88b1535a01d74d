"""solutions.grading: each check the hidden tests rely on can fail, and can pass.

* a learner's function that runs the reference (import, alias, wrapper, importlib, sys.modules, a copied code
  object, a call hidden in a try block) is caught; one written from torch alone is not;
* forbidden torch functions are caught in each of their spellings, and only the families a task forbids;
* the memory probe sees a (Tq, Tk) allocation and not a view; it counts operations;
* a one-pass stream catches an answer that stores it first;
* the isolation rebinds and restores the notebook's names, and lets the references it put in place through.
"""
from __future__ import annotations

import importlib
import math
import sys
import types

import pytest
import torch
import torch.nn.functional as F

from solutions import grading
from solutions.attention import attention
from solutions.fast import chunked_attention
from solutions.grading import end_isolation, isolated, one_pass, run_answer


def chunked_by_hand(query, key, value, chunk=4):
    """Memory-efficient attention written from torch alone (the kind of answer that must pass)."""
    m = torch.full(query.shape[:-1], -math.inf, dtype=query.dtype)
    total = torch.zeros(query.shape[:-1], dtype=query.dtype)
    out = torch.zeros(query.shape[:-1] + value.shape[-1:], dtype=query.dtype)
    for j in range(0, key.shape[-2], chunk):
        s = query @ key[..., j:j + chunk, :].transpose(-2, -1) / math.sqrt(query.shape[-1])
        m_new = torch.maximum(m, s.amax(-1))
        p = torch.exp(s - m_new.unsqueeze(-1))
        rescale = torch.exp(m - m_new)
        total = total * rescale + p.sum(-1)
        out = out * rescale.unsqueeze(-1) + p @ value[..., j:j + chunk, :]
        m = m_new
    return out / total.unsqueeze(-1)


def qkv(Tq=6, Tk=12, D=4):
    gen = torch.Generator().manual_seed(0)
    return (torch.randn(2, Tq, D, generator=gen), torch.randn(2, Tk, D, generator=gen),
            torch.randn(2, Tk, 3, generator=gen))


# ------------------------------------------------------------------------------------ the reference
def test_an_answer_written_from_torch_passes():
    q, k, v = qkv()
    out, trace = run_answer("exercise 2", chunked_by_hand, q, k, v)
    assert not trace.references and not trace.forbidden
    assert torch.allclose(out, attention(q, k, v)[0], atol=1e-6)


ALIAS = chunked_attention


def via_import(q, k, v):
    from solutions.fast import chunked_attention as mine
    return mine(q, k, v)


def via_alias(q, k, v):
    return ALIAS(q, k, v)


def via_importlib(q, k, v):
    return importlib.import_module("solutions.fast.chunked").chunked_attention(q, k, v)


def via_sys_modules(q, k, v):
    return sys.modules["solutions.attention"].attention(q, k, v)[0]


def via_copied_code(q, k, v):
    copy = types.FunctionType(chunked_attention.__code__, chunked_attention.__globals__, "mine",
                              chunked_attention.__defaults__)
    copy.__kwdefaults__ = chunked_attention.__kwdefaults__
    return copy(q, k, v)


def via_hidden_try(q, k, v):
    try:
        attention(q, k, v)  # the result is thrown away: still a call of the reference
    except Exception:
        pass
    return chunked_by_hand(q, k, v)


@pytest.mark.parametrize("answer", [via_import, via_alias, via_importlib, via_sys_modules, via_copied_code,
                                    via_hidden_try, chunked_attention], ids=lambda f: f.__name__)
def test_an_answer_that_runs_the_reference_is_caught(answer):
    q, k, v = qkv()
    with pytest.raises(AssertionError, match=r"^exercise 2: your answer runs the course's reference") as info:
        run_answer("exercise 2", answer, q, k, v)
    assert "solutions." in str(info.value), "the message names what was called"
    assert sys.getprofile() is None, "the profile hook is removed afterwards"


def test_a_wrapper_defined_in_the_notebook_is_caught():
    namespace = {}
    exec("from solutions.fast import chunked_attention as fast\n"
         "def attend(q, k, v):\n    return fast(q, k, v)\n", namespace)
    with pytest.raises(AssertionError, match="reference implementation"):
        run_answer("exercise 2", namespace["attend"], *qkv())


def test_what_the_test_hands_over_may_run_the_reference():
    q, k, v = qkv()
    from solutions.attention.scores import AdditiveScore
    score = AdditiveScore(4, 4, 5)

    def attend(q, k, v, score_fn):  # a learner's function that calls the score module it was given
        weights = torch.exp(score_fn(q, k))
        return (weights / weights.sum(-1, keepdim=True)) @ v

    with pytest.raises(AssertionError, match="reference"):
        run_answer("exercise 7", attend, q, k, v, score)
    out, _ = run_answer("exercise 7", attend, q, k, v, score, allow=[score])
    assert out.shape == (2, 6, 3)


def test_the_reference_outside_the_answer_is_not_counted():
    q, k, v = qkv()
    expected = attention(q, k, v)[0]  # the test's own call, before
    out, trace = run_answer("exercise 2", chunked_by_hand, q, k, v)
    assert torch.allclose(out, expected, atol=1e-6) and trace.references == []


# ------------------------------------------------------------------------------------ forbidden functions
FORBIDDEN_SPELLINGS = {
    "softmax": [lambda x: torch.softmax(x, -1), lambda x: x.softmax(-1), lambda x: F.softmax(x, -1),
                lambda x: torch.special.softmax(x, -1), lambda x: x.log_softmax(-1).exp(),
                lambda x: F.cross_entropy(x, torch.zeros(x.shape[0], dtype=torch.long))],
    "logsumexp": [lambda x: torch.logsumexp(x, -1), lambda x: x.logsumexp(-1),
                  lambda x: torch.special.logsumexp(x, -1), lambda x: x.logcumsumexp(-1)[..., -1]],
    "cat": [lambda x: torch.cat([x, x]), lambda x: torch.concatenate([x, x]), lambda x: torch.stack([x, x]),
            lambda x: torch.hstack([x, x]), lambda x: torch.ops.aten.cat([x, x])],
    "layer_norm": [lambda x: F.layer_norm(x, x.shape[-1:]), lambda x: torch.nn.LayerNorm(x.shape[-1])(x),
                   lambda x: torch.layer_norm(x, x.shape[-1:])],
    "scaled_dot_product_attention": [lambda x: F.scaled_dot_product_attention(x[None], x[None], x[None])],
}
CASES = [(family, i) for family, spellings in FORBIDDEN_SPELLINGS.items() for i in range(len(spellings))]


@pytest.mark.parametrize("family, index", CASES, ids=[f"{f}-{i}" for f, i in CASES])
def test_each_spelling_of_a_forbidden_function_is_caught(family, index):
    x = torch.randn(3, 5)
    with pytest.raises(AssertionError, match=r"^exercise 1: your answer uses .*does not allow"):
        run_answer("exercise 1", FORBIDDEN_SPELLINGS[family][index], x, forbid=[family])
    others = [f for f in grading.FORBIDDEN if f != family and not (family == "scaled_dot_product_attention"
                                                                    and f == "softmax")]
    run_answer("exercise 1", FORBIDDEN_SPELLINGS[family][index], x, forbid=others)  # not forbidden: passes


def test_an_unknown_family_is_an_error():
    with pytest.raises(ValueError, match="unknown forbidden"):
        run_answer("exercise 1", torch.exp, torch.zeros(2), forbid=["softmaxx"])


def test_plain_operations_are_not_forbidden():
    x = torch.randn(3, 5)

    def by_hand(x):
        m = x.amax(-1, keepdim=True)
        return (m + torch.log(torch.exp(x - m).sum(-1, keepdim=True))).squeeze(-1)

    out, trace = run_answer("exercise 1", by_hand, x, forbid=list(grading.FORBIDDEN))
    assert torch.allclose(out, torch.logsumexp(x, -1)) and trace.forbidden == []


# ------------------------------------------------------------------------------------ the memory probe
def full_scores(q, k, v):
    return torch.softmax(q @ k.transpose(-2, -1), -1) @ v


def test_the_probe_sees_the_full_score_matrix_and_not_the_chunked_one():
    q, k, v = qkv(Tq=16, Tk=64)
    _, full = run_answer("exercise 2", full_scores, q, k, v)
    _, chunked = run_answer("exercise 2", chunked_by_hand, q, k, v)
    assert full.largest >= 2 * 16 * 64 and full.largest_shape == (2, 16, 64)
    assert "bmm" in full.largest_op or "mm" in full.largest_op
    assert chunked.largest < 2 * 16 * 64 / 4, chunked


def test_views_of_inputs_are_not_allocations():
    big = torch.randn(4, 1, 8)
    _, trace = run_answer("probe", lambda x: x.expand(4, 1000, 8).transpose(-2, -1)[..., 1:], big)
    assert trace.largest == 0 and trace.ops >= 3
    _, trace = run_answer("probe", lambda x: x.expand(4, 1000, 8).contiguous(), big)
    assert trace.largest == 4 * 1000 * 8


def test_the_probe_counts_a_python_loop_over_positions():
    x = torch.randn(100, 4)
    _, vectorised = run_answer("probe", lambda x: (x * x).sum(-1), x)
    _, looped = run_answer("probe", lambda x: [(x[i] * x[i]).sum() for i in range(len(x))], x)
    assert vectorised.ops < 10 <= 100 <= looped.ops


def test_the_probe_can_be_used_on_its_own():
    with grading.MemoryProbe() as probe:
        torch.zeros(7, 9)
    assert probe.largest == 63 and probe.largest_shape == (7, 9)


# ------------------------------------------------------------------------------------ one pass
def streaming_sum(blocks):
    total = None
    for b in blocks:
        total = b.sum(-1) if total is None else total + b.sum(-1)
    return total


def stored_then_summed(blocks):
    blocks = list(blocks)
    peak = max(b.amax() for b in blocks)  # a first pass ...
    return sum(torch.exp(b - peak).sum(-1) for b in blocks)  # ... and a second


def test_a_stream_read_as_it_comes_passes_and_a_stored_one_is_caught():
    blocks = [torch.randn(3, n) for n in (2, 5, 1)]
    out, _ = run_answer("exercise 1", streaming_sum, one_pass(b.clone() for b in blocks))
    assert torch.allclose(out, sum(b.sum(-1) for b in blocks))
    with pytest.raises(AssertionError, match=r"^exercise 1: your answer asked for item 2 .* before it had used item 1"):
        run_answer("exercise 1", stored_then_summed, one_pass(b.clone() for b in blocks))


def test_a_stream_of_pairs_counts_either_tensor_as_used():
    pairs = [(torch.randn(2, 3), torch.randn(2, 3)) for _ in range(3)]
    run_answer("exercise 2", lambda chunks: [k.sum() for k, _ in chunks], one_pass(pairs))


def test_a_stream_cannot_be_read_twice():
    def twice(blocks):
        return streaming_sum(blocks) + streaming_sum(blocks)
    with pytest.raises(AssertionError, match="raised RuntimeError: this iterable can be read only once"):
        run_answer("exercise 1", twice, one_pass([torch.ones(2, 2)]))


# ------------------------------------------------------------------------------------ errors and isolation
def test_an_error_in_the_answer_is_reported_with_the_exercise_and_the_arguments():
    def broken(x):
        raise ValueError("bad widths")
    with pytest.raises(AssertionError, match=r"^exercise 3: your function raised ValueError: bad widths "
                                             r"\(called with a torch.float64 tensor of shape \(2, 3\) on cpu"):
        run_answer("exercise 3", broken, torch.zeros(2, 3, dtype=torch.float64))
    assert sys.getprofile() is None and not torch.overrides._get_current_function_mode_stack()


def reference_logsumexp(blocks):
    """A reference in the notebook's place, itself built on solutions and a forbidden function."""
    from solutions.fast.online_softmax import block_stats, merge_stats
    stats = None
    for b in blocks:
        here = block_stats(b)
        stats = here if stats is None else merge_stats(stats, here)
    return torch.logsumexp(torch.stack([stats.maximum, stats.maximum]), 0) - math.log(2) + torch.log(stats.total)


def test_isolation_rebinds_and_restores_the_notebook_names():
    namespace = {"online_logsumexp": "learner's", "other": 1}
    with isolated(namespace, online_logsumexp=reference_logsumexp, band_mask=len) as iso:
        assert namespace["online_logsumexp"] is reference_logsumexp and namespace["band_mask"] is len
        assert grading._ISOLATIONS == [iso]
    assert namespace == {"online_logsumexp": "learner's", "other": 1}, "restored, and the missing name removed"
    with pytest.raises(KeyError):
        with isolated(namespace, online_logsumexp=reference_logsumexp):
            raise KeyError("a failing test")
    assert namespace["online_logsumexp"] == "learner's" and not grading._ISOLATIONS


def test_begin_undoes_a_stale_isolation_and_end_puts_everything_back():
    namespace = {"a": 1, "b": 2}
    isolated(namespace, a=10).begin()  # a grade cell whose visible assert failed before its end
    isolated(namespace, b=20).begin()
    assert namespace == {"a": 1, "b": 20}
    end_isolation()
    assert namespace == {"a": 1, "b": 2} and not grading._ISOLATIONS


def test_a_stale_isolation_keeps_what_was_defined_after_it():
    namespace = {"a": 1}
    isolated(namespace, a=10, later=30).begin()  # a grade cell that failed before its end
    namespace["later"] = "learner's, from a later answer cell"  # the notebook goes on
    isolated(namespace, a=11).begin()
    assert namespace == {"a": 11, "later": "learner's, from a later answer cell"}
    end_isolation()
    assert namespace == {"a": 1, "later": "learner's, from a later answer cell"} and not grading._ISOLATIONS


def test_a_reference_put_in_place_may_use_solutions_and_forbidden_functions():
    namespace = {}
    exec("def attend(query, blocks):\n"
         "    return online_logsumexp(blocks)\n", namespace)
    blocks = [torch.randn(2, 4) for _ in range(3)]
    expected = torch.logsumexp(torch.cat(blocks, -1), -1)
    namespace["online_logsumexp"] = reference_logsumexp  # without the isolation: caught
    with pytest.raises(AssertionError, match="reference implementation"):
        run_answer("exercise 2", namespace["attend"], None, blocks, forbid=["cat", "logsumexp"])
    with isolated(namespace, online_logsumexp=reference_logsumexp):
        out, trace = run_answer("exercise 2", namespace["attend"], None, blocks, forbid=["cat", "logsumexp"])
    assert torch.allclose(out, expected, atol=1e-6) and trace.references == [] and trace.forbidden == []
    namespace["attend"] = lambda query, blocks: torch.logsumexp(torch.cat(list(blocks), -1), -1)
    with isolated(namespace, online_logsumexp=reference_logsumexp):  # the learner's own forbidden call
        with pytest.raises(AssertionError, match="does not allow"):
            run_answer("exercise 2", namespace["attend"], None, blocks, forbid=["cat"])


def test_an_empty_block_need_not_be_used():
    def skip_empty(blocks):
        return [b.sum(-1) for b in blocks if b.shape[-1]]
    run_answer("exercise 1", skip_empty, one_pass([torch.ones(2, 0), torch.ones(2, 3), torch.ones(2, 1)]))
    with pytest.raises(AssertionError, match="before it had used item 2"):
        run_answer("exercise 1", lambda blocks: [b for b in blocks], one_pass([torch.ones(2, 0), torch.ones(2, 3),
                                                                               torch.ones(2, 1)]))
