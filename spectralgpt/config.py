"""Typed, validated parameters for every stage, read from `params.yaml` (one section per stage).

A wrong key, type or value fails before any work, with the field's dotted path, the value given and what is
allowed: `ConfigError: params.yaml: pretrain.mask_ratio = 1.2: Input should be less than 1`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from spectralgpt.tasks import FINETUNE_TASKS, get_task
from spectralgpt.tasks import TASKS as TASK_OBJECTS
from spectralgpt.training.config import TrainConfig

TASKS = FINETUNE_TASKS  #: the downstream tasks, from `spectralgpt.tasks`
Task = Literal[TASKS]
#: the model kind each task fine-tunes
MODEL_KIND = {name: get_task(name).model_kind for name in TASKS}
DATASET_KINDS = ("eurosat", "bigearthnet", "oscd", "sen1floods11", "segmunich", "fmow", "folder", "hls_burn_scars",
                 "geobench", "ucmerced")
#: corpus names: the keys of data.sources and of the per-corpus preprocess settings
CORPORA = ("pretrain", *TASKS)
SPLITS = ("train", "val", "test")
#: class count of a task where it does not depend on the data
FIXED_CLASS_COUNT = {name: t.fixed_classes for name, t in TASK_OBJECTS.items() if t.fixed_classes is not None}
MAX_WORKERS = 256
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_PATH_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def check_device(name) -> str:
    """A torch device string we accept (auto, cpu, cuda, cuda:N, mps); ValueError naming the allowed forms."""
    if not isinstance(name, str) or not _DEVICE.match(name.strip()):
        raise ValueError(f"device {name!r} is not a torch device; allowed: auto, cpu, cuda, cuda:N, mps")
    return name.strip()


def _check_corpus_keys(mapping: dict, what: str) -> dict:
    bad = [k for k in mapping if k not in CORPORA]
    if bad:
        raise ValueError(f"unknown corpus name(s) {bad} in {what}; allowed: {', '.join(CORPORA)}")
    return mapping


def _check_workers(v: int) -> int:
    if v > MAX_WORKERS:
        raise ValueError(f"workers = {v} is over the limit of {MAX_WORKERS}")
    return v


def _check_train_device(train):
    check_device(train.device)
    return train


def _check_class_weights(v):
    if isinstance(v, list):
        if not v:
            raise ValueError("class_weights is empty; give one weight per class, 'auto' or null")
        bad = [w for w in v if not math.isfinite(w) or w < 0]
        if bad:
            raise ValueError(f"class weights must be finite and >= 0, got {bad}")
        if not any(w > 0 for w in v):
            raise ValueError("class weights are all 0")
    return v


def _check_path_component(v: str, what: str) -> str:
    """A name that becomes a folder or file name (runs/, reports/): one plain path component."""
    if not _PATH_COMPONENT.match(v) or ".." in v:
        raise ValueError(f"{what} {v!r} must be one plain path component: letters, digits, '.', '_', '-', "
                         "starting with a letter or digit, no '/' and no '..'")
    return v


class ConfigError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class SourceConfig(_Strict):
    """One raw dataset: its layout (`kind`), where it lies, and reader options."""

    kind: Literal["eurosat", "bigearthnet", "oscd", "sen1floods11", "segmunich", "fmow", "folder", "hls_burn_scars",
                  "geobench", "ucmerced"]
    root: str
    split: str | None = None
    options: dict[str, Any] = {}
    bands: list[str] | None = Field(None, description="bands the corpus stores, by name (default: the reader's own "
                                    "band set: the 12 pretraining bands for Sentinel-2 layouts, the 6 HLS bands for "
                                    "hls_burn_scars)")
    sensor: str | None = Field(None, description="sensor of plain band names (s2, hls, oli, rgb; see spectralgpt.bands)")

    @model_validator(mode="after")
    def _bands(self):
        from spectralgpt.bands import canonical_list, sensor_key

        if self.sensor is not None:
            self.sensor = sensor_key(self.sensor)
        if self.bands is not None:
            if not self.bands:
                raise ValueError("bands is empty; name the bands to store or leave it out")
            self.bands = list(canonical_list(self.bands, self.sensor))
        return self


class SyntheticConfig(_Strict):
    seed: int = 0
    scale: Literal["tiny", "demo", "small"] = "demo"


class DataConfig(_Strict):
    raw: str = "data/raw"
    interim: str = "data/interim"
    shards: str = "data/shards"
    synthetic: SyntheticConfig = SyntheticConfig()
    sources: dict[str, SourceConfig] = Field(default_factory=dict,
                                             description="corpus name (pretrain or a task) -> raw dataset")

    @field_validator("sources")
    @classmethod
    def _names(cls, v):
        return _check_corpus_keys(v, "data.sources")


#: normalisation recipe per corpus (reference 3.4): per-image min-max for pretraining and dense tasks, the
#: dataset z-score for EuroSAT, the mean +/- 2 sigma clip for BigEarthNet
DEFAULT_RECIPES = {name: t.recipe for name, t in TASK_OBJECTS.items()}
DEFAULT_FITS = {name: t.fit for name, t in TASK_OBJECTS.items()}  # dense tasks: tiles, stitched back at evaluation


class RunnerConfig(_Strict):
    """Where a stage's Prefect tasks run: ``threads`` or ``processes`` on this machine, or ``dask``: prefect-dask's
    DaskTaskRunner on the cluster at ``address`` (``tcp://host:8786``), or on a local cluster of ``workers``
    worker processes when the address is null. ``workers`` defaults to the stage's own ``workers``."""

    kind: Literal["threads", "processes", "dask"] = "threads"
    address: str | None = None
    workers: int | None = Field(None, ge=1)

    @field_validator("workers")
    @classmethod
    def _workers(cls, v):
        return v if v is None else _check_workers(v)

    @field_validator("address")
    @classmethod
    def _address(cls, v):
        if v is not None and not re.match(r"^(tcp|tls|inproc|ucx)://[^\s/]+$", v):
            raise ValueError(f"address {v!r} is not a Dask scheduler address such as tcp://host:8786")
        return v

    @model_validator(mode="after")
    def _address_needs_dask(self):
        if self.address is not None and self.kind != "dask":
            raise ValueError(f"address is only used with kind: dask (kind is {self.kind!r})")
        return self


class IngestConfig(_Strict):
    max_bad_fraction: float = Field(0.05, ge=0, le=1, description="refuse a corpus with more unusable samples "
                                    "(ingest's cheap checks, then preprocessing's decode checks)")
    workers: int = Field(2, ge=1)
    runner: RunnerConfig = Field(default_factory=RunnerConfig, description="where the check tasks run")

    @field_validator("workers")
    @classmethod
    def _workers(cls, v):
        return _check_workers(v)


class PreprocessConfig(_Strict):
    size: int = Field(128, ge=8, description="stored image side in pixels")
    shard_size: int = Field(256, ge=1)
    workers: int = Field(2, ge=1)
    sizes: dict[str, int] = Field(default_factory=dict, description="per-corpus size overrides")
    recipes: dict[str, Literal["minmax", "zscore", "clip2sigma"]] = Field(default_factory=dict)
    fits: dict[str, Literal["crop", "tile", "resize"]] = Field(default_factory=dict)
    runner: RunnerConfig = Field(default_factory=RunnerConfig, description="where the shard tasks run")

    @field_validator("sizes", "recipes", "fits")
    @classmethod
    def _corpus_keys(cls, v, info):
        return _check_corpus_keys(v, f"preprocess.{info.field_name}")

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v):
        bad = {k: n for k, n in v.items() if n < 8}
        if bad:
            raise ValueError(f"image sizes must be >= 8 pixels, got {bad}")
        return v

    @field_validator("workers")
    @classmethod
    def _workers(cls, v):
        return _check_workers(v)

    def size_for(self, corpus: str) -> int:
        return self.sizes.get(corpus, self.size)

    def recipe_for(self, corpus: str) -> str:
        return self.recipes.get(corpus, DEFAULT_RECIPES.get(corpus, "minmax"))

    def fit_for(self, corpus: str) -> str:
        return self.fits.get(corpus, DEFAULT_FITS.get(corpus, "crop"))


