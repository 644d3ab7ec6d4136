"""Checkpoints: the published SpectralGPT `.pth` layout (read safely) and our own safetensors + JSON format.

`load_pretrained` reads `{'model': state_dict, 'args': argparse.Namespace, ...}` (or a bare state dict, with or
without a DDP `module.` prefix) through `torch.load(weights_only=True)` with an explicit allow-list, so a
checkpoint that pickles anything else (code) is refused. Spatial position tables of another image size are
resized by 2-D bicubic interpolation, never dropped.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from spectralgpt.io.atomic import atomic_path, atomic_write_text
from spectralgpt.models import pos_embed
from spectralgpt.models.config import ModelConfig
from spectralgpt.models.registry import build_model

log = logging.getLogger(__name__)

#: Globals a published checkpoint may contain besides tensors and containers.
ALLOWED_GLOBALS = [argparse.Namespace]
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT_VERSION = 1
MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few KB
ENCODER_PREFIXES = ("patch_embed.", "blocks.", "norm.", "pos_embed_spatial", "pos_embed_temporal")
HEAD_PREFIXES = ("head.", "decode_head.cls_seg.")  # class-count dependent: skipped when shapes differ


class CheckpointError(RuntimeError):
    pass


@dataclass
class LoadReport:
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    resized: list[tuple[str, tuple, tuple]] = field(default_factory=list)
    skipped: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    def __str__(self) -> str:
        parts = [f"{len(self.matched)} matched"]
        for name in ("missing", "unexpected"):
            keys = getattr(self, name)
            if keys:
                parts.append(f"{len(keys)} {name} ({', '.join(keys[:6])}{', ...' if len(keys) > 6 else ''})")
        for name in ("resized", "skipped"):
            for k, a, b in getattr(self, name):
                parts.append(f"{name} {k} {list(a)} -> {list(b)}")
        return "; ".join(parts)


def _read_pickle(path: Path) -> Mapping:
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = str(e).split("\n")[0] if "Unsupported global" not in str(e) else next(
            line for line in str(e).splitlines() if "Unsupported global" in line)
        raise CheckpointError(
            f"refused to load {path}: it contains pickled objects outside the allow-list "
            f"({', '.join(g.__module__ + '.' + g.__qualname__ for g in ALLOWED_GLOBALS)}); loading it could "
            f"execute code. {detail.strip()}") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: truncated, corrupt or not a PyTorch file ({e})") from e


def read_state_dict(source: str | Path | Mapping) -> dict[str, torch.Tensor]:
    """A state dict from a published `.pth`, our safetensors file or folder, or an in-memory mapping."""
    if isinstance(source, Mapping):
        obj = source
    else:
        path = Path(source)
        if path.is_dir():
            path = path / WEIGHTS
        if not path.is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
        if path.suffix == ".safetensors":
            try:
                obj = load_file(path)
            except (SafetensorError, OSError) as e:
                raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
        else:
            obj = _read_pickle(path)
    for key in ("model", "state_dict", "model_state"):
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    sd = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f"checkpoint entry {k!r} is a {type(v).__name__}, not a tensor")
        sd[k.removeprefix("module.")] = v
    return sd


def load_pretrained(model: nn.Module, source: str | Path | Mapping, strict_encoder: bool = True,
                    resize_pos_embed: str = "interpolate") -> LoadReport:
    """Load pretrained weights into any SpectralGPT model; returns what matched, was resized or left out.

    Shapes that differ fail with the key names and shapes, except spatial position tables (bicubically resized;
    `resize_pos_embed="drop"` reproduces the published stage-2 resume, which deleted them and kept the fresh
    initialisation) and the class-count dependent head (skipped). With `strict_encoder`, a checkpoint lacking
    any encoder key fails.
    """
    if resize_pos_embed not in ("interpolate", "drop"):
        raise ValueError(f"resize_pos_embed must be 'interpolate' or 'drop', got {resize_pos_embed!r}")
    cfg: ModelConfig = model.cfg
    sd = read_state_dict(source)
    own = model.state_dict()
    report, load, bad = LoadReport(), {}, []
    for k, v in sd.items():
        if k not in own:
            report.unexpected.append(k)
            continue
        want = tuple(own[k].shape)
        if tuple(v.shape) == want:
            load[k] = v
            report.matched.append(k)
        elif k in ("pos_embed_spatial", "decoder_pos_embed_spatial") and v.ndim == 3 and v.shape[2] == want[2]:
            if resize_pos_embed == "drop":
                report.skipped.append((k, tuple(v.shape), want))
                continue
            load[k] = pos_embed.resize_spatial(v, cfg.grid)
            report.resized.append((k, tuple(v.shape), want))
        elif k == "pos_embed" and cfg.legacy_joint_pos_embed and v.ndim == 3 and v.shape[2] == want[2]:
            load[k] = pos_embed.resize_joint(v, cfg.num_groups, cfg.grid)
            report.resized.append((k, tuple(v.shape), want))
        elif k.startswith(HEAD_PREFIXES):
            report.skipped.append((k, tuple(v.shape), want))
        else:
            bad.append(f"{k}: checkpoint {list(v.shape)} vs model {list(want)}")
    if bad:
        raise CheckpointError(f"checkpoint does not fit this model configuration ({len(bad)} keys differ): "
                              + "; ".join(bad[:8]) + ("; ..." if len(bad) > 8 else ""))
    report.missing = [k for k in own if k not in load]
    if strict_encoder:
        dropped = {k for k, _, _ in report.skipped}
        lost = [k for k in report.missing if k.startswith(ENCODER_PREFIXES) and k not in dropped]
        if lost:
            raise CheckpointError(f"checkpoint lacks {len(lost)} encoder weights of this model: "
                                  + ", ".join(lost[:8]) + (", ..." if len(lost) > 8 else ""))
    model.load_state_dict(load, strict=False)
    log.info("loaded pretrained weights: %s", report)
    return report


def save_model(model: nn.Module, directory: str | Path, normalization: dict | None = None,
               extra: dict | None = None) -> Path:
    """Our checkpoint: `model.safetensors` + `config.json` (architecture, band order, normalisation recipe)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg: ModelConfig = model.cfg
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(directory / WEIGHTS) as tmp:
        # one metadata entry: safetensors writes its metadata map in hash order, so two entries would make the
        # bytes (and the file's md5, which DVC and the content digests see) differ between identical models
        save_file(tensors, str(tmp), metadata={"format": "spectralgpt"})
    meta = {"format": "spectralgpt", "format_version": FORMAT_VERSION, "model": cfg.model_dump(mode="json"),
            "bands": list(cfg.bands), "normalization": normalization, "extra": extra or {}}
    atomic_write_text(directory / CONFIG, json.dumps(meta, indent=2))
    return directory


