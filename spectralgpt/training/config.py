"""The optimisation settings shared by pretraining and fine-tuning."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (overrides epochs)")
    batch_size: int = Field(16, ge=1)
    accum_iter: int = Field(1, ge=1)
    blr: float = Field(1.5e-4, gt=0, description="base lr; lr = blr * effective batch / 256")
    lr: float | None = Field(None, gt=0, description="absolute lr; overrides blr")
    min_lr: float = Field(0.0, ge=0)
    warmup_epochs: float = Field(0.0, ge=0)
    weight_decay: float = Field(0.05, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    layer_decay: float | None = Field(None, gt=0, le=1)
    no_weight_decay: tuple[str, ...] = ()
    clip_grad: float | None = Field(None, gt=0)
    amp: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    device: str = "auto"
    compile: bool = False
    seed: int = 0
    deterministic: bool = False
    num_workers: int = Field(0, ge=0)
    augment_on: Literal["auto", "loader", "device"] = Field(
        "auto", description="where datasets that split prepare/finish do their float work: in the loader's "
        "processes, or on the training device after the copy (auto: device on CUDA, loader elsewhere)")
    checkpoint_every: int = Field(100, ge=1, description="optimizer steps between checkpoints")
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(10, ge=1)
    progress: bool = True

    @model_validator(mode="after")
    def _check(self):
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {self.betas}")
        return self

    def effective_lr(self, world_size: int = 1) -> float:
        return self.lr if self.lr is not None else self.blr * self.batch_size * self.accum_iter * world_size / 256
