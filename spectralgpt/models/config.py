"""One validated configuration object for every SpectralGPT model."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from spectralgpt.bands import PRETRAIN_BANDS, canonical_list

Kind = Literal["mae", "classifier", "segmentation", "change"]


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
    pyramid_channels: tuple[int, int, int, int] = (256, 512, 1024, 2048)
    fpn_channels: int = 256
    dense_dropout: float = 0.5
    dense_head_legacy: bool = False  # legacy bug 19: encoder's final norm not applied before the dense head

    @field_validator("bands", mode="before")
    @classmethod
    def _bands(cls, v):
        return canonical_list(v)

    @field_validator("img_size", "patch_size", "t_patch_size", "num_bands", "embed_dim", "depth", "num_heads",
                     "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "num_classes", "fpn_channels")
    @classmethod
    def _positive(cls, v, info):
        if v < 1:
            raise ValueError(f"{info.field_name} must be >= 1, got {v}")
        return v

    @field_validator("drop_path_rate", "head_dropout", "dense_dropout")
    @classmethod
    def _probability(cls, v, info):
        if not 0.0 <= v < 1.0:
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
    def patch_dim(self) -> int:
        return self.t_patch_size * self.patch_size * self.patch_size