class PretrainStage(_Strict):
    name: str
    img_size: int = Field(ge=8)
    epochs: float = Field(gt=0)
    corpus: str = "pretrain"
    blr: float | None = Field(None, gt=0)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v):
        """The stage name becomes a folder name (runs/, reports/): one plain path component."""
        if not _PATH_COMPONENT.match(v) or ".." in v:
            raise ValueError(f"stage name {v!r} must be one plain path component: letters, digits, '.', '_', '-', "
                             "starting with a letter or digit, no '/' and no '..'")
        return v

    @field_validator("corpus")
    @classmethod
    def _corpus(cls, v):
        if v not in CORPORA:
            raise ValueError(f"unknown corpus {v!r}; allowed: {', '.join(CORPORA)}")
        return v


_ENDPOINT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})$")
#: environment variables for DistributedConfig's fields (they win over params.yaml; a command-line flag wins over them)
DISTRIBUTED_ENV = {"nproc_per_node": "SPECTRALGPT_NPROC", "nnodes": "SPECTRALGPT_NNODES",
                   "node_rank": "SPECTRALGPT_NODE_RANK", "rdzv_backend": "SPECTRALGPT_RDZV_BACKEND",
                   "rdzv_endpoint": "SPECTRALGPT_RDZV_ENDPOINT", "rdzv_id": "SPECTRALGPT_RDZV_ID",
                   "join_timeout": "SPECTRALGPT_RDZV_TIMEOUT", "max_restarts": "SPECTRALGPT_MAX_RESTARTS"}


