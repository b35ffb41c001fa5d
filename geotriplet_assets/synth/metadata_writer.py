"""The `.txt` metadata of one synthetic image: the dataset's long form or the README's short form.

Long form: ``d DatasetID TargetID PatchID StreetViewID tgt_lat tgt_lon tgt_height nx ny nz
sv_lat sv_lon sv_height distance heading pitch roll``, optionally followed by an ``a`` line of
40 alignment numbers. Short form: ``d DatasetID TargetID PatchID`` then ``c lat lon``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ALIGNMENT_VALUES = 40


@dataclass(frozen=True)
class ImageRecord:
    """What the metadata file of one image states."""

    dataset_id: int
    target_id: int
    patch_id: int
    street_view_id: int
    target_lat: float
    target_lon: float
    target_height: float
    normal: tuple[float, float, float]
    sv_lat: float
    sv_lon: float
    sv_height: float
    distance: float
    heading: float
    pitch: float
    roll: float = 0.0


def image_stem(record: ImageRecord, view_index: int) -> str:
    """File stem `<DatasetID>_<TargetID>_<PatchID>_<view>` shared by the .jpg and .txt."""
    return f"{record.dataset_id:04d}_{record.target_id:07d}_{record.patch_id:07d}_{view_index}"


def _ids(record: ImageRecord) -> str:
    return f"d {record.dataset_id:04d} {record.target_id:07d} {record.patch_id:07d}"


def long_form_text(record: ImageRecord, alignment: Sequence[float] | None = None) -> str:
    """The `d` line with 17 numbers, plus an `a` line when alignment values are given."""
    nx, ny, nz = record.normal
    values = (
        f"{record.street_view_id:07d}",
        f"{record.target_lat:.8f}",
        f"{record.target_lon:.8f}",
        f"{record.target_height:.3f}",
        f"{nx:.6f}",
        f"{ny:.6f}",
        f"{nz:.6f}",
        f"{record.sv_lat:.8f}",
        f"{record.sv_lon:.8f}",
        f"{record.sv_height:.3f}",
        f"{record.distance:.3f}",
        f"{record.heading:.4f}",
        f"{record.pitch:.4f}",
        f"{record.roll:.1f}",
    )
    text = f"{_ids(record)} {' '.join(values)}\n"
    if alignment is not None:
        if len(alignment) != ALIGNMENT_VALUES:
            raise ValueError(f"alignment needs {ALIGNMENT_VALUES} values, got {len(alignment)}")
        text += "a " + " ".join(f"{v:.3f}" for v in alignment) + "\n"
    return text


def short_form_text(record: ImageRecord) -> str:
    """The README's short form: ids on the `d` line, target position on a `c` line."""
    return f"{_ids(record)}\nc {record.target_lat:.8f} {record.target_lon:.8f}\n"
