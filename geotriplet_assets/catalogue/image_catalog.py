"""Catalogue of images and their metadata under an input folder, with every rejection."""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from geotriplet_assets.catalogue.metadata import (
    LONG_D_FIELDS,
    MetadataError,
    Reason,
    read_metadata_file,
)
from geotriplet_assets.paths import atomic_path

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
METADATA_EXTENSION = ".txt"
IMAGES_FILE = "images.parquet"
REJECTIONS_FILE = "rejections.parquet"

IMAGE_MISSING = "image_missing"
DUPLICATE_IMAGE_ID = "duplicate_image_id"
METADATA_MISSING = "metadata_missing"
NOT_A_REGULAR_FILE = "not_a_regular_file"
UNDECODABLE_NAME = "undecodable_name"
CONTROL_CHARACTER_IN_NAME = "control_character_in_name"
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
DUPLICATE_VIEW = "duplicate_view"
MAX_DETAIL_CHARS = 200
BATCH_STEMS = 4096
CatalogProgress = Callable[[int, int], None]
# One photograph: the views of a target share a PatchID and differ by StreetViewID (None in
# the short form, whose d line has no StreetViewID).
VIEW_KEY = ("dataset_id", "target_id", "patch_id", "street_view_id")

_EXTRA_FLOAT_FIELDS = tuple(name for name in LONG_D_FIELDS[4:] if name not in ("lat", "lon"))
IMAGE_DTYPES: dict[str, str] = {
    "image_id": "str",
    "path": "str",
    "metadata_path": "str",
    "dataset_id": "int64",
    "target_id": "int64",
    "patch_id": "int64",
    "lat": "float64",
    "lon": "float64",
    "form": "str",
    "street_view_id": "Int64",
    **dict.fromkeys(_EXTRA_FLOAT_FIELDS, "float64"),
    "file_size": "int64",
    "mtime_ns": "int64",
}
REJECTION_DTYPES: dict[str, str] = {
    "file": "str",
    "line": "int64",
    "reason": "str",
    "detail": "str",
}


class EmptyCatalogError(ValueError):
    """The input folder yields no usable image."""


@dataclass
class Catalog:
    """Accepted images (one row each) and rejected files (one row per problem)."""

    images: pd.DataFrame
    rejections: pd.DataFrame


@dataclass
class _Stem:
    """Files in one folder that share a name without extension."""

    metadata: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


def _scan(root: str) -> Iterator[tuple[list[tuple[str, _Stem]], list[dict[str, Any]]]]:
    """Per folder, its metadata and image files grouped by relative stem (a stem's files
    always share a folder), and what cannot be used as a file.

    Only regular files are catalogued: a FIFO, device, socket or symbolic link with an image
    or metadata extension is a rejection (reading a FIFO would block forever, a link could
    point anywhere). So is a name that is not UTF-8, which no table could hold.
    """
    pending = [""]
    while pending:
        prefix = pending.pop()
        stems: dict[str, _Stem] = defaultdict(_Stem)
        rejections: list[dict[str, Any]] = []
        try:
            with os.scandir(os.path.join(root, prefix) if prefix else root) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            detail = f"cannot list folder: {error.strerror or error}"
            folder = prefix.rstrip("/") or "."
            yield [], [_rejection(folder, 0, Reason.UNREADABLE_FILE, detail)]
            continue
        for entry in entries:
            relative = prefix + entry.name
            if not _is_utf8(entry.name):
                rejections.append(_undecodable_name(relative))
            elif _CONTROL_CHARACTER.search(entry.name):
                detail = "the file name holds a control character (a newline, a tab...)"
                shown = relative.encode("unicode_escape").decode("ascii")
                rejections.append(_rejection(shown, 0, CONTROL_CHARACTER_IN_NAME, detail))
            elif entry.is_dir(follow_symlinks=False):
                pending.append(relative + "/")
            else:
                _add_file(stems, rejections, entry, relative)
        yield sorted(stems.items()), rejections


