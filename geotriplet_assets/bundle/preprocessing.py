"""How an image file becomes a model's input: the eval transform (timm's data-config terms)
and the limits on what is decoded, as the bundle's preprocessing.json records them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SUPPORTED_CROP_MODES = ("center", "squash")


class PreprocessingError(ValueError):
    """Preprocessing settings, or a preprocessing.json, that cannot be used."""


@dataclass(frozen=True)
class Preprocessing:
    """The eval transform a backbone expects, in timm's data-config terms."""

    input_size: tuple[int, int, int]
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float
    crop_mode: str

    def __post_init__(self) -> None:
        channels, height, width = self.input_size
        if channels != 3 or height < 1 or width < 1:
            raise PreprocessingError(f"input_size must be (3, H, W), got {self.input_size}")
        if not 0 < self.crop_pct <= 1:
            raise PreprocessingError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.crop_mode not in SUPPORTED_CROP_MODES:
            raise PreprocessingError(
                f"crop_mode {self.crop_mode!r} is not supported (use one of "
                f"{', '.join(SUPPORTED_CROP_MODES)})"
            )
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise PreprocessingError(
                f"mean/std must be 3 values, std > 0: {self.mean}, {self.std}"
            )

    @property
    def height(self) -> int:
        return self.input_size[1]

    @property
    def width(self) -> int:
        return self.input_size[2]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Preprocessing:
        try:
            fields = json.loads(text)
            return cls(
                input_size=tuple(int(v) for v in fields["input_size"]),  # type: ignore[arg-type]
                interpolation=str(fields["interpolation"]),
                mean=tuple(float(v) for v in fields["mean"]),  # type: ignore[arg-type]
                std=tuple(float(v) for v in fields["std"]),  # type: ignore[arg-type]
                crop_pct=float(fields["crop_pct"]),
                crop_mode=str(fields["crop_mode"]),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            if isinstance(error, PreprocessingError):
                raise
            raise PreprocessingError(f"invalid preprocessing JSON {text!r}: {error}") from error

    @classmethod
    def from_data_config(cls, config: Mapping[str, Any]) -> Preprocessing:
        """From timm's `resolve_model_data_config` output."""
        return cls(
            input_size=tuple(int(v) for v in config["input_size"]),  # type: ignore[arg-type]
            interpolation=str(config["interpolation"]),
            mean=tuple(float(v) for v in config["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in config["std"]),  # type: ignore[arg-type]
            crop_pct=float(config.get("crop_pct") or 0.875),
            crop_mode=str(config.get("crop_mode") or "center"),
        )


@dataclass(frozen=True)
class DecodeLimits:
    min_side: int = 32
    max_pixels: int = 50_000_000


DEFAULT_LIMITS = DecodeLimits()


def write_spec(path: Path, preprocessing: Preprocessing, limits: DecodeLimits) -> None:
    """Write preprocessing.json: the Preprocessing fields plus `decode_limits`."""
    spec = json.loads(preprocessing.to_json())
    spec["decode_limits"] = asdict(limits)
    path.write_text(json.dumps(spec, indent=2), encoding="utf-8")


def read_spec(path: Path) -> tuple[Preprocessing, DecodeLimits]:
    """The Preprocessing and DecodeLimits of a preprocessing.json; raises PreprocessingError."""
    text = path.read_text(encoding="utf-8")
    preprocessing = Preprocessing.from_json(text)
    limits = json.loads(text).get("decode_limits")
    if not isinstance(limits, dict):
        raise PreprocessingError("decode_limits must be an object with min_side, max_pixels")
    values = {}
    for key in ("min_side", "max_pixels"):
        value = limits.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PreprocessingError(
                f"decode_limits.{key} must be a positive integer, got {value!r}"
            )
        values[key] = value
    return preprocessing, DecodeLimits(**values)
