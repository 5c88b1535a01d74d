"""The appendix's fast attention: online softmax, chunked (memory-efficient) and sliding-window attention.

Oracles: ``torch.softmax``, ``F.scaled_dot_product_attention`` and the course's :func:`attention` with a
dense mask; gradients in float64 and ``gradcheck``. Memory is asserted structurally: the graders' dispatch-mode
probe (``solutions.grading.MemoryProbe``) records the size of every tensor the computation creates, forward and backward, and none may have as many
elements as the (Tq, Tk) score matrix of one head.
"""
import math

import pytest
import torch
import torch.nn.functional as F

from helpers import rand
from solutions.attention import attention, causal_mask
from solutions.grading import MemoryProbe
from solutions.fast import (SoftmaxStats, attention_cost, available_backends, block_stats, chunked_attention,
                            flash_hbm_accesses, flex_sliding_window, merge_stats, online_softmax, sdpa,
                            sliding_window_attention, sliding_window_mask, standard_hbm_accesses)


def _grads(out, inputs, seed=5):
    gen = torch.Generator().manual_seed(seed)
    upstream = torch.randn(out.shape, generator=gen, dtype=out.dtype).to(out.device)
    return torch.autograd.grad(out, inputs, upstream)


def _assert_same(a, b, atol=1e-12, what="output"):
    assert not torch.isnan(a).any(), f"{what} has NaN"
    assert torch.allclose(a, b, atol=atol, rtol=0), f"{what} differs by {(a - b).abs().max().item():.3g}"


# --------------------------------------------------------------------------- online softmax
@pytest.mark.parametrize("block_size", [1, 3, 7, 64])
def test_online_softmax_equals_softmax(device, block_size):
    torch.manual_seed(0)
    x = rand(4, 5, 19, device=device) * 10
    _assert_same(online_softmax(x, block_size=block_size), torch.softmax(x, -1))
    _assert_same(online_softmax(x, dim=1, block_size=block_size), torch.softmax(x, 1))


def test_online_softmax_with_removed_scores(device):
    """−∞ scores get weight 0; a row of −∞ (a query that attends to nothing) gives zeros, not NaN."""
    torch.manual_seed(1)
    x = rand(3, 12, device=device)
    x[0, :7] = -math.inf  # the first blocks are empty: the running maximum starts at −∞
    x[1, 5] = -math.inf
    x[2] = -math.inf
    y = online_softmax(x, block_size=4)
    _assert_same(y[:2], torch.softmax(x[:2], -1))
    assert torch.equal(y[2], torch.zeros_like(y[2]))
    assert torch.equal(y[0, :7], torch.zeros(7, device=device, dtype=y.dtype))


def test_merging_statistics_is_associative_and_commutative(device):
    torch.manual_seed(2)
    blocks = [rand(5, 4, device=device) for _ in range(3)]
    blocks[1][0] = -math.inf  # one row without a score in this block
    a, b, c = (block_stats(x) for x in blocks)
    left, right = merge_stats(merge_stats(a, b), c), merge_stats(a, merge_stats(b, c))
    swapped = merge_stats(c, merge_stats(b, a))
    whole = block_stats(torch.cat(blocks, -1))
    for stats in (left, right, swapped):
        _assert_same(stats.maximum, whole.maximum, what="maximum")
        _assert_same(stats.total, whole.total, what="sum")
    # both halves empty: m = −∞, d = 0, no NaN
    empty = SoftmaxStats(torch.full((2,), -math.inf, device=device), torch.zeros(2, device=device))
    both = merge_stats(empty, empty)
    assert torch.isneginf(both.maximum).all() and torch.equal(both.total, torch.zeros(2, device=device))


def test_online_softmax_rejects_a_bad_block_size():
    with pytest.raises(ValueError, match="block_size"):
        online_softmax(torch.randn(3), block_size=0)


# --------------------------------------------------------------------------- chunked attention
CHUNK_CASES = [  # (Tq, Tk, query_chunk, key_chunk): lengths that the chunks do not divide, chunks larger than T
    (37, 37, 8, 5),
    (13, 29, 4, 7),
    (29, 13, 16, 64),
    (1, 9, 1, 2),
]


