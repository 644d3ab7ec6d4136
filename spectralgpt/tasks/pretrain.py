"""Pretraining: the masked autoencoder reconstructs the masked spectral-spatial cubes of unlabelled images."""

from __future__ import annotations

from spectralgpt.tasks.base import StepFn, Task


def mae_step(mask_ratio: float) -> StepFn:
    def step(model, batch):
        loss, _, _, terms = model(batch["image"], mask_ratio, return_terms=True)
        return loss, terms

    return step


class Pretrain(Task):
    name = "pretrain"
    model_kind = "mae"
    target = "image"

    def dataset(self, corpus, size, train, recipe="auto"):
        from spectralgpt.data.datasets import PretrainDataset

        return PretrainDataset(corpus, size=size, train=train)

    def step(self, cfg, num_classes=None, corpus=None):
        return mae_step(cfg.mask_ratio)


TASK = Pretrain()
