"""Device selection shared by the chapters and exercises."""
import torch


def default_device() -> torch.device:
    """The GPU when PyTorch sees one, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
