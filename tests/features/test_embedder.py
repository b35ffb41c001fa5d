import os
from pathlib import Path

import matplotlib
import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from geotriplet_assets.bundle.image_decode import decode_to_uint8
from geotriplet_assets.bundle.preprocessing import DecodeLimits
from geotriplet_assets.features.backbone import BackboneSpec, load_torch_backbone
from geotriplet_assets.features.embedder import NON_FINITE_EMBEDDING, Embedder, TorchEngine
from tests.factories.model_input import decode_for_model

GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
TINY = BackboneSpec("test_efficientnet", weights="random", seed=1)
LIMITS = DecodeLimits(min_side=32, max_pixels=400_000)


def photo_like(seed: int, width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 40 + 2, width // 40 + 2, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], list[str], dict]:
    """Eleven good JPEGs with bad files in between; returns paths, ids, {bad id: reason}."""
    folder = tmp_path_factory.mktemp("shard")
    good_sizes = [(320, 240), (240, 320), (200, 200), (640, 480), (300, 100), (96, 96)] * 2
    bad = {
        2: ("notes.jpg", b"a text file named like a photograph\n", "not_an_image"),
        5: ("cut.jpg", None, "truncated"),
        6: ("tiny.jpg", (8, 8), "too_small"),
        9: ("huge.jpg", (800, 600), "too_large"),
        13: ("vanished.jpg", "missing", "unreadable"),
    }
    paths, ids, reasons = [], [], {}
    sizes = iter(good_sizes)
    for index in range(len(good_sizes) + len(bad) - 1):
        image_id = f"0007_{index:03d}_0"
        if index in bad:
            name, content, reason = bad[index]
            path = folder / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            elif isinstance(content, tuple):
                photo_like(index, *content).save(path, quality=90)
            elif content is None:
                photo_like(index, 320, 240).save(path, quality=90)
                path.write_bytes(path.read_bytes()[:3000])
            reasons[image_id] = reason
        else:
            path = folder / f"{image_id}.jpg"
            photo_like(index, *next(sizes)).save(path, quality=90)
        paths.append(path)
        ids.append(image_id)
    return paths, ids, reasons


def create(tmp_path_factory: pytest.TempPathFactory, **options) -> Embedder:
    defaults = {"engine": "torch", "device": "cpu", "batch_size": 4, "num_workers": 0}
    return Embedder.create(
        TINY, cache_dir=tmp_path_factory.mktemp("cache"), limits=LIMITS, **{**defaults, **options}
    )


@pytest.fixture(scope="module")
def torch_embedder(tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    return create(tmp_path_factory)


def reference_features(spec: BackboneSpec, paths: list[Path]) -> np.ndarray:
    model, preprocessing, _ = load_torch_backbone(spec)
    batch = torch.from_numpy(np.stack([decode_for_model(p, preprocessing) for p in paths]))
    with torch.inference_mode():
        return model(batch).numpy()


def test_output_follows_input_order_minus_rejections(torch_embedder: Embedder, images) -> None:
    paths, ids, reasons = images
    run = torch_embedder.embed_paths(paths, ids)
    kept = [(p, i) for p, i in zip(paths, ids, strict=True) if i not in reasons]
    assert run.image_ids == [i for _, i in kept]
    assert dict(zip(run.rejections["image_id"], run.rejections["reason"], strict=True)) == reasons
    assert list(run.rejections["image_id"]) == [i for i in ids if i in reasons]
    assert run.rejections["detail"].str.len().min() > 0
    assert run.embeddings.dtype == np.float32
    assert run.embeddings.shape == (len(kept), torch_embedder.dim)
    expected = reference_features(TINY, [p for p, _ in kept])
    np.testing.assert_allclose(run.embeddings, expected, rtol=1e-5, atol=1e-5)
    assert (run.engine, run.device) == ("torch", "cpu")
    assert run.seconds > 0


def test_features_can_go_to_a_memory_mapped_file(
    torch_embedder: Embedder, images, tmp_path: Path
) -> None:
    paths, ids, _ = images
    in_memory = torch_embedder.embed_paths(paths, ids)
    mapped = torch_embedder.embed_paths(paths, ids, features_path=tmp_path / "features.tmp")
    assert isinstance(mapped.embeddings, np.memmap)
    assert Path(mapped.embeddings.filename) == tmp_path / "features.tmp"
    assert mapped.image_ids == in_memory.image_ids
    np.testing.assert_array_equal(mapped.embeddings, in_memory.embeddings)


def test_decode_workers_give_the_same_result(
    torch_embedder: Embedder, images, tmp_path_factory: pytest.TempPathFactory
) -> None:
    paths, ids, _ = images
    in_process = torch_embedder.embed_paths(paths, ids)
    with_workers = create(tmp_path_factory, num_workers=2).embed_paths(paths, ids)
    assert with_workers.image_ids == in_process.image_ids
    np.testing.assert_array_equal(with_workers.embeddings, in_process.embeddings)
    assert with_workers.rejections.equals(in_process.rejections)


def test_embed_batch_takes_the_uint8_crops_the_workers_make(
    torch_embedder: Embedder, images
) -> None:
    paths, ids, reasons = images
    kept = [p for p, i in zip(paths, ids, strict=True) if i not in reasons][:4]
    preprocessing = torch_embedder.preprocessing
    crops = np.stack([decode_to_uint8(p, preprocessing, LIMITS) for p in kept])
    expected = torch_embedder.embed_paths(kept, [p.stem for p in kept]).embeddings
    np.testing.assert_allclose(torch_embedder.embed_batch(crops), expected, rtol=1e-6, atol=1e-6)
    floats = np.stack([decode_for_model(p, preprocessing, LIMITS) for p in kept])
    with pytest.raises(ValueError, match=r"uint8 crops of shape \(4, 160, 160, 3\), got float32"):
        torch_embedder.embed_batch(floats)


def test_progress_reports_every_batch(torch_embedder: Embedder, images) -> None:
    paths, ids, _ = images
    calls: list[tuple[int, int]] = []
    torch_embedder.embed_paths(
        paths, ids, progress=lambda done, total: calls.append((done, total))
    )
    assert len(calls) == -(-len(paths) // torch_embedder.batch_size)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert calls[-1] == (len(paths), len(paths))
    assert {total for _, total in calls} == {len(paths)}


class SquareRootOfMeanColour(torch.nn.Module):
    """Per-channel sqrt of the mean: NaN for images darker than the normalisation mean."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3)).sqrt()


def test_non_finite_embeddings_are_rejected_not_written(
    torch_embedder: Embedder, tmp_path: Path
) -> None:
    paths = []
    for name, grey in [("bright", 230), ("dark", 20), ("bright2", 200)]:
        paths.append(tmp_path / f"{name}.jpg")
        Image.new("RGB", (128, 128), (grey, grey, grey)).save(paths[-1])
    preprocessing = torch_embedder.preprocessing
    embedder = Embedder(
        TorchEngine(SquareRootOfMeanColour(), "cpu", preprocessing),
        model_name="sqrt",
        weights_sha256="none",
        preprocessing=preprocessing,
        engine_name="torch",
        device="cpu",
        batch_size=8,
        num_workers=0,
        limits=LIMITS,
    )
    run = embedder.embed_paths(paths, ["bright", "dark", "bright2"])
    assert run.image_ids == ["bright", "bright2"]
    assert np.isfinite(run.embeddings).all()
    assert run.rejections.to_dict("records") == [
        {
            "image_id": "dark",
            "reason": NON_FINITE_EMBEDDING,
            "detail": "the backbone produced NaN or infinite values",
        }
    ]


def test_empty_and_mismatched_inputs(torch_embedder: Embedder) -> None:
    run = torch_embedder.embed_paths([], [])
    assert run.embeddings.shape == (0, torch_embedder.dim)
    assert run.image_ids == []
    assert list(run.rejections.columns) == ["image_id", "reason", "detail"]
    with pytest.raises(ValueError, match="2 paths but 1 image ids"):
        torch_embedder.embed_paths([Path("a.jpg"), Path("b.jpg")], ["a"])


def test_engine_and_device_choices_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"engine='onnx'.*device='cpu'"):
        Embedder.create(TINY, engine="onnx", device="cuda", cache_dir=tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            Embedder.create(TINY, engine="torch", device="cuda", cache_dir=tmp_path)


@pytest.mark.slow
def test_onnx_engine_matches_torch_and_exports_once(
    torch_embedder: Embedder, images, tmp_path: Path
) -> None:
    paths, ids, _ = images
    onnx = Embedder.create(TINY, device="cpu", cache_dir=tmp_path, limits=LIMITS, num_workers=1)
    assert onnx.engine == "onnx"
    (exported,) = tmp_path.glob("*.onnx")
    first_export = exported.stat().st_mtime_ns
    (graph_input,) = onnxruntime.InferenceSession(str(exported)).get_inputs()
    assert graph_input.type == "tensor(uint8)"
    assert graph_input.shape[1:] == [*onnx.preprocessing.input_size[1:], 3]
    run = onnx.embed_paths(paths, ids)
    reference = torch_embedder.embed_paths(paths, ids)
    assert run.image_ids == reference.image_ids
    np.testing.assert_allclose(run.embeddings, reference.embeddings, atol=1e-4, rtol=1e-4)
    assert run.rejections.equals(reference.rejections)

    Embedder.create(TINY, device="cpu", cache_dir=tmp_path)
    assert [p.stat().st_mtime_ns for p in tmp_path.glob("*.onnx")] == [first_export]
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.slow
def test_package_lite0_onnx_matches_pytorch_on_real_images(images, tmp_path: Path) -> None:
    paths, ids, reasons = images
    good = [p for p, i in zip(paths, ids, strict=True) if i not in reasons][:5]
    good.append(GRACE_HOPPER)
    embedder = Embedder.create(BackboneSpec(), device="cpu", cache_dir=tmp_path, num_workers=0)
    assert (embedder.engine, embedder.dim) == ("onnx", 1280)
    run = embedder.embed_paths(good, [p.stem for p in good])
    expected = reference_features(BackboneSpec(), good)
    np.testing.assert_allclose(run.embeddings, expected, atol=1e-4, rtol=1e-4)