class DistributedConfig(_Strict):
    """How torchrun launches training: `nproc_per_node` workers on each of `nnodes` machines.

    Several nodes meet at `rdzv_endpoint` (host:port of one of them): with `c10d` (elastic, the default) torchrun
    assigns the global ranks itself; with `static` node `node_rank` holds global ranks node_rank * nproc_per_node
    onwards and the endpoint is the master address and port. Node 0 is the head: it runs the flow (DVC, MLflow);
    the others only start workers. `rdzv_id` names the job (the same on every node, unique per job)."""

    nproc_per_node: int = Field(1, ge=1, le=1024)
    nnodes: int = Field(1, ge=1, le=65536)
    node_rank: int = Field(0, ge=0)
    rdzv_backend: Literal["c10d", "static"] = "c10d"
    rdzv_endpoint: str | None = Field(None, description="host:port every node reaches (required when nnodes > 1)")
    rdzv_id: str = Field("spectralgpt-pretrain", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    join_timeout: int = Field(600, ge=1, description="seconds a c10d rendezvous waits for all nodes")
    max_restarts: int = Field(0, ge=0, description="torchrun restarts of failed workers (they resume from checkpoints)")

    @field_validator("rdzv_endpoint")
    @classmethod
    def _endpoint(cls, v):
        m = _ENDPOINT.match(v.strip()) if isinstance(v, str) else None
        if v is not None and not (m and 0 < int(m.group(2)) < 65536):
            raise ValueError(f"rdzv_endpoint {v!r} is not host:port (a port in 1-65535), such as 10.0.0.5:29400")
        return v.strip() if v else v

    @model_validator(mode="after")
    def _nodes(self):
        if self.node_rank >= self.nnodes:
            raise ValueError(f"node_rank = {self.node_rank} must be below nnodes = {self.nnodes} (0 to {self.nnodes - 1})")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError(f"nnodes = {self.nnodes} needs rdzv_endpoint: host:port of one node that every node reaches")
        return self

    @property
    def world_size(self) -> int:
        return self.nnodes * self.nproc_per_node

    def resolved(self, env=None, **flags) -> "DistributedConfig":
        """These settings with environment variables (`DISTRIBUTED_ENV`) over them and non-None `flags` over
        those, validated again: a bad value fails naming the variable or field, the value and what is allowed."""
        import os

        env = os.environ if env is None else env
        data, source = self.model_dump(), {}
        for field, var in DISTRIBUTED_ENV.items():
            if env.get(var, "").strip():
                data[field], source[field] = env[var].strip(), var
        for field, value in flags.items():
            if value is not None:
                data[field], source[field] = value, f"--{field.replace('_', '-')}"
        try:
            return type(self).model_validate(data)
        except ValidationError as e:
            named = ", ".join(f"{v}={data[k]!r}" for k, v in source.items())
            raise ConfigError(format_error(e, "pretrain.distributed") + (f" (given: {named})" if named else "")) from None


class PretrainConfig(_Strict):
    model: str = "mae_vit_tiny_patch8_64"
    model_overrides: dict[str, Any] = {}
    mask_ratio: float = Field(0.9, ge=0, lt=1)
    stages: list[PretrainStage] = Field(min_length=1)
    train: TrainConfig = TrainConfig()
    init: str | None = Field(None, description="published or own checkpoint to start from")
    figures_every: int = Field(1, ge=0, description="epochs between reconstruction figures (0: only at the end)")
    shards: str = "data/shards"
    out: str = "models/pretrain"
    distributed: DistributedConfig = Field(DistributedConfig(), description="torchrun launch (nodes, rendezvous)")

    @field_validator("train")
    @classmethod
    def _device(cls, v):
        return _check_train_device(v)

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, v):
        names = [s.name for s in v]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        return v

    @model_validator(mode="after")
    def _architecture(self):
        for stage in self.stages:
            arch = _check_model(self.model, self.model_overrides, f"stage {stage.name!r}", img_size=stage.img_size)
            if arch.kind != "mae":
                raise ValueError(f"model {self.model!r} is a {arch.kind} model; pretraining needs an MAE model")
        return self


