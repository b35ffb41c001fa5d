import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import timm

from geotriplet_assets.bundle.checksums import file_sha256
from geotriplet_assets.bundle.preprocessing import Preprocessing
from geotriplet_assets.features.backbone import (
    BackboneConfigError,
    BackboneSpec,
    WeightsError,
    convert_efficientnet_pytorch_state_dict,
    load_torch_backbone,
    package_weights_path,
)
from tests.factories.model_input import decode_for_model

GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
MILITARY_UNIFORM = 652  # ImageNet class of the classic Grace Hopper portrait
TINY = "test_efficientnet"


@pytest.fixture(scope="module")
def lite0() -> tuple[torch.nn.Module, Preprocessing, str]:
    return load_torch_backbone(BackboneSpec())


@pytest.fixture(scope="module")
def package_state_dict() -> dict[str, torch.Tensor]:
    return torch.load(package_weights_path(), map_location="cpu", weights_only=True)


def scene(seed: int, size: int = 256) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(5):
        x, y, w, h = (int(v) for v in rng.integers(0, size // 2, 4))
        draw.ellipse(
            (x, y, x + w + 8, y + h + 8), fill=tuple(int(c) for c in rng.integers(0, 256, 3))
        )
    return image


def features(
    model: torch.nn.Module, preprocessing: Preprocessing, paths: list[Path]
) -> torch.Tensor:
    batch = torch.from_numpy(np.stack([decode_for_model(p, preprocessing) for p in paths]))
    with torch.inference_mode():
        return model(batch)


def test_package_weights_give_lite0_with_its_own_preprocessing(lite0) -> None:
    model, preprocessing, weights_id = lite0
    assert not model.training
    assert model.num_classes == 0
    assert weights_id == file_sha256(package_weights_path())
    assert len(weights_id) == 64
    assert preprocessing == Preprocessing(
        input_size=(3, 224, 224),
        interpolation="bicubic",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        crop_pct=0.875,
        crop_mode="center",
    )


def test_package_weights_classify_a_real_photograph(lite0, package_state_dict) -> None:
    model, preprocessing, _ = lite0
    classifier = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    classifier.load_state_dict(
        convert_efficientnet_pytorch_state_dict(package_state_dict, classifier), strict=True
    )
    image = torch.from_numpy(decode_for_model(GRACE_HOPPER, preprocessing))[None]
    with torch.inference_mode():
        logits = classifier(image)
        pooled = classifier.forward_head(classifier.forward_features(image), pre_logits=True)
        embedded = model(image)
    assert MILITARY_UNIFORM in logits.topk(5).indices[0].tolist()
    assert logits.softmax(-1).max() > 0.15
    torch.testing.assert_close(embedded, pooled)


def test_package_features_are_not_degenerate(lite0, tmp_path: Path) -> None:
    model, preprocessing, _ = lite0
    paths = []
    for seed in range(4):
        paths.append(tmp_path / f"scene{seed}.jpg")
        scene(seed).save(paths[-1], quality=90)
    embedded = features(model, preprocessing, [*paths, GRACE_HOPPER])
    assert embedded.shape == (5, 1280)
    assert torch.isfinite(embedded).all()
    assert (embedded.norm(dim=1) > 1).all()
    unit = torch.nn.functional.normalize(embedded, dim=1)
    cosine = unit @ unit.T
    off_diagonal = cosine[~torch.eye(5, dtype=torch.bool)]
    assert off_diagonal.max() < 0.98
    assert embedded.std(dim=0).mean() > 0.01


def test_conversion_names_the_tensor_with_a_shape_mismatch(package_state_dict) -> None:
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    broken = dict(package_state_dict)
    broken["_blocks.0._depthwise_conv.weight"] = torch.zeros(32, 1, 5, 5)
    with pytest.raises(WeightsError, match=r"_blocks\.0\._depthwise_conv\.weight.*conv_dw"):
        convert_efficientnet_pytorch_state_dict(broken, model)


def test_conversion_refuses_a_different_architecture(package_state_dict) -> None:
    model = timm.create_model("tf_efficientnet_lite1", pretrained=False, num_classes=0)
    with pytest.raises(WeightsError, match="tensors"):
        convert_efficientnet_pytorch_state_dict(package_state_dict, model)


def test_conversion_drops_the_classifier_for_a_headless_model(package_state_dict) -> None:
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    converted = convert_efficientnet_pytorch_state_dict(package_state_dict, model)
    assert list(converted) == list(model.state_dict())
    assert len(converted) == len(package_state_dict) - 2


def test_package_weights_exist_only_for_lite0() -> None:
    with pytest.raises(WeightsError, match="only exist for tf_efficientnet_lite0"):
        load_torch_backbone(BackboneSpec(model_name=TINY, weights="package"))


def test_random_weights_are_seeded_and_leave_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first, _, weights_id = load_torch_backbone(BackboneSpec(TINY, weights="random", seed=3))
    assert torch.rand(1) == expected_next
    again, _, _ = load_torch_backbone(BackboneSpec(TINY, weights="random", seed=3))
    other, _, _ = load_torch_backbone(BackboneSpec(TINY, weights="random", seed=4))
    assert weights_id == "random-seed-3"
    for key, tensor in first.state_dict().items():
        torch.testing.assert_close(tensor, again.state_dict()[key])
    assert not torch.equal(first.conv_stem.weight, other.conv_stem.weight)


def test_local_weights_file_loads_by_path(tmp_path: Path) -> None:
    source, _, _ = load_torch_backbone(BackboneSpec(TINY, weights="random", seed=5))
    path = tmp_path / "tiny.pth"
    torch.save(source.state_dict(), path)
    loaded, preprocessing, weights_id = load_torch_backbone(BackboneSpec(TINY, weights=str(path)))
    assert weights_id == file_sha256(path)
    assert preprocessing.input_size == (3, 160, 160)
    for key, tensor in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], tensor)


