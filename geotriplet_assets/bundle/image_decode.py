"""Decode one image into the input a backbone expects (numpy + PIL only).

`decode_to_uint8` (a file) and `decode_bytes_to_uint8` (bytes in memory) give the model's
crop as HWC uint8 pixels; the models normalise them themselves, exactly as
`normalise_pixels` does (CHW float32).

The geometry follows timm's eval transform exactly: resize (shorter side to
floor(size / crop_pct) for crop_mode "center", both sides for "squash") with the
model's interpolation, center crop, scale to [0, 1], normalise with mean/std.
JPEGs are decoded in draft mode (DCT scaling) to no less than the resize target.
EXIF orientation is not applied, as in timm.
"""

from __future__ import annotations

import functools
import io
import math
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from geotriplet_assets.bundle.preprocessing import DEFAULT_LIMITS, DecodeLimits, Preprocessing

NOT_AN_IMAGE = "not_an_image"
UNDECODABLE = "undecodable"
TRUNCATED = "truncated"
TOO_SMALL = "too_small"
TOO_LARGE = "too_large"
UNREADABLE = "unreadable"
# Largest whole-image resize, in crops: aspect ratios up to about 12:1 are resized exactly.
EXACT_RESIZE_MAX_FACTOR = 16

_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


class ImageRejected(Exception):
    """An image that cannot be embedded, with a reason code and a human-readable detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class _ResizePlan:
    size: tuple[int, int]
    crop_box: tuple[int, int, int, int]


def decode_to_uint8(
    path: Path,
    preprocessing: Preprocessing,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    use_draft: bool = True,
) -> np.ndarray:
    """The resized, cropped (H, W, 3) uint8 RGB pixels of the image file at PATH.

    Only a regular file is read: opening a FIFO would block until something writes to it,
    so the file is opened without blocking and checked first.
    """
    with _open_regular_file(path) as handle:
        return _decode(handle, str(path), preprocessing, limits, use_draft)


def decode_thumbnail(
    path: Path, size: int, limits: DecodeLimits = DEFAULT_LIMITS, *, mode: str = "RGB"
) -> Image.Image:
    """The image of the file at PATH in MODE ("RGB" or "L") scaled to fit SIZE x SIZE
    (aspect kept, never enlarged), decoded within LIMITS like a model input; raises
    ImageRejected."""
    with _open_regular_file(path) as handle:
        return _thumbnail(handle, str(path), size, limits, mode)


def decode_bytes_thumbnail(
    data: bytes,
    size: int,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    mode: str = "RGB",
    name: str = "<bytes>",
) -> Image.Image:
    """As `decode_thumbnail`, for an encoded image held in memory."""
    return _thumbnail(io.BytesIO(data), name, size, limits, mode)


def _thumbnail(
    source: BinaryIO, name: str, size: int, limits: DecodeLimits, mode: str
) -> Image.Image:
    image = _open(source, name, limits)
    with image:
        width, height = image.size
        if width * height > limits.max_pixels:
            raise ImageRejected(
                TOO_LARGE, f"{name}: {width}x{height} exceeds {limits.max_pixels} pixels"
            )
        image.draft(mode, (size, size))
        _load(image, name)
        converted = image.convert(mode)
    converted.thumbnail((size, size), Image.Resampling.LANCZOS)
    return converted


def _open_regular_file(path: Path) -> BinaryIO:
    """PATH opened for reading only if it is a regular file: without blocking (a FIFO would
    block until written) and without following a link."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as error:
        raise ImageRejected(UNREADABLE, f"{path}: {error.strerror or error}") from error
    handle = os.fdopen(descriptor, "rb")
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        handle.close()
        raise ImageRejected(UNREADABLE, f"{path}: not a regular file")
    return handle


def decode_bytes_to_uint8(
    data: bytes,
    preprocessing: Preprocessing,
    limits: DecodeLimits = DEFAULT_LIMITS,
    *,
    use_draft: bool = True,
    name: str = "<bytes>",
) -> np.ndarray:
    """As `decode_to_uint8`, for an encoded image held in memory."""
    return _decode(io.BytesIO(data), name, preprocessing, limits, use_draft)