@pytest.mark.parametrize("tq,tk,cq,ck", CHUNK_CASES)
@pytest.mark.parametrize("is_causal", [False, True])
def test_chunked_attention_equals_sdpa_with_gradients(device, tq, tk, cq, ck, is_causal):
    torch.manual_seed(3)
    q, k, v = rand(2, 3, tq, 16, device=device), rand(2, 3, tk, 16, device=device), rand(2, 3, tk, 8, device=device)
    for x in (q, k, v):
        x.requires_grad_()
    out = chunked_attention(q, k, v, is_causal=is_causal, query_chunk=cq, key_chunk=ck)
    if is_causal:  # SDPA's causal mask with Tq > Tk leaves rows with no key (NaN): compare with the mask
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(tq, tk, device=device))
        ref = torch.nan_to_num(ref) if tq > tk else ref
    else:
        ref = F.scaled_dot_product_attention(q, k, v)
    _assert_same(out, ref)
    rows = causal_mask(tq, tk, device=device).any(-1) if is_causal else torch.ones(tq, dtype=torch.bool, device=device)
    for mine, theirs, name in zip(_grads(out, (q, k, v)), _grads(ref, (q, k, v)), "qkv"):
        _assert_same(torch.nan_to_num(mine), torch.nan_to_num(theirs), what=f"gradient of {name}")
    assert rows.any()


@pytest.mark.parametrize("mask_shape", [(2, 3, 21, 17), (2, 1, 1, 17), (17,), (21, 1)])
def test_chunked_attention_with_bool_masks(device, mask_shape):
    """Masks of every broadcast shape, with a query that has every key masked: zero output and gradients."""
    torch.manual_seed(4)
    q, k, v = (rand(2, 3, t, 8, device=device, requires_grad=True) for t in (21, 17, 17))
    keep = torch.rand(mask_shape, device=device) > 0.3
    if len(mask_shape) == 4 and mask_shape[-2] > 1:
        keep[0, 0, 5] = False  # one query of one head attends to nothing
    out = chunked_attention(q, k, v, keep, query_chunk=4, key_chunk=6)
    ref, _ = attention(q, k, v, mask=keep)  # the course's core: empty rows give zeros
    _assert_same(out, ref)
    for mine, theirs, name in zip(_grads(out, (q, k, v)), _grads(ref, (q, k, v)), "qkv"):
        _assert_same(mine, theirs, what=f"gradient of {name}")
    if len(mask_shape) == 4 and mask_shape[-2] > 1:
        assert torch.equal(out[0, 0, 5], torch.zeros_like(out[0, 0, 5]))


def test_chunked_attention_broadcasts_leading_dims_and_sums_their_gradients(device):
    torch.manual_seed(5)
    q = rand(4, 2, 10, 8, device=device, requires_grad=True)
    k = rand(1, 2, 12, 8, device=device, requires_grad=True)  # shared by the batch
    v = rand(12, 6, device=device, requires_grad=True)  # shared by batch and heads
    out = chunked_attention(q, k, v, query_chunk=3, key_chunk=5)
    ref = F.scaled_dot_product_attention(q, k.expand(4, 2, 12, 8), v.expand(4, 2, 12, 6))
    _assert_same(out, ref)
    grads = _grads(out, (q, k, v))
    assert [g.shape for g in grads] == [q.shape, k.shape, v.shape]
    for mine, theirs in zip(grads, _grads(ref, (q, k, v))):
        _assert_same(mine, theirs, what="gradient")


def test_chunked_attention_passes_gradcheck(device):
    torch.manual_seed(6)
    q, k, v = (rand(1, 2, t, 4, device=device, requires_grad=True) for t in (5, 7, 7))
    keep = torch.rand(5, 7, device=device) > 0.3
    assert torch.autograd.gradcheck(
        lambda q, k, v: chunked_attention(q, k, v, keep, is_causal=True, query_chunk=2, key_chunk=3), (q, k, v))


def test_chunked_attention_in_float32_agrees_with_sdpa(device):
    torch.manual_seed(7)
    q, k, v = (rand(1, 4, 300, 32, device=device, dtype=torch.float32) for _ in range(3))
    out = chunked_attention(q, k, v)
    assert out.dtype == torch.float32
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-5)


def test_chunked_attention_never_holds_a_score_matrix(device):
    """Forward and backward: no tensor as large as one head's (Tq, Tk) scores; the naive path has one."""
    T, H = 256, 2
    q, k, v = (rand(1, H, T, 16, device=device, requires_grad=True) for _ in range(3))
    with MemoryProbe() as chunked:
        out = chunked_attention(q, k, v, is_causal=True, query_chunk=32, key_chunk=64)
        out.sum().backward()
    with MemoryProbe() as naive:
        attention(q, k, v, is_causal=True)[0].sum().backward()
    assert naive.largest >= H * T * T, "the probe must see the naive path's score matrix"
    assert chunked.largest < T * T, f"chunked attention created a tensor of {chunked.largest} elements"
    assert chunked.largest <= max(H * 32 * 64, H * T * 16), chunked.largest