def _batches(
    root: str, scan_rejections: list[dict[str, Any]], size: int
) -> Iterator[list[tuple[str, _Stem]]]:
    """The scan's stems in batches of about SIZE; its rejections go to SCAN_REJECTIONS."""
    batch: list[tuple[str, _Stem]] = []
    for items, rejections in _scan(root):
        scan_rejections.extend(rejections)
        batch.extend(items)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _add_file(
    stems: dict[str, _Stem],
    rejections: list[dict[str, Any]],
    entry: os.DirEntry[str],
    relative: str,
) -> None:
    stem, extension = os.path.splitext(relative)
    extension = extension.lower()
    if extension != METADATA_EXTENSION and extension not in IMAGE_EXTENSIONS:
        return
    if not entry.is_file(follow_symlinks=False):
        kind = "a symbolic link" if entry.is_symlink() else "not a regular file"
        detail = f"{kind}: only regular files are read"
        rejections.append(_rejection(relative, 0, NOT_A_REGULAR_FILE, detail))
    elif extension == METADATA_EXTENSION:
        stems[stem].metadata.append(relative)
    else:
        stems[stem].images.append(relative)


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # os.fsdecode keeps undecodable bytes as lone surrogates
        return False
    return True


def _undecodable_name(relative: str) -> dict[str, Any]:
    shown = relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _rejection(shown, 0, UNDECODABLE_NAME, "the file name is not valid UTF-8")


def _rejection(file: str, line: int, reason: str, detail: str) -> dict[str, Any]:
    if len(detail) > MAX_DETAIL_CHARS:
        detail = detail[: MAX_DETAIL_CHARS - 3] + "..."
    return {"file": file, "line": line, "reason": str(reason), "detail": detail}


