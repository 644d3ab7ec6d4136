"""Weighted k-nearest-neighbour classification on frozen, pooled encoder features (DINO's k-NN protocol).

Training and test features are L2-normalised, so their dot product is the cosine similarity. Each test image
takes its `k` most similar training images; neighbour j votes for its class with weight exp(s_j / T) (s_j its
similarity, T the temperature, 0.07 in DINO), and the class scores are the summed votes, here divided by their
total so they read as probabilities. For multi-label data the scores are the same weighted mean of the
neighbours' multi-hot label vectors: the probability that a label is present. Nothing is trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_scores(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, num_classes: int, *,
               k: int = 20, temperature: float = 0.07, multilabel: bool = False, chunk: int = 1024,
               device: str | torch.device = "cpu") -> torch.Tensor:
    """(M, num_classes) class probabilities of the test features from a weighted vote of their k nearest
    training features (cosine similarity). `train_y`: (N,) class ids, or (N, C) multi-hot with `multilabel`."""
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"features must be (N, D) and (M, D), got {tuple(train_x.shape)} and {tuple(test_x.shape)}")
    if len(train_x) != len(train_y) or len(train_x) == 0:
        raise ValueError(f"{len(train_x)} training features but {len(train_y)} labels")
    for name, f in (("training", train_x), ("test", test_x)):
        if not bool(torch.isfinite(f).all()):
            raise ValueError(f"{name} features hold NaN or infinite values (check the images)")
    if k < 1 or temperature <= 0:
        raise ValueError(f"k must be >= 1 and temperature > 0, got k={k}, temperature={temperature}")
    bank = F.normalize(train_x.float().to(device), dim=1)
    if multilabel:
        votes = train_y.float().to(device)
    else:
        votes = F.one_hot(train_y.long().to(device), num_classes).float()
    k = min(k, len(bank))
    out = []
    for start in range(0, len(test_x), chunk):
        q = F.normalize(test_x[start:start + chunk].float().to(device), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        w = ((sim - sim[:, :1]) / temperature).exp()  # exp(s / T) up to a factor per row: no overflow at small T
        scores = (votes[idx] * w.unsqueeze(-1)).sum(1) / w.sum(1, keepdim=True)
        out.append(scores.cpu())
    return torch.cat(out) if out else torch.zeros(0, num_classes)
