"""Which torch device "auto" means: the one place that decides it for training, evaluation and inference."""

from __future__ import annotations

import torch


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto': the current CUDA device (torchrun sets one per process), else the CPU; other names as torch reads
    them, a bare 'cuda' made explicit (cuda:N)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device
