"""The field's benchmark protocols for a pretrained (or fine-tuned) SpectralGPT encoder, one module each.

==============  ==============================================================================  ============
protocol        what is trained / how it scores                                                   tasks
==============  ==============================================================================  ============
``linear_probe``  a linear classifier on pooled features of the frozen encoder (features            image-level
                  standardised with the training split's statistics, as MAE's BatchNorm without
                  affine); cross-entropy for single-label, binary cross-entropy for multi-label
``knn``           nothing: DINO's weighted k-NN vote over cosine similarities of pooled features   image-level
                  (k neighbours, weights exp(sim / T)); multi-label: the weighted mean of the
                  neighbours' label vectors
``upernet``       a UPerNet decoder over encoder layers 3, 5, 7, 11 (scaled to the depth), as       per-pixel
                  PANGAEA evaluates; the encoder frozen or fine-tuned (``head: upernet``)
==============  ==============================================================================  ============

Which protocol applies to which task is read from the task object (per-pixel or not), never from its name, so a
task or dataset reader added elsewhere plugs in unchanged. This module stays light (no torch): `spectralgpt.config`
checks protocol names and applicability with it; the implementations are imported by the benchmark stage.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Protocol:
    name: str
    #: per-pixel tasks (segmentation, change) or image-level ones (classification, multi-label)
    dense: bool
    title: str

    def applies(self, task) -> bool:
        """Whether this protocol can score `task` (a `spectralgpt.tasks.Task`)."""
        return bool(task.predicts) and bool(task.dense) == self.dense


PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (
    Protocol("linear_probe", dense=False, title="linear probe"),
    Protocol("knn", dense=False, title="k-NN"),
    Protocol("upernet", dense=True, title="UPerNet"),
)}
PROTOCOL_NAMES: tuple[str, ...] = tuple(PROTOCOLS)


def get_protocol(name: str) -> Protocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None


__all__ = ["PROTOCOLS", "PROTOCOL_NAMES", "Protocol", "get_protocol"]
