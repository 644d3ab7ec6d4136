"""AdamW parameter groups (weight decay, layer-wise lr decay) and the warmup + half-cosine schedule."""

from __future__ import annotations

import math

from torch import nn

EMBEDDING_NAMES = ("patch_embed", "pos_embed", "pos_embed_spatial", "pos_embed_temporal", "cls_token")


def layer_id(name: str, depth: int) -> int:
    """0 for the tokenizer and position tables, i + 1 for encoder block i, depth + 1 for everything after."""
    if name.startswith(EMBEDDING_NAMES):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float | None = None,
                 no_decay: tuple[str, ...] = ()) -> list[dict]:
    """Weight decay only on >= 2-D weights that are not biases and not named in `no_decay`; with
    `layer_decay`, group lr scale = layer_decay ** (depth + 1 - layer_id)."""
    depth = len(getattr(model, "blocks", []))
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        decay = p.ndim >= 2 and not name.endswith(".bias") and not name.startswith(no_decay)
        layer = layer_id(name, depth) if layer_decay is not None else 0
        scale = layer_decay ** (depth + 1 - layer) if layer_decay is not None else 1.0
        g = groups.setdefault((layer, decay), {"params": [], "names": [], "weight_decay": weight_decay if decay else 0.0,
                                               "lr_scale": scale})
        g["params"].append(p)
        g["names"].append(name)
    return list(groups.values())


def lr_at(epoch: float, lr: float, min_lr: float, warmup_epochs: float, epochs: float) -> float:
    """Linear warmup to `lr` over `warmup_epochs` (fractional epochs), then half-cosine down to `min_lr`."""
    if epoch < warmup_epochs:
        return lr * epoch / warmup_epochs
    span = max(epochs - warmup_epochs, 1e-12)
    progress = min((epoch - warmup_epochs) / span, 1.0)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