def test_local_file_with_a_classifier_loads_into_the_headless_model(tmp_path: Path) -> None:
    with_head = timm.create_model(TINY, pretrained=False, num_classes=10)
    path = tmp_path / "with_head.pth"
    torch.save(with_head.state_dict(), path)
    loaded, _, _ = load_torch_backbone(BackboneSpec(TINY, weights=str(path)))
    torch.testing.assert_close(loaded.conv_stem.weight, with_head.conv_stem.weight)


def test_package_file_named_by_path_is_converted(lite0) -> None:
    model, _, package_id = lite0
    by_path, _, path_id = load_torch_backbone(
        BackboneSpec(weights=str(package_weights_path()), image_size=256)
    )
    assert path_id == package_id
    torch.testing.assert_close(by_path.conv_head.weight, model.conv_head.weight)


def test_local_file_with_a_wrong_shape_names_the_tensor(tmp_path: Path) -> None:
    state = timm.create_model(TINY, pretrained=False, num_classes=0).state_dict()
    state["conv_stem.weight"] = torch.zeros(3, 3, 3, 3)
    path = tmp_path / "wrong.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"conv_stem\.weight.*wrong\.pth"):
        load_torch_backbone(BackboneSpec(TINY, weights=str(path)))


def test_local_file_of_another_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet.pth"
    torch.save(timm.create_model("test_resnet", pretrained=False).state_dict(), path)
    with pytest.raises(WeightsError, match="missing tensors"):
        load_torch_backbone(BackboneSpec(TINY, weights=str(path)))


def test_missing_or_unreadable_weights_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"not found.*absent\.pth"):
        load_torch_backbone(BackboneSpec(TINY, weights=str(tmp_path / "absent.pth")))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read weights file"):
        load_torch_backbone(BackboneSpec(TINY, weights=str(garbage)))


def test_hub_weights_fail_clearly_offline() -> None:
    with pytest.raises(WeightsError, match="offline"):
        load_torch_backbone(BackboneSpec(TINY, weights="hub"))


def test_unknown_model_name() -> None:
    with pytest.raises(BackboneConfigError, match="no_such_model"):
        load_torch_backbone(BackboneSpec("no_such_model", weights="random"))


def test_image_size_overrides_only_the_input_size() -> None:
    _, preprocessing, _ = load_torch_backbone(BackboneSpec(TINY, weights="random", image_size=96))
    assert preprocessing.input_size == (3, 96, 96)
    assert preprocessing.crop_pct == 0.95