def _check_model(name: str, overrides: dict, where: str, **extra):
    """The named architecture with overrides must be valid (sizes, bands, heads) before any work starts."""
    from spectralgpt.models.registry import model_config

    try:
        return model_config(name, **{**overrides, **extra})
    except KeyError as e:
        raise ValueError(f"{where}: {e.args[0]}") from None
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


class ValidateConfig(_Strict):
    """Validation while fine-tuning: when, which weights are kept, when to stop.

    Validation runs every `every_steps` optimizer steps, else every `every_epochs` epochs (default 1), and at
    the last step; `select: best` keeps the weights of the best validation score of the task's primary metric
    (`last`: the final weights); `patience` ends the run after that many validations without an improvement of
    more than `min_delta`."""

    every_steps: int | None = Field(None, ge=1)
    every_epochs: float | None = Field(None, gt=0)
    select: Literal["best", "last"] = "best"
    patience: int | None = Field(None, ge=1)
    min_delta: float = Field(0.0, ge=0)
    batch_size: int | None = Field(None, ge=1, description="validation batch size (default: the training one)")

    @model_validator(mode="after")
    def _one_schedule(self):
        if self.every_steps is not None and self.every_epochs is not None:
            raise ValueError("give every_steps or every_epochs, not both")
        return self


class FinetuneConfig(_Strict):
    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)

    task: Task
    model: str
    model_overrides: dict[str, Any] = {}
    corpus: str | None = None  # default: the task name
    img_size: int | None = Field(None, ge=8)
    pretrained: str | None = "models/pretrain"
    mode: Literal["full", "linear_probe", "scratch"] = "full"
    train: TrainConfig = TrainConfig()
    label_smoothing: float = Field(0.1, ge=0, lt=1)
    mixup: float = Field(0.0, ge=0, description="mixup alpha (0: off)")
    cutmix: float = Field(0.0, ge=0, description="cutmix alpha (0: off)")
    class_weights: list[float] | Literal["auto"] | None = None
    ignore_index: int = 255
    train_split: str = "train"
    val_split: str | None = Field(None, description="the stored split to validate on; 'train': a hold-out of "
                                  "the training split (val_holdout of its scenes, by a hash of their ids); "
                                  "default: the task's ('val', or 'train' for SegMunich and OSCD)")
    val_holdout: float = Field(0.1, gt=0, lt=1, description="fraction of training scenes held out (val_split: train)")
    validation: ValidateConfig | None = Field(ValidateConfig(), alias="validate",
                                              description="params key `validate`; null: no validation, last weights")
    thresholds: Literal["per_class", "global"] | float = Field(
        "per_class", description="multi-label decision thresholds: chosen per class or one global on the "
        "validation split to maximise F1, or a fixed probability")
    shards: str = "data/shards"
    out: str | None = None  # default: models/<task>
    bands: list[str] | None = Field(None, description="the task's input bands, by name (default: every band its "
                                    "corpus stores); mapped onto the model's bands by name, then by wavelength")
    sensor: str | None = Field(None, description="sensor of plain names in `bands` (s2, hls, oli, rgb)")
    fill: Literal["zeros", "mean", "nearest"] = Field(
        "zeros", description="model bands no input band stands for: 0 after normalisation, the dataset mean after "
        "normalisation, or a copy of the nearest-wavelength input band")
    wavelength_tolerance_nm: float = Field(15.0, ge=0, le=100, description="an input band stands for a model band "
                                           "whose centre wavelength is this near")

    @field_validator("train")
    @classmethod
    def _device(cls, v):
        return _check_train_device(v)

    @model_validator(mode="after")
    def _input_bands(self):
        from spectralgpt.bands import BandMapping, canonical_list, sensor_key

        if self.sensor is not None:
            self.sensor = sensor_key(self.sensor)
        if self.bands is not None:
            if not self.bands:
                raise ValueError("bands is empty; name the task's input bands or leave it out")
            self.bands = list(canonical_list(self.bands, self.sensor))
            arch = _check_model(self.model, self.model_overrides, "model")
            BandMapping.build(self.bands, arch.bands, self.fill, tolerance_nm=self.wavelength_tolerance_nm)
        return self

    @field_validator("corpus")
    @classmethod
    def _corpus(cls, v):
        if v is not None and v not in CORPORA:
            raise ValueError(f"unknown corpus {v!r}; allowed: {', '.join(CORPORA)}")
        return v

    @field_validator("class_weights")
    @classmethod
    def _weights(cls, v):
        return _check_class_weights(v)

    @field_validator("thresholds")
    @classmethod
    def _threshold(cls, v):
        if not isinstance(v, str) and not 0 < v < 1:
            raise ValueError(f"a fixed threshold must lie strictly between 0 and 1, got {v}")
        return v

    @model_validator(mode="after")
    def _class_count(self):
        task = get_task(self.task)
        want = task.fixed_classes
        if isinstance(self.class_weights, list) and want is not None and len(self.class_weights) != want:
            raise ValueError(f"the {self.task} task has {want} classes but class_weights has "
                             f"{len(self.class_weights)} values")
        if self.class_weights is not None and not task.class_weights:
            allowed = ", ".join(n for n in TASKS if get_task(n).class_weights)
            raise ValueError(f"class_weights apply to {allowed}, not to {self.task}")
        if "thresholds" in self.model_fields_set and not task.multilabel:
            raise ValueError(f"thresholds apply to multi-label tasks, not to {self.task}")
        return self

    @model_validator(mode="after")
    def _defaults(self):
        size = {"img_size": self.img_size} if self.img_size else {}
        arch = _check_model(self.model, self.model_overrides, "model", **size)
        kind = MODEL_KIND[self.task]
        if arch.kind != kind:
            raise ValueError(f"model {self.model!r} is a {arch.kind} model; the {self.task} task needs a {kind} model")
        if self.corpus is None:
            self.corpus = self.task
        if self.out is None:
            self.out = f"models/{self.task}"
        if self.val_split is None:
            self.val_split = get_task(self.task).val_split
        if self.mode == "scratch":
            self.pretrained = None
        return self


