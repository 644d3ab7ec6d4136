"""SpectralGPT backbones in TerraTorch's backbone registry (optional extra: ``pip install 'spectralgpt[terratorch]'``).

TerraTorch (1.x) finds third-party backbones by import: a module decorated with
``TERRATORCH_BACKBONE_REGISTRY.register`` is imported by the user, or named in a config's top-level
``custom_modules_path``; it has no entry-point discovery. ``import spectralgpt.integrations.terratorch``
registers one backbone per SpectralGPT encoder (`encoder.ENCODERS`), under the same names as the timm models::

    import spectralgpt.integrations.terratorch  # noqa: F401
    from terratorch.registry import BACKBONE_REGISTRY

    backbone = BACKBONE_REGISTRY.build("spectralgpt_vit_base_patch8_128", ckpt_path="SpectralGPT+.pth",
                                       out_indices=[3, 5, 7, 11])

In an ``EncoderDecoderFactory`` config: ``backbone: spectralgpt_vit_base_patch8_128``, ``backbone_ckpt_path: ...``,
``backbone_out_indices: [3, 5, 7, 11]`` and the necks ``ReshapeTokensToImage`` with ``remove_cls_token: false``
and ``effective_time_dim: 4`` (then e.g. ``LearnedInterpolateToPyramidal`` for UPerNet); without necks the
backbone's ``prepare_features_for_image_model`` makes the maps.

Features (`encoder.SpectralGPTBackbone`): a list, one per block in ``out_indices`` (default: every block), each
through the encoder's final norm: tokens (B, T*L, D) (T = 4 spectral groups, L = (img / 8)^2), or maps
(B, T*D, img / 8, img / 8) with ``output="maps"``; ``out_channels`` = [T*D, ...] (3072 for ViT-Base). Inputs:
(B, 12, img, img) in the pretraining band order, min-max scaled per band and image. ``ckpt_path``: a published
``.pth`` (read with the safe allow-list loader), our safetensors file or model folder.
"""

from __future__ import annotations

from pathlib import Path

try:
    from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("the TerraTorch backbones need terratorch: pip install 'spectralgpt[terratorch]'") from e

from spectralgpt.integrations.encoder import ENCODERS, SpectralGPTBackbone, create_backbone


def _constructor(variant: str):
    def build(pretrained: bool = False, ckpt_path: str | Path | None = None, out_indices=None, norm: bool = True,
              output: str = "tokens", img_size=None, in_chans: int | None = None, bands=None,
              drop_path_rate: float = 0.0) -> SpectralGPTBackbone:
        if pretrained and not ckpt_path:
            raise ValueError(f"{variant}: pretrained=True needs ckpt_path (a local SpectralGPT checkpoint); no "
                             "weights are downloaded")
        return create_backbone(variant, ckpt_path, img_size=img_size, in_chans=in_chans, bands=bands,
                               drop_path_rate=drop_path_rate, out_indices=out_indices, norm=norm, output=output)
    build.__name__ = build.__qualname__ = variant
    build.__module__ = __name__
    build.__doc__ = f"SpectralGPT backbone of {ENCODERS[variant]} (see spectralgpt.integrations.terratorch)."
    return build


#: the registered backbone names
BACKBONE_NAMES: tuple[str, ...] = tuple(ENCODERS)
for _name in BACKBONE_NAMES:
    globals()[_name] = TERRATORCH_BACKBONE_REGISTRY.register(_constructor(_name))
del _name
