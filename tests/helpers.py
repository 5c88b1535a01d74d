"""Plain helpers shared by the test files; the shared fixtures live in conftest.py.

pytest puts this folder on ``sys.path`` (its default "prepend" import mode, as for ``assignment_text``),
so a test file imports these with ``from helpers import rand``, under ``-n`` workers too.
"""
import torch


def rand(*shape, device, dtype=torch.float64, requires_grad=False):
    """A standard-normal tensor of ``shape`` on ``device``, drawn from torch's global generator.

    float64 by default, so gradient checks and tight tolerances work; seed with ``torch.manual_seed``
    where a test needs the same numbers every run.
    """
    return torch.randn(*shape, device=device, dtype=dtype, requires_grad=requires_grad)
