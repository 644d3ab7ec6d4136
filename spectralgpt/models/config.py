"""One validated configuration object for every SpectralGPT model.

Sizes are bounded (`LIMITS`) well above the published huge model, so that a config.json from a model folder cannot
ask for an absurd allocation (embed_dim 65536, depth 4096) before its weights are even looked at; ratios lie in
[0, 1) and loss weights are finite and >= 0.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from spectralgpt.bands import PRETRAIN_BANDS, canonical_list

Kind = Literal["mae", "classifier", "segmentation", "change"]
#: model kinds with a per-pixel head (`head` chooses which)
DENSE_KINDS = ("segmentation", "change")
#: PANGAEA's encoder layers for UPerNet on a 12-block ViT (scaled to other depths, see `feature_layers`)
UPERNET_LAYERS = (3, 5, 7, 11)
MAX_UPERNET_LEVELS = 6


def scale_layers(layers, depth: int, reference_depth: int = 12) -> tuple[int, ...]:
    """Block indices chosen for a `reference_depth`-block encoder mapped to one of `depth` blocks at the same
    relative depth: block i -> round((i + 1) * depth / reference_depth) - 1, within [0, depth - 1].
    (3, 5, 7, 11) stays itself at depth 12 and becomes (0, 1, 2, 3) at 4, (2, 3, 4, 7) at 8, (7, 11, 15, 23) at 24."""
    return tuple(min(max(math.floor((i + 1) * depth / reference_depth + 0.5) - 1, 0), depth - 1) for i in layers)

#: upper bounds of the integer sizes (the published huge model: embed_dim 1280, depth 32, 16 heads, 128 px)
LIMITS = {"img_size": 2048, "patch_size": 128, "t_patch_size": 64, "num_bands": 64, "embed_dim": 8192,
          "depth": 128, "num_heads": 128, "decoder_embed_dim": 8192, "decoder_depth": 64, "decoder_num_heads": 128,
          "num_classes": 100_000, "fpn_channels": 8192}
MAX_PYRAMID_CHANNELS = 16384
MAX_TOKENS = 65536  # spectral groups x spatial grid cells: attention cost grows with its square
MAX_MLP_RATIO = 16.0


class ModelConfig(BaseModel):
    """Architecture and loss options. Legacy switches reproduce quirks of the published code (section 9 of
    the reference); every default is the fixed behaviour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Kind = "mae"
    img_size: int = 128
    patch_size: int = 8
    t_patch_size: int = 3  # bands per spectral token (u)
    num_bands: int = 12
    bands: tuple[str, ...] = PRETRAIN_BANDS  # names of the input bands, in order
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.0
    grad_checkpointing: bool = False

    # MAE decoder and loss
    decoder_embed_dim: int = 512
    decoder_depth: int = 4
    decoder_num_heads: int = 16
    norm_pix_loss: bool = False
    spectral_loss_weight: float = 1.0  # weight of the spectrally aggregated term (loss3)
    loss3_on_raw_targets: bool = False  # legacy: loss3 on raw targets even under norm_pix_loss

    # downstream heads
    num_classes: int = 10
    multilabel: bool = False
    pool_skip_first_token: bool = False  # legacy bug 1: mean over tokens[1:]
    legacy_joint_pos_embed: bool = False  # legacy bug 2: zero-init joint pos_embed, pretrained ones unused
    head_dropout: float = 0.0
    # scene heads: "mean" over all tokens (the published classifier) or "spectral": a mean over space per
    # spectral group, each normed, concatenated (num_groups x embed_dim features). A mean over all tokens adds
    # the groups' embeddings together, so a spectrum's shape across the groups reaches the head only through
    # what the blocks mix into each token; the spectral pool hands it over directly.
    pool: Literal["mean", "spectral"] = "mean"
    pyramid_channels: tuple[int, int, int, int] = (256, 512, 1024, 2048)
    fpn_channels: int = 256
    dense_dropout: float = 0.5
    dense_head_legacy: bool = False  # legacy bug 19: encoder's final norm not applied before the dense head
    # dense head: "pyramid" (the published head on the last block, models/dense.py) or "upernet" (PANGAEA-style
    # UPerNet on the block outputs `upernet_layers`, models/upernet.py); None: (3, 5, 7, 11) scaled to `depth`
    head: Literal["pyramid", "upernet"] = "pyramid"
    upernet_layers: tuple[int, ...] | None = None

    @field_validator("bands", mode="before")
    @classmethod
    def _bands(cls, v):
        return canonical_list(v)

    @field_validator("img_size", "patch_size", "t_patch_size", "num_bands", "embed_dim", "depth", "num_heads",
                     "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "num_classes", "fpn_channels")
    @classmethod
    def _positive(cls, v, info):
        top = LIMITS[info.field_name]
        if not 1 <= v <= top:
            raise ValueError(f"{info.field_name} must be in [1, {top}], got {v}")
        return v

    @field_validator("pyramid_channels")
    @classmethod
    def _pyramid(cls, v):
        if not all(1 <= c <= MAX_PYRAMID_CHANNELS for c in v):
            raise ValueError(f"pyramid_channels must each be in [1, {MAX_PYRAMID_CHANNELS}], got {list(v)}")
        return v

    @field_validator("mlp_ratio")
    @classmethod
    def _mlp_ratio(cls, v):
        if not (math.isfinite(v) and 0 < v <= MAX_MLP_RATIO):
            raise ValueError(f"mlp_ratio must be in (0, {MAX_MLP_RATIO}], got {v}")
        return v

    @field_validator("spectral_loss_weight")
    @classmethod
    def _weight(cls, v, info):
        if not (math.isfinite(v) and v >= 0):
            raise ValueError(f"{info.field_name} must be finite and >= 0, got {v}")
        return v

    @field_validator("drop_path_rate", "head_dropout", "dense_dropout")
    @classmethod
    def _probability(cls, v, info):
        if not 0.0 <= v < 1.0:  # NaN fails this too
            raise ValueError(f"{info.field_name} must be in [0, 1), got {v}")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if self.num_bands % self.t_patch_size:
            raise ValueError(f"num_bands {self.num_bands} is not a multiple of t_patch_size {self.t_patch_size}")
        if len(self.bands) != self.num_bands:
            raise ValueError(f"bands names {len(self.bands)} bands but num_bands is {self.num_bands}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.decoder_embed_dim % self.decoder_num_heads:
            raise ValueError(f"decoder_embed_dim {self.decoder_embed_dim} is not divisible by "
                             f"decoder_num_heads {self.decoder_num_heads}")
        if self.head == "upernet" and self.kind not in DENSE_KINDS:
            raise ValueError(f"head 'upernet' is a dense head (model kinds {', '.join(DENSE_KINDS)}), not for a "
                             f"{self.kind} model")
        if self.pool == "spectral" and self.pool_skip_first_token:
            raise ValueError("pool 'spectral' keeps every token of every spectral group; it cannot be combined "
                             "with the legacy pool_skip_first_token")
        if self.upernet_layers is not None:
            layers = self.upernet_layers
            if not 1 <= len(layers) <= MAX_UPERNET_LEVELS or not all(0 <= i < self.depth for i in layers):
                raise ValueError(f"upernet_layers must be 1 to {MAX_UPERNET_LEVELS} block indices in [0, "
                                 f"{self.depth - 1}] (depth {self.depth}), got {list(layers)}")
            if list(layers) != sorted(layers):
                raise ValueError(f"upernet_layers must run from shallow to deep, got {list(layers)}")
        if self.num_tokens > MAX_TOKENS:
            raise ValueError(f"{self.num_groups} spectral groups x {self.grid}x{self.grid} patches = {self.num_tokens} "
                             f"tokens, over the limit of {MAX_TOKENS}")
        return self

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_groups(self) -> int:
        return self.num_bands // self.t_patch_size

    @property
    def num_tokens(self) -> int:
        return self.num_groups * self.grid * self.grid

    @property
    def feature_layers(self) -> tuple[int, ...]:
        """The block outputs the UPerNet head reads: `upernet_layers`, else (3, 5, 7, 11) at the same relative
        depth of this encoder (block i -> round((i + 1) * depth / 12) - 1: (0, 1, 2, 3) for 4 blocks)."""
        return tuple(self.upernet_layers) if self.upernet_layers is not None else scale_layers(UPERNET_LAYERS,
                                                                                                    self.depth)

    @property
    def patch_dim(self) -> int:
        return self.t_patch_size * self.patch_size * self.patch_size