class EvaluateConfig(_Strict):
    split: str = "test"
    batch_size: int = Field(32, ge=1)
    device: str = Field("auto", description="torch device for evaluation (auto: cuda when there is a GPU, else cpu)")
    out: str = "reports"
    legacy: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                              description="per task legacy metric switches, e.g. multilabel: {map_per_batch: true}")

    @field_validator("split")
    @classmethod
    def _split(cls, v):
        if v not in SPLITS:
            raise ValueError(f"split {v!r} is not one of {', '.join(SPLITS)}")
        return v

    @field_validator("device")
    @classmethod
    def _device(cls, v):
        return check_device(v)

    @field_validator("legacy")
    @classmethod
    def _legacy_tasks(cls, v):
        bad = [k for k in v if k not in TASKS]
        if bad:
            raise ValueError(f"unknown task(s) {bad} in evaluate.legacy; allowed: {', '.join(TASKS)}")
        return v


class PromoteConfig(_Strict):
    margin: float = Field(0.0, ge=0, description="how much the challenger must beat the champion by")
    auto: bool = True


class TrackingConfig(_Strict):
    uri: str = "sqlite:///mlflow.db"
    artifacts: str = "mlartifacts"
    experiment: str = "spectralgpt"


class LinearProbeConfig(_Strict):
    """A linear classifier on the frozen encoder's pooled features (computed once, without augmentation),
    standardised with the training split's mean and std; SGD with momentum and a cosine schedule."""

    epochs: int = Field(100, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    seed: int = 0


class KnnConfig(_Strict):
    """DINO's k-NN protocol on L2-normalised pooled features: the `k` most cosine-similar training images vote
    with weights exp(similarity / temperature)."""

    k: int = Field(20, ge=1)
    temperature: float = Field(0.07, gt=0)
    chunk: int = Field(1024, ge=1, description="test images per similarity block (bounds memory)")


class UperNetProtocolConfig(_Strict):
    """PANGAEA-style dense evaluation: a UPerNet decoder over encoder block outputs `layers` (0-based; null:
    3, 5, 7, 11 scaled to the encoder's depth), trained on the training split with the encoder frozen (or
    fine-tuned), scored on whole test scenes."""

    layers: tuple[int, ...] | None = None
    freeze_encoder: bool = True
    channels: int | None = Field(None, ge=1, le=8192, description="decoder width (default: the model's fpn_channels)")
    dropout: float = Field(0.1, ge=0, lt=1)
    train: TrainConfig = Field(default_factory=lambda: TrainConfig(
        epochs=20, batch_size=8, lr=1e-4, betas=(0.9, 0.999), weight_decay=0.01, warmup_epochs=1))
    class_weights: list[float] | Literal["auto"] | None = None
    ignore_index: int = 255
    eval_batch_size: int = Field(16, ge=1)

    @field_validator("train")
    @classmethod
    def _device(cls, v):
        return _check_train_device(v)

    @field_validator("class_weights")
    @classmethod
    def _weights(cls, v):
        return _check_class_weights(v)


class BenchmarkDataset(_Strict):
    """One dataset of a benchmark: a raw dataset read in its own layout (`source`, any reader kind of
    `load_dataset`, its bands `source.bands` or the reader's own; validated and stored as shards under
    benchmark.work, reused by content) or a preprocessed shard corpus (`shards`: one folder per split, or one corpus
    with a split column). Bands that are not the encoder's are mapped onto them by name and wavelength (`fill`)."""

    name: str
    source: SourceConfig | None = None
    shards: str | None = None
    task: Task | None = Field(None, description="default: what the labels say (class, multi-hot, mask, two dates)")
    train_split: str = "train"
    test_split: str = "test"
    size: int | None = Field(None, ge=8, description="stored side of a raw source's images (default: img_size)")
    fit: Literal["crop", "tile", "resize"] | None = Field(None, description="a raw source's fit (default: the task's)")
    recipe: Literal["minmax", "zscore", "clip2sigma"] | None = Field(
        None, description="normalisation of a raw source (default: the task's); shards keep their own")
    fill: Literal["zeros", "mean", "nearest"] = Field(
        "zeros", description="when the data's bands are not the encoder's: how an encoder band without an input band "
        "of its name or wavelength is filled (see spectralgpt.bands.BandMapping)")
    wavelength_tolerance_nm: float = Field(15.0, ge=0, le=100, description="an input band stands for an encoder "
                                           "band within this distance of centre wavelengths")
    ignore_index: int | None = Field(None, description="mask value left out of dense training and scoring (default: "
                                     "upernet.ignore_index; HLS Burn Scars: -1)")

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        return _check_path_component(v, "dataset name")

    @field_validator("train_split", "test_split")
    @classmethod
    def _split(cls, v):
        if v not in SPLITS:
            raise ValueError(f"split {v!r} is not one of {', '.join(SPLITS)}")
        return v

    @model_validator(mode="after")
    def _one_input(self):
        if (self.source is None) == (self.shards is None):
            raise ValueError(f"dataset {self.name!r}: give exactly one of source (a raw dataset) or shards "
                             "(a preprocessed corpus)")
        if self.source is not None and self.source.split is not None:
            raise ValueError(f"dataset {self.name!r}: source.split does not apply; the benchmark reads "
                             "train_split and test_split")
        if self.train_split == self.test_split:
            raise ValueError(f"dataset {self.name!r}: train_split and test_split are both {self.train_split!r}")
        if self.shards is not None and (self.size or self.fit or self.recipe):
            raise ValueError(f"dataset {self.name!r}: size, fit and recipe apply to a raw source; a shard corpus "
                             "keeps the ones it was preprocessed with")
        return self


class BenchmarkConfig(_Strict):
    """`spectralgpt benchmark`: protocols (linear_probe, knn, upernet) over datasets, on one encoder; a table
    shaped like the paper's in ``<out>/<name>.md`` and ``.json``. Each protocol runs on the datasets whose task
    it applies to (linear_probe, knn: image-level tasks; upernet: per-pixel ones)."""

    name: str = "benchmark"
    encoder: str = Field("models/pretrain", description="our model folder (MAE, classifier or dense) or a "
                         "published .pth checkpoint")
    arch: str | None = Field(None, description="named architecture (a MODEL_CONFIGS name); required for a .pth, "
                             "default for a folder: its config.json")
    model_overrides: dict[str, Any] = {}
    img_size: int | None = Field(None, ge=8, description="model input side (default: the encoder's)")
    protocols: list[str] = Field(default_factory=lambda: ["linear_probe", "knn"], min_length=1)
    datasets: list[BenchmarkDataset] = Field(min_length=1)
    batch_size: int = Field(64, ge=1, description="images per batch for feature extraction")
    device: str = Field("auto", description="torch device (auto: cuda when there is a GPU, else cpu)")
    linear_probe: LinearProbeConfig = LinearProbeConfig()
    knn: KnnConfig = KnnConfig()
    upernet: UperNetProtocolConfig = UperNetProtocolConfig()
    max_bad_fraction: float = Field(0.05, ge=0, le=1, description="raw sources: unusable samples tolerated")
    workers: int = Field(1, ge=1, description="processes reading raw sources")
    work: str = Field("runs/benchmark", description="shards of raw sources and UPerNet runs (content-keyed)")
    out: str = "reports/benchmark"

    @field_validator("protocols", mode="before")
    @classmethod
    def _protocol_list(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, v):
        from spectralgpt.protocols import PROTOCOL_NAMES

        bad = [p for p in v if p not in PROTOCOL_NAMES]
        if bad:
            raise ValueError(f"unknown protocol(s) {bad}; allowed: {', '.join(PROTOCOL_NAMES)}")
        if len(set(v)) != len(v):
            raise ValueError(f"protocols are listed twice: {v}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v):
        return _check_path_component(v, "benchmark name")

    @field_validator("device")
    @classmethod
    def _device(cls, v):
        return check_device(v)

    @field_validator("workers")
    @classmethod
    def _workers(cls, v):
        return _check_workers(v)

    @model_validator(mode="after")
    def _consistent(self):
        from spectralgpt.protocols import get_protocol

        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset names must be unique, got {names}")
        if self.arch is not None:
            size = {"img_size": self.img_size} if self.img_size else {}
            _check_model(self.arch, self.model_overrides, "arch", **size)
        elif str(self.encoder).endswith((".pth", ".pt")):
            raise ValueError(f"encoder {self.encoder!r} is a published checkpoint: name its architecture in arch "
                             "(e.g. mae_vit_base_patch8_128)")
        for d in self.datasets:  # a declared task must get a protocol (inferred ones are checked on the data)
            if d.task is not None and not any(get_protocol(p).applies(get_task(d.task)) for p in self.protocols):
                raise ValueError(f"dataset {d.name!r} ({d.task}): none of the protocols {self.protocols} applies "
                                 f"to it")
        return self


class Params(_Strict):
    data: DataConfig = DataConfig()
    ingest: IngestConfig = IngestConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    pretrain: PretrainConfig
    finetune: dict[str, FinetuneConfig] = Field(default_factory=dict)
    evaluate: EvaluateConfig = EvaluateConfig()
    promote: PromoteConfig = PromoteConfig()
    tracking: TrackingConfig = TrackingConfig()
    benchmark: BenchmarkConfig | None = None

    def benchmark_config(self) -> BenchmarkConfig:
        """The benchmark section, or a ConfigError saying how to give one."""
        if self.benchmark is None:
            raise ConfigError("params has no benchmark section: add one (see params.yaml) or pass a profile such "
                              "as params/benchmark/knn.yaml")
        return self.benchmark

    def finetune_for(self, task: str) -> FinetuneConfig:
        """The fine-tuning section of `task`, or a ConfigError naming the sections there are."""
        if task not in self.finetune:
            raise ConfigError(f"params has no finetune.{task} section (has: {', '.join(self.finetune) or 'none'})")
        return self.finetune[task]

    @model_validator(mode="after")
    def _tasks(self):
        for name, ft in self.finetune.items():
            if name != ft.task:
                raise ValueError(f"finetune.{name}.task is {ft.task!r}; the section name must equal the task")
        return self


def format_error(e: ValidationError, source: str) -> str:
    lines = []
    for err in e.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        value = err.get("input")
        shown = "" if isinstance(value, dict) or err["type"] == "missing" else f" = {value!r}"
        lines.append(f"{source}: {where}{shown}: {err['msg']}")
    return "\n".join(lines)


def validate(model: type[BaseModel], data: Any, source: str = "params"):
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_error(e, source)) from None


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path} not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, got {type(data).__name__}")
    return data


def load_params(path: str | Path = "params.yaml", overrides: dict | None = None,
                profile: str | Path | None = None) -> Params:
    """`path` validated; `profile` (a file of whole sections, e.g. params/benchmark/knn.yaml) replaces the
    sections it holds, then `overrides` ({"a.b": value}) apply."""
    path = Path(path)
    data, source = _read_yaml(path), str(path)
    if profile is not None:
        data.update(_read_yaml(Path(profile)))
        source = f"{path} + {profile}"
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return validate(Params, data, source)
