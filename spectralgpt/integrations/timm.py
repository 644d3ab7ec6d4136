"""SpectralGPT encoders in timm's model registry.

``import spectralgpt.integrations.timm`` registers one timm model per SpectralGPT encoder (`encoder.ENCODERS`):
``spectralgpt_vit_base_patch8_128`` (SpectralGPT+, 128 px), ``spectralgpt_vit_base_patch8_96`` (SpectralGPT,
96 px), ``spectralgpt_vit_base_patch8_2tensor_128``, ``spectralgpt_vit_large_patch8_{96,128}``,
``spectralgpt_vit_huge_patch8_{96,128}`` and the CPU-sized ``spectralgpt_vit_tiny_patch8_64`` and
``spectralgpt_vit_small_patch8_128``. timm has no plugin entry points, so the import is what registers them::

    import timm
    import spectralgpt.integrations.timm  # noqa: F401  (registers the models)

    backbone = timm.create_model("spectralgpt_vit_base_patch8_128", pretrained=True,
                                 pretrained_cfg_overlay=dict(file="SpectralGPT+.pth"))      # (B, 768) features
    classifier = timm.create_model("spectralgpt_vit_base_patch8_128", num_classes=10,
                                   checkpoint_path="models/eurosat/model.safetensors")     # our fine-tuned weights
    maps = timm.create_model("spectralgpt_vit_base_patch8_128", features_only=True, out_indices=(3, 5, 7, 11))

The model is `encoder.SpectralGPTEncoder`: its state dict has exactly the published encoder keys (plus
``head.*`` with ``num_classes > 0``). Weights come from a local file only (no download URL is configured):

* ``pretrained=True, pretrained_cfg_overlay=dict(file=...)``: timm reads the file (``torch.load`` with
  ``weights_only=True``, ``argparse.Namespace`` allowed, or safetensors), then the encoder's load hook leaves out
  the published MAE's decoder keys and resizes the position table to ``img_size``; a head is left out when
  ``num_classes`` differs (timm's rule). Add ``custom_load=True`` to the overlay to read it with our own
  allow-list loader instead (`SpectralGPTEncoder.load_pretrained`, which also reads our model folders);
* ``checkpoint_path=...``: timm's ``load_checkpoint``, strict, through the same load hook (a full checkpoint:
  an MAE for ``num_classes=0``, our fine-tuned classifier's ``model.safetensors`` for ``num_classes=K``).

Defaults: ``num_classes=0`` (a feature extractor; ``model(x)`` is the pooled, normed (B, D)
embedding), ``in_chans=12``, input size (12, img, img); ``mean``/``std`` are 0/1 because inputs are expected
min-max scaled to [0, 1] per band and image, in the pretraining band order. ``features_only=True`` returns
per-block maps (B, T*D, h, w) (timm's feature-getter over ``forward_intermediates``).
"""

from __future__ import annotations

import timm  # noqa: F401  (fails clearly when timm is not installed)
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from spectralgpt.bands import PRETRAIN_BANDS
from spectralgpt.integrations.encoder import ENCODERS, SpectralGPTEncoder, encoder_config
from spectralgpt.models.config import UPERNET_LAYERS, scale_layers
from spectralgpt.models.registry import MODEL_CONFIGS

_PAPER = dict(paper_name="SpectralGPT: Spectral Remote Sensing Foundation Model", paper_ids="arXiv:2311.07113",
              origin_url="https://github.com/danfenghong/IEEE_TPAMI_SpectralGPT", license="apache-2.0")


def _cfg(name: str) -> dict:
    base = MODEL_CONFIGS[ENCODERS[name]]
    img, bands = base["img_size"], tuple(base.get("bands", PRETRAIN_BANDS))
    return dict(url=None, file=None, custom_load=True, num_classes=0, input_size=(len(bands), img, img),
                fixed_input_size=True, mean=(0.0,) * len(bands), std=(1.0,) * len(bands), first_conv=None,
                classifier="head", crop_pct=1.0, interpolation="bicubic",
                description=f"SpectralGPT encoder ({ENCODERS[name]}); bands {', '.join(bands)}, each min-max "
                            "scaled to [0, 1] per image", **_PAPER)


#: timm's pretrained configurations, one per model (read by `register_model`)
default_cfgs = generate_default_cfgs({name: _cfg(name) for name in ENCODERS})


def _build(variant: str):
    def build(img_size=None, in_chans=None, num_classes: int = 0, global_pool: str = "avg", drop_rate: float = 0.0,
              drop_path_rate: float = 0.0, bands=None):
        cfg = encoder_config(variant, img_size=img_size, in_chans=in_chans, bands=bands,
                             drop_path_rate=drop_path_rate)
        return SpectralGPTEncoder(cfg, num_classes=num_classes, global_pool=global_pool, drop_rate=drop_rate)
    return build


def _filter(state_dict: dict, model: SpectralGPTEncoder) -> dict:
    """timm's pretrained filter (``pretrained_cfg_overlay=dict(state_dict=...)``): a checkpoint container and a
    DDP prefix unwrapped; the encoder's load hook then leaves out the MAE-only keys and resizes the position table."""
    state_dict = dict(state_dict.get("model", state_dict))
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


def _create(variant: str, pretrained: bool = False, **kwargs) -> SpectralGPTEncoder:
    depth = MODEL_CONFIGS[ENCODERS[variant]]["depth"]
    out_indices = kwargs.pop("out_indices", scale_layers(UPERNET_LAYERS, depth))
    return build_model_with_cfg(_build(variant), variant, pretrained, pretrained_filter_fn=_filter,
                                feature_cfg=dict(out_indices=out_indices, feature_cls="getter"), **kwargs)


def _entrypoint(variant: str):
    def fn(pretrained: bool = False, **kwargs) -> SpectralGPTEncoder:
        return _create(variant, pretrained=pretrained, **kwargs)
    fn.__name__ = fn.__qualname__ = variant
    fn.__module__ = __name__
    fn.__doc__ = f"SpectralGPT encoder of {ENCODERS[variant]} (see spectralgpt.integrations.timm)."
    return fn


#: the registered model names
MODEL_NAMES: tuple[str, ...] = tuple(ENCODERS)
for _name in MODEL_NAMES:
    globals()[_name] = register_model(_entrypoint(_name))
del _name