def normalise_pixels(pixels: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """(H, W, 3) uint8 to CHW float32 with the values ToTensor + Normalize compute."""
    table = _normalisation_table(preprocessing.mean, preprocessing.std)
    planes = pixels.transpose(2, 0, 1)
    chw = np.empty(planes.shape, dtype=np.float32)
    for channel in range(3):
        # mode="clip" lets numpy write into `out` directly (uint8 indices are always valid).
        np.take(table[channel], planes[channel], out=chw[channel], mode="clip")
    return chw


def _decode(
    source: BinaryIO,
    name: str,
    preprocessing: Preprocessing,
    limits: DecodeLimits,
    use_draft: bool,
) -> np.ndarray:
    image = _open(source, name, limits)
    with image:
        width, height = image.size
        if min(width, height) < limits.min_side:
            raise ImageRejected(
                TOO_SMALL, f"{name}: {width}x{height}, shorter side under {limits.min_side}"
            )
        if width * height > limits.max_pixels:
            raise ImageRejected(
                TOO_LARGE, f"{name}: {width}x{height} exceeds {limits.max_pixels} pixels"
            )
        if use_draft:
            image.draft("RGB", _scaled_size(width, height, preprocessing))
        _load(image, name)
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        plan = _plan_resize(rgb.width, rgb.height, preprocessing)
        cropped = _resize_and_crop(rgb, plan, _resampling(preprocessing.interpolation))
        return np.asarray(cropped, dtype=np.uint8)


def _open(source: BinaryIO, name: str, limits: DecodeLimits) -> Image.Image:
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return Image.open(source)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageRejected(TOO_LARGE, f"{name}: {error}") from error
    except UnidentifiedImageError as error:
        raise ImageRejected(NOT_AN_IMAGE, f"{name}: not a recognised image format") from error
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageRejected(UNDECODABLE, f"{name}: bad image header: {error}") from error


def _load(image: Image.Image, name: str) -> None:
    try:
        image.load()
    except OSError as error:
        reason = TRUNCATED if "truncated" in str(error) else UNDECODABLE
        raise ImageRejected(reason, f"{name}: {error}") from error
    except (ValueError, SyntaxError, EOFError, MemoryError) as error:
        raise ImageRejected(UNDECODABLE, f"{name}: {error}") from error


def _scaled_size(width: int, height: int, preprocessing: Preprocessing) -> tuple[int, int]:
    """The (W, H) the image is resized to before cropping, as floor(size / crop_pct)."""
    scale_h = math.floor(preprocessing.height / preprocessing.crop_pct)
    scale_w = math.floor(preprocessing.width / preprocessing.crop_pct)
    if preprocessing.crop_mode == "squash":
        return scale_w, scale_h
    if scale_h == scale_w:
        # torchvision Resize(int): shorter side to the size, longer side truncated.
        short, long = sorted((width, height))
        new_long = int(scale_h * long / short)
        return (scale_w, new_long) if width <= height else (new_long, scale_h)
    # timm ResizeKeepRatio: scale by the smaller of the two ratios, rounded.
    ratio = min(height / scale_h, width / scale_w)
    return round(width / ratio), round(height / ratio)


def _plan_resize(width: int, height: int, preprocessing: Preprocessing) -> _ResizePlan:
    new_width, new_height = _scaled_size(width, height, preprocessing)
    crop_w, crop_h = preprocessing.width, preprocessing.height
    # crop_pct <= 1 makes the resized image at least as large as the crop.
    # torchvision center_crop rounds the offsets.
    top = round((new_height - crop_h) / 2.0)
    left = round((new_width - crop_w) / 2.0)
    return _ResizePlan((new_width, new_height), (left, top, left + crop_w, top + crop_h))


def _resize_and_crop(
    image: Image.Image, plan: _ResizePlan, resample: Image.Resampling
) -> Image.Image:
    """The crop of the resized image. Resampling only the crop's source box is within a few
    levels of timm's whole-image resize, so the whole image is resized, as timm does, unless
    that would exceed EXACT_RESIZE_MAX_FACTOR crops: a 32 x 1 250 000 strip would grow to
    2.5 G pixels. Then only the box is resampled, and memory stays that of one crop."""
    if plan.size == image.size:
        return image.crop(plan.crop_box)
    left, top, right, bottom = plan.crop_box
    new_width, new_height = plan.size
    if new_width * new_height <= EXACT_RESIZE_MAX_FACTOR * (right - left) * (bottom - top):
        return image.resize(plan.size, resample).crop(plan.crop_box)
    x_scale, y_scale = image.width / new_width, image.height / new_height
    box = (left * x_scale, top * y_scale, right * x_scale, bottom * y_scale)
    return image.resize((right - left, bottom - top), resample, box=box)


def _resampling(interpolation: str) -> Image.Resampling:
    try:
        return _RESAMPLING[interpolation]
    except KeyError:
        raise ValueError(
            f"unsupported interpolation {interpolation!r} (use one of {', '.join(_RESAMPLING)})"
        ) from None


@functools.cache
def _normalisation_table(
    mean: tuple[float, float, float], std: tuple[float, float, float]
) -> np.ndarray:
    """(3, 256): each uint8 value of each channel as (v / 255 - mean) / std in float32."""
    values = np.arange(256, dtype=np.float32) / np.float32(255)
    mean_column = np.asarray(mean, dtype=np.float32)[:, None]
    std_column = np.asarray(std, dtype=np.float32)[:, None]
    return (values[None, :] - mean_column) / std_column
