"""Linear probing: a linear classifier on frozen, pooled encoder features.

The features are computed once (no augmentation) and standardised with the training split's per-dimension mean
and standard deviation: what MAE's linear probe gets from a BatchNorm without affine parameters in front of its
linear layer, made exact and deterministic. The layer starts at zero bias and trunc-normal(0.01) weights (drawn
from the seed, like the batch order) and is trained by SGD with momentum on a half-cosine learning rate, with
cross-entropy (single-label) or binary cross-entropy on sigmoid outputs (multi-label). The training loss of every
epoch is kept, so a report (and a test) can see it fall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn


class LinearProbe(nn.Module):
    """Standardisation (fixed statistics) + linear layer: (N, D) features -> (N, C) logits."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())
        self.head = nn.Linear(mean.numel(), num_classes)
        with torch.no_grad():
            self.head.weight.copy_(torch.nn.init.trunc_normal_(torch.empty(self.head.weight.shape), std=0.01,
                                                               generator=generator))
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((x - self.mean) / self.std)


@dataclass
class ProbeResult:
    probe: LinearProbe
    history: list[dict] = field(default_factory=list)  # {"epoch", "loss", "lr"} per epoch


def probe_loss(logits: torch.Tensor, y: torch.Tensor, multilabel: bool) -> torch.Tensor:
    if multilabel:
        return F.binary_cross_entropy_with_logits(logits, y.float())
    return F.cross_entropy(logits, y.long())


def train_linear_probe(x: torch.Tensor, y: torch.Tensor, num_classes: int, multilabel: bool, *, epochs: int = 100,
                       batch_size: int = 256, lr: float = 0.1, momentum: float = 0.9, weight_decay: float = 0.0,
                       seed: int = 0, device: str | torch.device = "cpu", eps: float = 1e-6) -> ProbeResult:
    """Fit a linear probe on training features `x` (N, D) with labels `y` ((N,) class ids, or (N, C) multi-hot)."""
    if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need (N, D) features with N labels, got {tuple(x.shape)} and {tuple(y.shape)}")
    bad = int((~torch.isfinite(x)).any(1).sum())
    if bad:
        raise ValueError(f"{bad} of {len(x)} training features hold NaN or infinite values (check the images)")
    x, y = x.float().to(device), y.to(device)
    g = torch.Generator().manual_seed(seed)  # the initial weights and the batch order
    probe = LinearProbe(x.mean(0).cpu(), x.std(0, unbiased=False).cpu() + eps, num_classes, g).to(device)
    opt = torch.optim.SGD(probe.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    n, per_epoch = len(x), math.ceil(len(x) / batch_size)
    total, step, history = epochs * per_epoch, 0, []
    probe.train()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=g).to(device)
        losses = []
        for b in range(per_epoch):
            rows = order[b * batch_size:(b + 1) * batch_size]
            now = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            for group in opt.param_groups:
                group["lr"] = now
            loss = probe_loss(probe(x[rows]), y[rows], multilabel)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()) * len(rows))
            step += 1
        history.append({"epoch": epoch + 1, "loss": sum(losses) / n, "lr": now})
        if not math.isfinite(history[-1]["loss"]):
            raise FloatingPointError(f"linear probe loss is {history[-1]['loss']} in epoch {epoch + 1}: lower the "
                                     f"learning rate (lr = {lr})")
    return ProbeResult(probe.eval(), history)


@torch.no_grad()
def probe_logits(result: ProbeResult, x: torch.Tensor) -> torch.Tensor:
    device = result.probe.mean.device
    return result.probe(x.float().to(device)).cpu()