def _accepted_row(root: str, image_id: str, image: str, metadata_path: str) -> dict[str, Any]:
    """Catalogue row for one image; raises MetadataError or OSError."""
    metadata = read_metadata_file(os.path.join(root, metadata_path))
    stat = os.stat(os.path.join(root, image))
    row: dict[str, Any] = {
        "image_id": image_id,
        "path": image,
        "metadata_path": metadata_path,
        "form": metadata.form,
        "file_size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }
    for name in LONG_D_FIELDS:
        row[name] = getattr(metadata, name)
    return row


def _catalog_stem(
    root: str, image_id: str, group: _Stem
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The accepted row (or None) and the rejections for one image id."""
    if not group.metadata:
        return None, [
            _rejection(image, 0, METADATA_MISSING, f"no {image_id}.txt beside {image}")
            for image in group.images
        ]
    if not group.images:
        wanted = "/".join(IMAGE_EXTENSIONS)
        return None, [
            _rejection(path, 0, IMAGE_MISSING, f"no {wanted} image beside {path}")
            for path in group.metadata
        ]
    if len(group.images) > 1 or len(group.metadata) > 1:
        files = ", ".join(sorted(group.metadata + group.images))
        detail = f"image id {image_id!r} is claimed by several files: {files}"
        return None, [_rejection(min(group.metadata), 0, DUPLICATE_IMAGE_ID, detail)]
    image, metadata_path = group.images[0], group.metadata[0]
    try:
        return _accepted_row(root, image_id, image, metadata_path), []
    except MetadataError as error:
        return None, [_rejection(metadata_path, error.line, error.reason, error.detail)]
    except OSError as error:
        detail = f"cannot stat image: {error}"
        return None, [_rejection(image, 0, Reason.UNREADABLE_FILE, detail)]


def _catalog_batch(
    root: str, items: list[tuple[str, _Stem]]
) -> tuple[pd.DataFrame, list[dict[str, Any]], int]:
    """Accepted images (a typed frame), rejections and metadata file count of ITEMS."""
    rows, rejections = [], []
    for image_id, group in items:
        row, problems = _catalog_stem(root, image_id, group)
        if row is not None:
            rows.append(row)
        rejections.extend(problems)
    return _images_frame(rows), rejections, sum(len(group.metadata) for _, group in items)


def _without_duplicate_views(
    images: pd.DataFrame, rejections: list[dict[str, Any]]
) -> pd.DataFrame:
    """IMAGES (sorted by image_id) less every later image of a view already seen, each
    rejected naming the first, which is kept."""
    key = list(VIEW_KEY)
    later = images.duplicated(key, keep="first")
    if not later.any():
        return images
    first = images.groupby(key, dropna=False, sort=False)["image_id"].transform("first")
    for position in np.flatnonzero(later.to_numpy()):
        row = images.iloc[position]
        view = ", ".join(
            f"{name} {None if pd.isna(row[name]) else row[name]}" for name in VIEW_KEY
        )
        detail = f"the same view ({view}) as {first.iloc[position]}, which is kept"
        rejections.append(_rejection(row["metadata_path"], 1, DUPLICATE_VIEW, detail))
    return images[~later.to_numpy()].reset_index(drop=True)


def default_workers() -> int:
    """The cores this process may run on (a SLURM job's allocation, a container's limit)."""
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )


def build_catalog(
    input_dir: Path,
    *,
    workers: int | None = None,
    progress: CatalogProgress | None = None,
) -> Catalog:
    """Pair every image with its `.txt` metadata under input_dir, recursively.

    Folders are listed in this process; the metadata of each batch of BATCH_STEMS stems is
    parsed in one of WORKERS spawned processes (default: one per usable core; inline when
    there is a single batch), which returns it as a typed frame, so no per-image Python
    object outlives its batch. PROGRESS(parsed, found) follows the stems.
    """
    input_dir = Path(input_dir)
    if not input_dir.exists():
        raise EmptyCatalogError(f"input folder {input_dir} does not exist")
    if not input_dir.is_dir():
        raise EmptyCatalogError(f"input path {input_dir} is not a directory")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    root = os.fspath(input_dir)
    rejections: list[dict[str, Any]] = []
    frames: list[pd.DataFrame] = []
    counts = {"metadata": 0, "parsed": 0, "found": 0}

    def collect(result: tuple[pd.DataFrame, list[dict[str, Any]], int], stems: int) -> None:
        frame, problems, metadata = result
        frames.append(frame)
        rejections.extend(problems)
        counts["metadata"] += metadata
        counts["parsed"] += stems
        if progress is not None:
            progress(counts["parsed"], counts["found"])

    def counted() -> Iterator[list[tuple[str, _Stem]]]:
        for batch in _batches(root, rejections, BATCH_STEMS):
            counts["found"] += len(batch)
            yield batch

    stream = counted()
    head = list(itertools.islice(stream, 2))  # a single batch is parsed inline
    batches = itertools.chain(head, stream)
    if len(head) < 2 or workers == 1:
        for batch in batches:
            collect(_catalog_batch(root, batch), len(batch))
    else:
        _parse_in_processes(root, batches, workers, collect)
    images = _images_frame([]) if not frames else pd.concat(frames, ignore_index=True)
    images = images.sort_values("image_id", kind="stable", ignore_index=True)
    images = _without_duplicate_views(images, rejections)
    catalog = Catalog(images=images, rejections=_rejections_frame(rejections))
    if catalog.images.empty:
        raise EmptyCatalogError(_empty_reason(input_dir, counts["metadata"], catalog.rejections))
    return catalog


def _parse_in_processes(
    root: str,
    batches: Iterator[list[tuple[str, _Stem]]],
    workers: int,
    collect: Callable[[tuple[pd.DataFrame, list[dict[str, Any]], int], int], None],
) -> None:
    """Parse BATCHES in WORKERS spawned processes (never forked from a threaded parent), at
    most two batches per worker in flight so the listing does not run far ahead."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: dict[concurrent.futures.Future, int] = {}
        for batch in batches:
            if len(pending) >= 2 * workers:
                done, _ = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED
                )
                for future in done:
                    collect(future.result(), pending.pop(future))
            pending[pool.submit(_catalog_batch, root, batch)] = len(batch)
        for future in concurrent.futures.as_completed(pending):
            collect(future.result(), pending[future])


def _empty_reason(input_dir: Path, metadata_count: int, rejections: pd.DataFrame) -> str:
    if metadata_count == 0:
        images = int((rejections["reason"] == METADATA_MISSING).sum())
        return f"no .txt metadata files found under {input_dir} ({images} image files found)"
    by_reason = ", ".join(
        f"{reason}={count}" for reason, count in sorted(Counter(rejections["reason"]).items())
    )
    return (
        f"{metadata_count} .txt metadata files found under {input_dir} but every image was "
        f"rejected ({len(rejections)} rejections: {by_reason})"
    )


def _images_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    columns = {
        name: pd.array([row[name] for row in rows], dtype=dtype)
        for name, dtype in IMAGE_DTYPES.items()
    }
    frame = pd.DataFrame(columns)
    return frame.sort_values("image_id", kind="stable", ignore_index=True)


def _rejections_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(REJECTION_DTYPES)).astype(REJECTION_DTYPES)
    return frame.sort_values(["file", "line"], kind="stable", ignore_index=True)


