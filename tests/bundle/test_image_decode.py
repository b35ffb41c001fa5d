import io
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from PIL import Image, ImageDraw

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import timm.data

from geotriplet_assets.bundle.image_decode import (
    NOT_AN_IMAGE,
    TOO_LARGE,
    TOO_SMALL,
    TRUNCATED,
    UNDECODABLE,
    UNREADABLE,
    ImageRejected,
    decode_bytes_to_uint8,
    decode_to_uint8,
    normalise_pixels,
)
from geotriplet_assets.bundle.preprocessing import DecodeLimits, Preprocessing
from tests.factories.model_input import decode_bytes_for_model, decode_for_model

GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
LITE0_CONFIG = {
    "input_size": (3, 224, 224),
    "interpolation": "bicubic",
    "mean": (0.5, 0.5, 0.5),
    "std": (0.5, 0.5, 0.5),
    "crop_pct": 0.875,
    "crop_mode": "center",
}


def photo_like(seed: int, width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Smooth colour fields with a few hard-edged shapes, like a compressed photograph."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 40 + 2, width // 40 + 2, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x0, y0 = (int(v) for v in rng.integers(0, (max(1, width - 8), max(1, height - 8))))
        w, h = (int(v) for v in rng.integers(4, (max(5, width // 3), max(5, height // 3))))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
    return image.convert(mode)


def write_jpeg(path: Path, image: Image.Image) -> Path:
    image.save(path, "JPEG", quality=90)
    return path


@pytest.fixture(scope="module")
def real_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    paths = [
        write_jpeg(folder / "square.jpg", photo_like(1, 640, 640)),
        write_jpeg(folder / "landscape.jpg", photo_like(2, 640, 480)),
        write_jpeg(folder / "portrait.jpg", photo_like(3, 333, 517)),
        write_jpeg(folder / "panorama.jpg", photo_like(4, 1000, 300)),
        write_jpeg(folder / "grey.jpg", photo_like(5, 300, 260, "L")),
        write_jpeg(folder / "exact.jpg", photo_like(6, 256, 256)),
    ]
    photo_like(7, 200, 150, "RGBA").save(folder / "alpha.png")
    paths.append(folder / "alpha.png")
    return [*paths, GRACE_HOPPER]


def timm_eval(path: Path, config: dict) -> np.ndarray:
    transform = timm.data.create_transform(**config)
    with Image.open(path) as image:
        return transform(image.convert("RGB")).numpy()


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"crop_pct": 1.0},
        {"interpolation": "bilinear", "crop_pct": 0.95, "input_size": (3, 160, 160)},
        {"crop_mode": "squash", "crop_pct": 0.9, "input_size": (3, 200, 300)},
        {"input_size": (3, 240, 180)},
    ],
)
def test_matches_timm_eval_transform_exactly_without_draft(
    real_images: list[Path], overrides: dict
) -> None:
    config = {**LITE0_CONFIG, **overrides}
    preprocessing = Preprocessing.from_data_config(config)
    for path in real_images:
        expected = timm_eval(path, config)
        actual = decode_for_model(path, preprocessing, use_draft=False)
        assert actual.dtype == np.float32
        assert actual.shape == expected.shape
        np.testing.assert_allclose(actual, expected, atol=1e-6, err_msg=path.name)


def test_draft_decoding_stays_close_to_timm(real_images: list[Path]) -> None:
    preprocessing = Preprocessing.from_data_config(LITE0_CONFIG)
    drafted_any = False
    for path in real_images:
        expected = timm_eval(path, LITE0_CONFIG)
        actual = decode_for_model(path, preprocessing, use_draft=True)
        difference = np.abs(actual - expected)
        assert difference.mean() < 0.03, path.name
        assert np.corrcoef(actual.ravel(), expected.ravel())[0, 1] > 0.99, path.name
        drafted_any |= bool(difference.max() > 0)
    assert drafted_any, "draft mode never engaged: every output equals the full decode"


def test_bytes_and_file_decoding_agree(real_images: list[Path]) -> None:
    preprocessing = Preprocessing.from_data_config(LITE0_CONFIG)
    path = real_images[0]
    from_file = decode_for_model(path, preprocessing)
    from_bytes = decode_bytes_for_model(path.read_bytes(), preprocessing)
    np.testing.assert_array_equal(from_file, from_bytes)


def test_uint8_crops_are_the_float_input_before_normalisation(real_images: list[Path]) -> None:
    preprocessing = Preprocessing.from_data_config({**LITE0_CONFIG, "input_size": (3, 240, 180)})
    for path in real_images:
        for use_draft in (False, True):
            pixels = decode_to_uint8(path, preprocessing, use_draft=use_draft)
            assert pixels.dtype == np.uint8
            assert pixels.shape == (240, 180, 3)
            expected = decode_for_model(path, preprocessing, use_draft=use_draft)
            np.testing.assert_array_equal(normalise_pixels(pixels, preprocessing), expected)
    from_bytes = decode_bytes_to_uint8(real_images[0].read_bytes(), preprocessing)
    np.testing.assert_array_equal(from_bytes, decode_to_uint8(real_images[0], preprocessing))


def good_jpeg_bytes(width: int = 320, height: int = 240) -> bytes:
    buffer = io.BytesIO()
    photo_like(9, width, height).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def corrupt_scan_data(data: bytes) -> bytes:
    start = data.find(b"\xff\xda")
    garbage = np.random.default_rng(0).bytes(2000)
    return data[: start + 20] + garbage + data[start + 20 + len(garbage) :]


TEXT = b"this is a text file, not a photograph\n"


@pytest.mark.parametrize(
    ("name", "content", "limits", "reason"),
    [
        ("notes.jpg", lambda: TEXT, DecodeLimits(), NOT_AN_IMAGE),
        ("noise.jpg", lambda: np.random.default_rng(1).bytes(4096), DecodeLimits(), NOT_AN_IMAGE),
        ("cut.jpg", lambda: good_jpeg_bytes()[:6000], DecodeLimits(), TRUNCATED),
        ("no_end.jpg", lambda: good_jpeg_bytes()[:-2], DecodeLimits(), TRUNCATED),
        ("scan.jpg", lambda: corrupt_scan_data(good_jpeg_bytes()), DecodeLimits(), UNDECODABLE),
        ("tiny.jpg", lambda: good_jpeg_bytes(8, 8), DecodeLimits(), TOO_SMALL),
        ("thin.jpg", lambda: good_jpeg_bytes(300, 20), DecodeLimits(), TOO_SMALL),
        # Over the limit (PIL warns) and over twice the limit (PIL raises).
        (
            "large.jpg",
            lambda: good_jpeg_bytes(320, 240),
            DecodeLimits(max_pixels=60_000),
            TOO_LARGE,
        ),
        (
            "bomb.jpg",
            lambda: good_jpeg_bytes(320, 240),
            DecodeLimits(max_pixels=30_000),
            TOO_LARGE,
        ),
    ],
)
def test_bad_files_are_rejected_with_their_reason(
    tmp_path: Path,
    name: str,
    content: Callable[[], bytes],
    limits: DecodeLimits,
    reason: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(content())
    preprocessing = Preprocessing.from_data_config(LITE0_CONFIG)
    with pytest.raises(ImageRejected) as rejected:
        decode_for_model(path, preprocessing, limits)
    assert rejected.value.reason == reason
    assert name in rejected.value.detail


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ImageRejected) as rejected:
        decode_for_model(tmp_path / "gone.jpg", Preprocessing.from_data_config(LITE0_CONFIG))
    assert rejected.value.reason == UNREADABLE


def test_pil_bomb_guard_is_set_to_our_limit() -> None:
    limits = DecodeLimits(max_pixels=1_234_567)
    decode_bytes_for_model(good_jpeg_bytes(), Preprocessing.from_data_config(LITE0_CONFIG), limits)
    assert Image.MAX_IMAGE_PIXELS == 1_234_567


def test_an_image_exactly_at_the_limits_is_accepted() -> None:
    preprocessing = replace(
        Preprocessing.from_data_config(LITE0_CONFIG), input_size=(3, 32, 32), crop_pct=1.0
    )
    limits = DecodeLimits(min_side=32, max_pixels=64 * 32)
    tensor = decode_bytes_for_model(good_jpeg_bytes(64, 32), preprocessing, limits)
    assert tensor.shape == (3, 32, 32)
    assert np.isfinite(tensor).all()


def test_module_does_not_import_torch() -> None:
    code = (
        "import sys, geotriplet_assets.bundle.image_decode; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


STRIP_DECODE = """
import io, resource, sys
import numpy as np
from PIL import Image
from geotriplet_assets.bundle.image_decode import decode_bytes_to_uint8
from geotriplet_assets.bundle.preprocessing import DecodeLimits, Preprocessing
width, height = int(sys.argv[1]), int(sys.argv[2])
rows = np.linspace(0, 255, height, dtype=np.uint8)[:, None, None]
strip = Image.fromarray(np.broadcast_to(rows, (height, width, 3)).copy())
buffer = io.BytesIO()
strip.save(buffer, "PNG")
data = buffer.getvalue()
del strip
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
preprocessing = Preprocessing((3, 224, 224), "bicubic", (0.5,) * 3, (0.5,) * 3, 0.875, "center")
pixels = decode_bytes_to_uint8(data, preprocessing, DecodeLimits(32, 40_000_000))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(pixels.shape, len(data), (after - before) // 1024)
"""


@pytest.mark.parametrize("size", [(32, 200_000), (200_000, 32)])
def test_a_tall_or_wide_strip_decodes_within_the_memory_of_a_few_crops(size) -> None:
    # Resizing the whole strip as timm does would take 2 GB here (32 x 200 000 upscaled
    # 8 times); only the crop's source box is resampled, measured in a fresh process.
    shown = subprocess.run(
        [sys.executable, "-c", STRIP_DECODE, *map(str, size)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()
    assert shown[:3] == ["(224,", "224,", "3)"]
    assert int(shown[3]) < 500_000  # a compressible PNG: hundreds of KB, 6.4 MP
    assert int(shown[4]) < 200, f"decoding grew the process by {shown[4]} MB"


def test_moderate_aspect_ratios_keep_timms_exact_whole_image_resize() -> None:
    preprocessing = Preprocessing.from_data_config(LITE0_CONFIG)
    image = Image.fromarray(
        np.random.default_rng(3).integers(0, 256, (300, 3000, 3), dtype=np.uint8)
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    # 10:1 resizes to 2560 x 256, 13 crops: under EXACT_RESIZE_MAX_FACTOR, still exact
    actual = decode_bytes_for_model(buffer.getvalue(), preprocessing)
    expected = timm.data.create_transform(**LITE0_CONFIG)(image).numpy()
    np.testing.assert_allclose(actual, expected, atol=1e-6)


def test_a_fifo_or_a_symlink_is_unreadable_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "real.jpg").write_bytes(good_jpeg_bytes())
    (tmp_path / "link.jpg").symlink_to(tmp_path / "real.jpg")
    preprocessing = Preprocessing.from_data_config(LITE0_CONFIG)
    reasons: dict[str, str] = {}

    def decode(name: str) -> None:
        try:
            decode_to_uint8(tmp_path / name, preprocessing)
        except ImageRejected as rejected:
            reasons[name] = rejected.reason

    for name in ("pipe.jpg", "link.jpg"):
        worker = threading.Thread(target=decode, args=(name,), daemon=True)
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), f"decoding {name} blocked"
    assert reasons == {"pipe.jpg": UNREADABLE, "link.jpg": UNREADABLE}
    assert decode_to_uint8(tmp_path / "real.jpg", preprocessing).shape == (224, 224, 3)