def test_chunked_attention_clear_errors():
    q = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match="keys have 5 positions but values have 4"):
        chunked_attention(q, q, torch.randn(2, 4, 8))
    with pytest.raises(TypeError, match="bool"):
        chunked_attention(q, q, q, torch.ones(5, 5))
    with pytest.raises(ValueError, match="key_chunk"):
        chunked_attention(q, q, q, key_chunk=0)
    with pytest.raises(ValueError, match="queries have 8 features but keys have 4"):
        chunked_attention(q, torch.randn(2, 5, 4), q)
    with pytest.raises(ValueError):
        chunked_attention(q, q, q, torch.ones(3, 5, dtype=torch.bool))


# --------------------------------------------------------------------------- sliding-window attention
WINDOW_CASES = [(37, 6), (48, 8), (5, 9), (16, 1)]  # T not a multiple of w, a multiple, w ≥ T, w = 1


@pytest.mark.parametrize("T,w", WINDOW_CASES)
@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("with_global", [False, True])
def test_sliding_window_attention_equals_dense_masked_attention(device, T, w, is_causal, with_global):
    torch.manual_seed(8)
    q, k, v = (rand(2, 3, T, d, device=device, requires_grad=True) for d in (8, 8, 5))
    glob = torch.tensor([0, T // 2], device=device) if with_global else None
    out = sliding_window_attention(q, k, v, w, is_causal=is_causal, global_positions=glob, positions_per_step=2 * w)
    keep = sliding_window_mask(T, w, is_causal=is_causal, global_positions=glob, device=device)
    ref, _ = attention(q, k, v, mask=keep)
    _assert_same(out, ref)
    for mine, theirs, name in zip(_grads(out, (q, k, v)), _grads(ref, (q, k, v)), "qkv"):
        _assert_same(mine, theirs, what=f"gradient of {name}")


def test_sliding_window_mask_is_the_band():
    keep = sliding_window_mask(6, 2)
    i, j = torch.arange(6).unsqueeze(-1), torch.arange(6)
    assert torch.equal(keep, (i - j).abs() <= 2)
    assert torch.equal(sliding_window_mask(6, 2, is_causal=True), ((i - j) >= 0) & ((i - j) <= 2))
    glob = sliding_window_mask(6, 1, global_positions=torch.tensor([4]))
    assert glob[4].all() and glob[:, 4].all() and not glob[0, 2]
    causal_glob = sliding_window_mask(6, 1, is_causal=True, global_positions=torch.tensor([4]))
    assert causal_glob[4, :5].all() and not causal_glob[4, 5] and causal_glob[5, 4] and not causal_glob[2, 4]


def test_sliding_window_attention_memory_is_linear_in_length(device):
    T, w = 512, 16
    q = rand(1, 1, T, 8, device=device, requires_grad=True)
    with MemoryProbe() as probe:
        sliding_window_attention(q, q, q, w).sum().backward()
    assert probe.largest <= 3 * T * w + 3 * w * w, f"a tensor of {probe.largest} elements; T·3w = {3 * T * w}"


def test_sliding_window_attention_composes_the_core(device):
    """Its weights come from the core's masked_softmax (the softmax spy of test_attention_core)."""
    from test_attention_core import _SoftmaxCallers, PACKAGE
    q = rand(1, 10, 4, device=device)
    with _SoftmaxCallers() as spy:
        sliding_window_attention(q, q, q, 3, global_positions=torch.tensor([2], device=device))
    assert spy.callers and all(c == (PACKAGE / "attention" / "masking.py").resolve() for c in spy.callers)


def test_sliding_window_clear_errors():
    q = torch.randn(1, 8, 4)
    with pytest.raises(ValueError, match="window"):
        sliding_window_attention(q, q, q, 0)
    with pytest.raises(ValueError, match="same positions"):
        sliding_window_attention(q, torch.randn(1, 7, 4), torch.randn(1, 7, 4), 2)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        sliding_window_attention(q, q, q, 2, global_positions=torch.tensor([8]))
    with pytest.raises(TypeError, match="integer"):
        sliding_window_attention(q, q, q, 2, global_positions=torch.tensor([True]))


# --------------------------------------------------------------------------- PyTorch's kernels and the cost model
def test_sdpa_backends_agree_with_the_core(device):
    torch.manual_seed(9)
    q, k, v = (rand(1, 2, 40, 16, device=device, dtype=torch.float32) for _ in range(3))
    found = available_backends(q, k, v)
    assert "math" in found and (device.type == "cuda" or found == ["math", "flash"]), found
    ref, _ = attention(q, k, v)
    for backend in found:
        assert torch.allclose(sdpa(q, k, v, backend), ref, atol=1e-5), backend
    with pytest.raises(ValueError, match="unknown SDPA backend"):
        sdpa(q, k, v, "fastest")


def test_flex_attention_sliding_window_matches(device):
    torch.manual_seed(10)
    q, k, v = (rand(1, 2, 256, 16, device=device, dtype=torch.float32) for _ in range(3))
    out = flex_sliding_window(q, k, v, 20, is_causal=True, compiled=False)
    ref = sliding_window_attention(q, k, v, 20, is_causal=True)
    assert torch.allclose(out, ref, atol=1e-5)


def test_cost_model_counts():
    cost = attention_cost(1024, 64, heads=8)
    assert cost.flops == 4 * 8 * 1024 * 1024 * 64 and cost.score_bytes == 8 * 1024 * 1024 * 4
    N, d, M = 4096, 64, 100_000  # about 100 K elements of on-chip memory (Dao et al. use M ≈ 100 KB per SM)
    assert standard_hbm_accesses(N, d) == 4 * N * d + 4 * N * N
    flash = flash_hbm_accesses(N, d, M)
    assert flash < standard_hbm_accesses(N, d) / 5, "FlashAttention reads and writes several times less"
    assert flash_hbm_accesses(N, d, 4 * M) < flash < flash_hbm_accesses(N, d, M // 4), "more SRAM, fewer accesses"
    with pytest.raises(ValueError, match="cannot hold"):
        flash_hbm_accesses(N, 64, 100)
    with pytest.raises(ValueError, match="T must be a positive integer"):
        attention_cost(0, 64)


# --------------------------------------------------------------------------- the measuring code of the benchmark
def test_peak_extra_memory_sees_the_score_matrices():
    """Memory measured, not timed: the naive path holds two (B, H, T, T) matrices, chunked a few blocks."""
    from solutions.fast.measure import peak_extra_memory, predicted_naive_bytes
    one_matrix = predicted_naive_bytes(1024, heads=8) // 2
    naive = peak_extra_memory("naive", 1024)
    chunked = peak_extra_memory("chunked", 1024)
    assert one_matrix <= naive <= 3 * one_matrix, (naive, one_matrix)
    assert chunked < naive / 4, (chunked, naive)


def test_sweep_skips_what_would_not_fit_and_names_failures():
    from solutions.fast.measure import sweep
    rows = sweep(["naive", "chunked", "SDPA efficient"], [128], repeats=1, memory=False, memory_fraction=1e-9,
                 progress=False)
    by_name = {row["method"]: row for row in rows}
    assert by_name["naive"]["note"].startswith("skipped") and by_name["naive"]["seconds"] is None
    assert by_name["chunked"]["seconds"] > 0 and by_name["chunked"]["note"] == ""
    assert by_name["SDPA efficient"]["note"].startswith("failed") or torch.cuda.is_available()


def test_benchmark_script_writes_its_csv(tmp_path):
    import csv
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "attention.py"
    out = tmp_path / "quick.csv"
    done = subprocess.run([sys.executable, str(script), "--lengths", "64", "128", "--repeats", "1", "--window", "16",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: a target missed, which these lengths cannot meet
    rows = list(csv.DictReader(out.open()))
    assert {r["method"] for r in rows} == {"naive", "readable core", "chunked", "windowed", "SDPA"}
    assert all(float(r["seconds"]) > 0 and int(r["peak_extra_bytes"]) >= 0 for r in rows)
    assert all(r["device"] == "cpu" and r["device_name"] for r in rows)
    assert "target chunked / naive peak extra memory" in done.stdout


def test_time_function_and_peak_extra_memory_of_any_call():
    from solutions.fast.measure import peak_extra_memory_of, time_function
    times = time_function(lambda: torch.ones(100).sum(), repeats=4)
    assert len(times) == 4 and all(t > 0 for t in times)
    with pytest.raises(ValueError, match="repeats"):
        time_function(lambda: None, repeats=0)
    # the compute clock leaves out time spent waiting (here sleeping; on a busy machine, waiting for a core)
    import time
    assert min(time_function(lambda: time.sleep(0.05), repeats=2, clock="compute")) < 0.02
    assert min(time_function(lambda: time.sleep(0.05), repeats=1, clock="wall")) >= 0.05
    with pytest.raises(ValueError, match="clock"):
        time_function(lambda: None, clock="cpu")
    big = lambda: torch.ones(4 * 2**20)  # 16 MiB held at the peak  # noqa: E731
    big()
    peak = peak_extra_memory_of(big)
    if peak is not None:  # None where Linux forbids resetting the peak
        assert 15 * 2**20 <= peak <= 40 * 2**20, peak
        assert peak_extra_memory_of(lambda: torch.ones(16).sum()) < 4 * 2**20
