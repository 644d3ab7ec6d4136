"""The SpectralGPT encoder with the interface other toolkits expect, and no dependency on them.

`SpectralGPTEncoder` is our `SpectralViT` (3-D spectral-spatial tokens, separate spatial and spectral position
tables, pre-norm blocks) with timm's model interface: ``forward_features`` / ``forward_head`` / ``forward``,
``num_classes`` / ``reset_classifier`` / ``get_classifier``, ``forward_intermediates`` and
``prune_intermediate_layers`` (what timm's ``features_only=True`` uses), ``feature_info``,
``set_grad_checkpointing``, ``no_weight_decay``, ``group_matcher`` and ``load_pretrained``. It backs the timm
models of `spectralgpt.integrations.timm` and (as `SpectralGPTBackbone`) the TerraTorch backbones of
`spectralgpt.integrations.terratorch`.

State dict: exactly the published encoder keys (``patch_embed.proj.*``, ``pos_embed_spatial``,
``pos_embed_temporal``, ``blocks.N.*``, ``norm.*``), plus ``head.*`` when ``num_classes > 0``. Loading a published
MAE checkpoint (``SpectralGPT.pth`` / ``SpectralGPT+.pth``, encoder + decoder) works with plain
``load_state_dict`` too: a load hook drops the MAE-only keys (``mask_token``, ``decoder_*``), resizes a spatial
position table of another image size (bicubic) and, for a model without a head, drops ``head.*``.

Semantics (shapes for B images of 12 bands, T = 12 / 3 = 4 spectral groups, L = (img / 8)^2 positions, D width):

* ``global_pool="avg"`` (default): ``forward_features`` -> (B, T*L, D) last-block tokens *before* the final
  norm; ``forward_head`` pools the mean over tokens, applies ``norm`` (the published fine-tuning classifier's
  order, as in timm's ViTs with ``fc_norm``), dropout and the head. A `SpectralClassifier` fine-tuned here gives
  identical logits after its state dict is loaded into this model.
* ``global_pool=""``: ``forward_features`` -> (B, T*L, D) tokens after ``norm`` (the MAE encoder's output);
  ``forward_head`` applies the head to every token.
* ``forward_intermediates(output_fmt="NCHW")``: per-block maps (B, T*D, H/8, W/8), the T group tokens of one
  position concatenated along channels (channel t*D + d), as TerraTorch's ``ReshapeTokensToImage`` and PANGAEA
  lay out SpectralGPT features; ``output_fmt="NLC"``: tokens (B, T*L, D).

Inputs: (B, 12, img, img) in the pretraining band order B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B11, B12, each
band min-max scaled to [0, 1] per image (see `spectralgpt.data.normalize`); ``img_size`` is fixed at
construction (the position table is resized when weights are loaded, never at run time).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from spectralgpt.bands import PRETRAIN_BANDS, canonical_list
from spectralgpt.models import pos_embed
from spectralgpt.models.config import ModelConfig
from spectralgpt.models.registry import MODEL_CONFIGS
from spectralgpt.models.vit import SpectralViT

log = logging.getLogger(__name__)

#: timm / TerraTorch name -> the published (or CPU-sized) MAE configuration whose encoder it is
ENCODERS: dict[str, str] = {
    "spectralgpt_" + name.removeprefix("mae_"): name for name in MODEL_CONFIGS if name.startswith("mae_")
}
#: keys only the MAE pretraining model has (dropped when a published checkpoint is loaded into an encoder)
MAE_ONLY_PREFIXES = ("decoder_", "mask_token")
POOLS = ("avg", "")
#: the encoder fields of a named MAE configuration that an encoder keeps
_ENCODER_FIELDS = ("img_size", "patch_size", "t_patch_size", "num_bands", "bands", "embed_dim", "depth", "num_heads",
                   "mlp_ratio")


def encoder_config(name: str, img_size=None, in_chans: int | None = None, bands=None, drop_path_rate: float = 0.0,
                   grad_checkpointing: bool = False) -> ModelConfig:
    """The validated encoder configuration of a named SpectralGPT encoder (`ENCODERS`).

    img_size: an int or a square (h, w) (timm passes its ``input_size``); in_chans / bands: must be the model's
    12 pretraining bands (other band sets go through `spectralgpt.bands.BandMapping` before the model)."""
    if name not in ENCODERS:
        raise KeyError(f"unknown SpectralGPT encoder {name!r}; known: {', '.join(ENCODERS)}")
    base = MODEL_CONFIGS[ENCODERS[name]]
    fields = {k: base[k] for k in _ENCODER_FIELDS if k in base}
    if img_size is not None:
        if isinstance(img_size, (tuple, list)):
            if len(img_size) != 2 or img_size[0] != img_size[1]:
                raise ValueError(f"{name}: img_size must be square, got {tuple(img_size)}")
            img_size = img_size[0]
        fields["img_size"] = int(img_size)
    want = tuple(fields.get("bands", PRETRAIN_BANDS))
    if bands is not None and canonical_list(bands) != want:
        raise ValueError(f"{name} takes the bands {', '.join(want)} in this order, got {list(bands)}; map other "
                         "band sets onto them first (spectralgpt.bands.BandMapping)")
    if in_chans is not None and int(in_chans) != len(want):
        raise ValueError(f"{name} takes {len(want)} input bands ({', '.join(want)}), got in_chans={in_chans}; map "
                         "other band sets onto them first (spectralgpt.bands.BandMapping)")
    return ModelConfig(kind="classifier", drop_path_rate=drop_path_rate, grad_checkpointing=grad_checkpointing,
                       **fields)


def take_indices(depth: int, indices=None) -> list[int]:
    """Absolute block indices: None -> all blocks; an int n -> the last n; a list -> those (negative from the end)."""
    if indices is None:
        indices = depth
    if isinstance(indices, int):
        if not 0 < indices <= depth:
            raise ValueError(f"last-n indices {indices} out of range (1 to {depth})")
        return list(range(depth - indices, depth))
    out = []
    for i in indices:
        j = int(i) + depth if int(i) < 0 else int(i)
        if not 0 <= j < depth:
            raise ValueError(f"block index {i} out of range for {depth} blocks")
        out.append(j)
    if not out:
        raise ValueError("no block index given")
    return out


def tokens_to_maps(tokens: torch.Tensor, groups: int, grid: int) -> torch.Tensor:
    """(B, T*L, D) spectral-group-major tokens -> (B, T*D, h, w) maps, channel t*D + d."""
    b, _, d = tokens.shape
    return tokens.reshape(b, groups, grid, grid, d).permute(0, 1, 4, 2, 3).reshape(b, groups * d, grid, grid)


class SpectralGPTEncoder(SpectralViT):
    """See the module docstring. Build with `create_encoder(name, ...)` or from an encoder `ModelConfig`."""

    def __init__(self, cfg: ModelConfig, num_classes: int = 0, global_pool: str = "avg", drop_rate: float = 0.0):
        if cfg.legacy_joint_pos_embed:
            raise ValueError("the encoder uses the published separate spatial and spectral position tables; "
                             "legacy_joint_pos_embed is a classifier-only legacy switch")
        if global_pool not in POOLS:
            raise ValueError(f"global_pool={global_pool!r}; allowed: 'avg', '' (tokens)")
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        super().__init__(cfg)
        d = cfg.embed_dim
        self.num_classes, self.global_pool = int(num_classes), global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = d
        self.num_prefix_tokens, self.has_class_token = 0, False
        self.patch_size = cfg.patch_size
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(d, num_classes) if num_classes > 0 else nn.Identity()
        #: one entry per block (timm's feature_info): maps of T*D channels at 1/patch of the input
        self.feature_info = [dict(module=f"blocks.{i}", num_chs=cfg.num_groups * d, reduction=cfg.patch_size)
                             for i in range(cfg.depth)]
        self.init_weights()
        if isinstance(self.head, nn.Linear):
            nn.init.trunc_normal_(self.head.weight, std=2e-5)  # as SpectralClassifier: near-zero starting logits
        register = getattr(self, "register_load_state_dict_pre_hook", None)
        if register is not None:
            register(SpectralGPTEncoder._adapt_state_dict)
        else:  # torch < 2.5
            self._register_load_state_dict_pre_hook(SpectralGPTEncoder._adapt_state_dict, with_module=True)

    # -- loading ---------------------------------------------------------------------------------------
    @staticmethod
    def _adapt_state_dict(module, state_dict, prefix, *_):
        """Load hook: a published MAE checkpoint (or one for another image size) into this encoder."""
        dropped = [k for k in state_dict if k.startswith(prefix) and k[len(prefix):].startswith(MAE_ONLY_PREFIXES)]
        if module.num_classes == 0:
            dropped += [k for k in state_dict if k.startswith(prefix + "head.")]
        for k in dropped:
            del state_dict[k]
        if dropped:
            log.info("encoder: left out %d keys of the checkpoint it has no use for (%s, ...)", len(dropped),
                     dropped[0])
        k = prefix + "pos_embed_spatial"
        want = module.pos_embed_spatial.shape
        if k in state_dict and state_dict[k].ndim == 3 and state_dict[k].shape != want and (
                state_dict[k].shape[2] == want[2]):
            log.info("encoder: resized %s %s -> %s", k, list(state_dict[k].shape), list(want))
            state_dict[k] = pos_embed.resize_spatial(state_dict[k], module.cfg.grid)

    def load_pretrained(self, checkpoint_path: str | Path, prefix: str = "") -> None:
        """Weights from a published ``.pth`` (read with the safe allow-list loader: no pickled code runs), one of
        our safetensors files or model folders; every encoder key must be present. timm calls this for
        ``pretrained=True, pretrained_cfg_overlay=dict(file=...)``."""
        from spectralgpt.models.checkpoint import load_pretrained, read_state_dict

        sd = read_state_dict(checkpoint_path)
        if prefix:
            sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        report = load_pretrained(self, sd)
        log.info("encoder weights from %s: %s", checkpoint_path, report)

    # -- timm's model interface --------------------------------------------------------------------------
    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x, norm=self.global_pool == "")

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.global_pool == "avg":
            x = self.norm(x.mean(dim=1))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            if global_pool not in POOLS:
                raise ValueError(f"global_pool={global_pool!r}; allowed: 'avg', '' (tokens)")
            self.global_pool = global_pool
        self.num_classes = int(num_classes)
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.cfg = self.cfg.model_copy(update={"grad_checkpointing": bool(enable)})

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"pos_embed_spatial", "pos_embed_temporal"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict:
        return dict(stem=r"^pos_embed_spatial|^pos_embed_temporal|^patch_embed",
                    blocks=r"^blocks\.(\d+)" if coarse else [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    def forward_intermediates(self, x: torch.Tensor, indices=None, norm: bool = False, output_fmt: str = "NCHW",
                              intermediates_only: bool = False, stop_early: bool = False):
        """Outputs of blocks `indices` (None: all; an int n: the last n; negative from the end), each through the
        final norm when `norm`, as maps (``NCHW``: (B, T*D, h, w)) or tokens (``NLC``: (B, T*L, D)). Returns the
        list, or (final features, list) unless `intermediates_only`."""
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt={output_fmt!r}; allowed: 'NCHW', 'NLC'")
        wanted = take_indices(len(self.blocks), indices)
        last = len(self.blocks) - 1 if not (intermediates_only or stop_early) else max(wanted)
        x = self.patch_embed(x) + self.position_table()
        found, start = {}, 0
        for i in sorted(set(wanted)) + ([last] if last not in wanted else []):
            x = self.run_blocks(x, self.blocks[start:i + 1])
            start = i + 1
            if i in wanted:
                y = self.norm(x) if norm else x
                found[i] = tokens_to_maps(y, self.cfg.num_groups, self.cfg.grid) if output_fmt == "NCHW" else y
        out = [found[i] for i in wanted]
        if intermediates_only:
            return out
        final = self.norm(x) if self.global_pool == "" else x
        return final, out

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False, prune_head: bool = True) -> list[int]:
        """Drop the blocks after the deepest of `indices` (and the norm / head); returns the absolute indices."""
        wanted = take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[: max(wanted) + 1]
        self.feature_info = self.feature_info[: max(wanted) + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return wanted


class SpectralGPTBackbone(SpectralGPTEncoder):
    """Per-layer features for dense decoders (TerraTorch's backbone convention).

    ``forward(x)`` -> a list with one tensor per block in `out_indices` (default: every block), each through the
    final norm when `norm`: tokens (B, T*L, D) with ``output="tokens"`` (TerraTorch's necks, e.g.
    ``ReshapeTokensToImage(remove_cls_token=False, effective_time_dim=T)``, make maps of them), or maps
    (B, T*D, H/8, W/8) with ``output="maps"``. ``out_channels`` = [T*D] per output: the channels of the maps, as
    TerraTorch's ViT backbones report them. ``prepare_features_for_image_model`` turns tokens into those maps
    (used by TerraTorch when no neck is configured). State-dict keys: the published encoder's."""

    def __init__(self, cfg: ModelConfig, out_indices=None, norm: bool = True, output: str = "tokens"):
        if output not in ("tokens", "maps"):
            raise ValueError(f"output={output!r}; allowed: 'tokens', 'maps'")
        super().__init__(cfg, num_classes=0, global_pool="")
        self.out_indices = take_indices(cfg.depth, out_indices)
        self.norm_features, self.output = bool(norm), output
        self.out_channels = [cfg.num_groups * cfg.embed_dim] * len(self.out_indices)
        self.effective_time_dim = cfg.num_groups

    def forward(self, x: torch.Tensor, **_) -> list[torch.Tensor]:
        return self.forward_intermediates(x, self.out_indices, norm=self.norm_features,
                                          output_fmt="NCHW" if self.output == "maps" else "NLC",
                                          intermediates_only=True)

    def prepare_features_for_image_model(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [f if f.ndim == 4 else tokens_to_maps(f, self.cfg.num_groups, self.cfg.grid) for f in features]


def create_encoder(name: str, pretrained: str | Path | None = None, *, img_size=None, in_chans: int | None = None,
                   bands=None, drop_path_rate: float = 0.0, num_classes: int = 0, global_pool: str = "avg",
                   drop_rate: float = 0.0) -> SpectralGPTEncoder:
    """A named encoder (`ENCODERS`), with weights from `pretrained` (a published .pth, our safetensors file or
    model folder) when given."""
    cfg = encoder_config(name, img_size=img_size, in_chans=in_chans, bands=bands, drop_path_rate=drop_path_rate)
    model = SpectralGPTEncoder(cfg, num_classes=num_classes, global_pool=global_pool, drop_rate=drop_rate)
    if pretrained:
        model.load_pretrained(pretrained)
    return model


def create_backbone(name: str, pretrained: str | Path | None = None, *, img_size=None, in_chans: int | None = None,
                    bands=None, drop_path_rate: float = 0.0, out_indices=None, norm: bool = True,
                    output: str = "tokens") -> SpectralGPTBackbone:
    """A named per-layer-feature backbone, with weights from `pretrained` when given."""
    cfg = encoder_config(name, img_size=img_size, in_chans=in_chans, bands=bands, drop_path_rate=drop_path_rate)
    model = SpectralGPTBackbone(cfg, out_indices=out_indices, norm=norm, output=output)
    if pretrained:
        model.load_pretrained(pretrained)
    return model


__all__ = ["ENCODERS", "SpectralGPTBackbone", "SpectralGPTEncoder", "create_backbone", "create_encoder",
           "encoder_config", "take_indices", "tokens_to_maps"]
