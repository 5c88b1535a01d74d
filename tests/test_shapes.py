"""solutions.attention.shapes.broadcast_shapes: torch's broadcasting rule, without importing SymPy."""
import subprocess
import sys

import pytest
import torch

from solutions.attention.shapes import broadcast_shapes

CASES = [((), ()), ((3,), ()), ((2, 1), (4,)), ((1, 5, 1), (7, 1, 3)), ((2, 3), (2, 3)), ((0,), (1,)),
         ((4, 1, 2), (3, 1), (1, 2)), (torch.Size([2, 1]), torch.Size([1, 6]))]


@pytest.mark.parametrize("shapes", CASES)
def test_same_shape_as_torch(shapes):
    got = broadcast_shapes(*shapes)
    assert isinstance(got, torch.Size)
    assert got == torch.broadcast_shapes(*shapes)


@pytest.mark.parametrize("shapes", [((2,), (3,)), ((2, 3), (3, 2)), ((4, 1), (1, 2), (3,))])
def test_shapes_that_do_not_broadcast_raise_like_torch(shapes):
    with pytest.raises(RuntimeError, match="do not broadcast"):
        broadcast_shapes(*shapes)
    with pytest.raises(RuntimeError):
        torch.broadcast_shapes(*shapes)


def test_attention_in_a_fresh_process_does_not_import_sympy():
    """torch.broadcast_shapes imports SymPy on first use (half a second in every new kernel)."""
    probe = ("import sys, torch\n"
             "from solutions.attention import attention, masked_softmax, lengths_to_mask\n"
             "q, k = torch.randn(2, 3, 4), torch.randn(1, 5, 4)\n"
             "mask = lengths_to_mask(torch.tensor([5, 2]), 5)[:, None, :]\n"
             "out, w = attention(q, k, k, mask=mask)\n"
             "masked_softmax(torch.randn(2, 3, 5), mask)\n"
             "print('sympy' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