class ImageFiles(Mapping[str, Path]):
    """image_id -> its file under ROOT, for the catalogued images whose file is recorded,
    looked up in the catalogue's own columns: a dict of Paths would cost a few hundred bytes
    an image (gigabytes at tens of millions) to find a handful of them."""

    def __init__(self, images: pd.DataFrame, root: Path) -> None:
        present = (images["path"] != "").to_numpy()
        self._paths = pd.Series(
            images["path"].to_numpy()[present], index=images["image_id"].to_numpy()[present]
        )
        self._root = Path(root)

    def __getitem__(self, image_id: str) -> Path:
        return self._root / self._paths[image_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths.index)

    def __len__(self) -> int:
        return len(self._paths)


def catalog_counts(catalog: Catalog) -> dict[str, Any]:
    """Summary figures: images, targets, datasets, rejections by reason, images by dataset."""
    images = catalog.images
    by_dataset = images["dataset_id"].value_counts().sort_index()
    by_reason = catalog.rejections["reason"].value_counts().sort_index()
    return {
        "images": len(images),
        "targets": len(images[["dataset_id", "target_id"]].drop_duplicates()),
        "datasets": int(images["dataset_id"].nunique()),
        "rejections_by_reason": {str(k): int(v) for k, v in by_reason.items()},
        "images_by_dataset": {int(k): int(v) for k, v in by_dataset.items()},
    }


def write_catalog(catalog: Catalog, directory: Path) -> None:
    """Write images.parquet and rejections.parquet into DIRECTORY.

    Both are written in full under temporary names before either is renamed into place,
    so a failure leaves the previous pair untouched.
    """
    directory = Path(directory)
    with (
        atomic_path(directory / IMAGES_FILE) as images_file,
        atomic_path(directory / REJECTIONS_FILE) as rejections_file,
    ):
        catalog.images.to_parquet(images_file, engine="pyarrow", index=False)
        catalog.rejections.to_parquet(rejections_file, engine="pyarrow", index=False)


def _read_frame(path: Path, dtypes: dict[str, str]) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(
            f"catalogue file {path} not found; materialise the image_catalog asset first"
        )
    frame = pd.read_parquet(path, engine="pyarrow")
    if list(frame.columns) != list(dtypes):
        raise ValueError(
            f"catalogue file {path} has columns {list(frame.columns)}, expected {list(dtypes)}"
        )
    return frame.astype(dtypes)


def read_catalog(directory: Path) -> Catalog:
    """Load a catalogue written by write_catalog, with the same columns and dtypes."""
    directory = Path(directory)
    return Catalog(
        images=_read_frame(directory / IMAGES_FILE, IMAGE_DTYPES),
        rejections=_read_frame(directory / REJECTIONS_FILE, REJECTION_DTYPES),
    )