def read_config(directory: str | Path) -> dict:
    path = Path(directory) / CONFIG
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise CheckpointError(f"{path} is {path.stat().st_size} bytes, over the {MAX_CONFIG_BYTES}-byte limit "
                                  "for a model config")
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} not found: not a SpectralGPT model folder") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e
    except OSError as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e
    if not isinstance(meta, dict) or meta.get("format") != "spectralgpt":
        raise CheckpointError(f"{path} is not a SpectralGPT model config")
    return meta


def _problem(err: dict) -> str:
    """One pydantic error as text: our validators' messages name the field; pydantic's own get the field added."""
    if err["msg"].startswith("Value error, "):
        return err["msg"].removeprefix("Value error, ")
    return f"{'.'.join(map(str, err['loc'])) or 'model'} = {err.get('input')!r}: {err['msg']}"


def config_of(meta: dict, directory: str | Path = "", **overrides) -> ModelConfig:
    """The validated (size-bounded) ModelConfig of a model folder's metadata; CheckpointError naming the fields."""
    arch = meta.get("model")
    if not isinstance(arch, dict):
        raise CheckpointError(f"{Path(directory) / CONFIG} has no `model` section")
    try:
        return ModelConfig(**{**arch, **overrides})
    except ValidationError as e:
        problems = "; ".join(_problem(err) for err in e.errors())
        raise CheckpointError(f"{Path(directory) / CONFIG} declares an invalid model: {problems}") from None


def header_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """{key: shape} of a safetensors file, read from its header only (no tensor data is loaded)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e


def expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """{key: shape} of the model `cfg` describes, built on the meta device (no memory is allocated)."""
    with torch.device("meta"):
        model = build_model(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def check_weights_fit(directory: str | Path, cfg: ModelConfig) -> None:
    """Refuse a model folder whose weights file does not hold exactly the tensors its config implies, before the
    model is built: a forged config cannot make us allocate a model its weights do not back."""
    path = Path(directory) / WEIGHTS
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    have, want = header_shapes(path), expected_shapes(cfg)
    problems = [f"{k}: missing" for k in want if k not in have]
    problems += [f"{k}: unexpected" for k in have if k not in want]
    problems += [f"{k}: weights {list(have[k])} vs config {list(v)}" for k, v in want.items()
                 if k in have and have[k] != v]
    if problems:
        raise CheckpointError(f"weights in {directory} do not fit its config.json ({len(problems)} problems): "
                              + "; ".join(problems[:8]) + ("; ..." if len(problems) > 8 else ""))


def load_model(directory: str | Path, **overrides) -> tuple[nn.Module, dict]:
    """Rebuild a model saved by `save_model`; returns (model in eval mode, metadata incl. normalisation).

    The config is validated (sizes bounded) and checked against the weights file's header before the model is
    built, so nothing large is allocated for a config its weights do not match."""
    meta = read_config(directory)
    cfg = config_of(meta, directory, **overrides)
    check_weights_fit(directory, cfg)
    model = build_model(cfg)
    sd = read_state_dict(directory)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"weights in {directory} do not fit its config: {e}") from e
    return model.eval(), meta


def export_published(model: nn.Module, path: str | Path, args: dict | None = None) -> Path:
    """Write the published layout `{'model', 'args', 'epoch'}` (e.g. for the original code base)."""
    path, args = Path(path), args or {}
    state = {"model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "args": argparse.Namespace(**args), "epoch": args.get("epoch", 0)}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path
