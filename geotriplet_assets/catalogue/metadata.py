"""Parse the per-image `.txt` metadata of the Street View pose dataset.

Two forms are accepted, both with the `d` line authoritative:

- long (real data): ``d DatasetID TargetID PatchID StreetViewID tgt_lat tgt_lon tgt_height
  nx ny nz sv_lat sv_lon sv_height distance heading pitch roll``, optionally followed by an
  ``a`` line of alignment numbers (validated as numeric, otherwise ignored), and optionally a
  ``c lat lon`` line that must agree with the target position;
- short (original README): ``d DatasetID TargetID PatchID`` then ``c lat lon``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal


class Reason(StrEnum):
    """Stable codes for why a metadata file was rejected."""

    UNREADABLE_FILE = "unreadable_file"
    NOT_TEXT = "not_text"
    EMPTY_FILE = "empty_file"
    MISSING_D_LINE = "missing_d_line"
    DUPLICATE_D_LINE = "duplicate_d_line"
    MALFORMED_D_LINE = "malformed_d_line"
    INVALID_NUMBER = "invalid_number"
    INVALID_ID = "invalid_id"
    MISSING_COORDINATES = "missing_coordinates"
    DUPLICATE_C_LINE = "duplicate_c_line"
    MALFORMED_C_LINE = "malformed_c_line"
    CONFLICTING_COORDINATES = "conflicting_coordinates"
    LATITUDE_OUT_OF_RANGE = "latitude_out_of_range"
    LONGITUDE_OUT_OF_RANGE = "longitude_out_of_range"
    UNKNOWN_RECORD_TYPE = "unknown_record_type"
    MALFORMED_A_LINE = "malformed_a_line"


SHORT_D_FIELDS = ("dataset_id", "target_id", "patch_id")
LONG_D_FIELDS = (
    *SHORT_D_FIELDS,
    "street_view_id",
    "lat",
    "lon",
    "target_height",
    "normal_x",
    "normal_y",
    "normal_z",
    "sv_lat",
    "sv_lon",
    "sv_height",
    "distance",
    "heading",
    "pitch",
    "roll",
)
ID_FIELDS = frozenset({"dataset_id", "target_id", "patch_id", "street_view_id"})
C_FIELDS = ("lat", "lon")
COORDINATE_TOLERANCE_DEG = 1e-6

_INTEGER = re.compile(r"[+-]?[0-9]+")
SHOWN_TOKEN_CHARS = 32


class MetadataError(ValueError):
    """A metadata file that cannot be used, with a stable reason code and 1-based line."""

    def __init__(
        self, reason: Reason, line: int, detail: str, path: Path | str | None = None
    ) -> None:
        self.reason = str(reason)
        self.line = line
        self.detail = detail
        self.path = path
        where = f"{path}: " if path is not None else ""
        at_line = f"line {line}: " if line else ""
        super().__init__(f"{where}{at_line}{self.reason}: {detail}")


@dataclass(frozen=True, slots=True)
class ImageMetadata:
    """One image's metadata; long-form extras are None for the short form."""

    dataset_id: int
    target_id: int
    patch_id: int
    lat: float
    lon: float
    form: Literal["long", "short"]
    street_view_id: int | None = None
    target_height: float | None = None
    normal_x: float | None = None
    normal_y: float | None = None
    normal_z: float | None = None
    sv_lat: float | None = None
    sv_lon: float | None = None
    sv_height: float | None = None
    distance: float | None = None
    heading: float | None = None
    pitch: float | None = None
    roll: float | None = None


def _shown(token: str) -> str:
    """A token of the file as it appears in a rejection: quoted, at most SHOWN_TOKEN_CHARS."""
    if len(token) > SHOWN_TOKEN_CHARS:
        return repr(token[:SHOWN_TOKEN_CHARS]) + f"... ({len(token)} characters)"
    return repr(token)


def _parse_id(token: str, field: str, line: int) -> int:
    if not _INTEGER.fullmatch(token):
        raise MetadataError(
            Reason.INVALID_NUMBER, line, f"{field} {_shown(token)} is not an integer"
        )
    value = int(token)
    if value < 0:
        raise MetadataError(Reason.INVALID_ID, line, f"{field} {_shown(token)} is negative")
    return value


def _parse_float(token: str, field: str, line: int) -> float:
    try:
        value = float(token)
    except ValueError:
        value = math.nan
    if "_" in token or not math.isfinite(value):
        raise MetadataError(
            Reason.INVALID_NUMBER, line, f"{field} {_shown(token)} is not a finite number"
        )
    return value


def _parse_d_line(tokens: list[str], line: int) -> dict[str, int | float]:
    count = len(tokens) - 1
    if count == len(SHORT_D_FIELDS):
        fields = SHORT_D_FIELDS
    elif count == len(LONG_D_FIELDS):
        fields = LONG_D_FIELDS
    else:
        raise MetadataError(
            Reason.MALFORMED_D_LINE,
            line,
            f"d line has {count} values, expected {len(SHORT_D_FIELDS)} (short form) "
            f"or {len(LONG_D_FIELDS)} (long form)",
        )
    return {
        field: _parse_id(token, field, line)
        if field in ID_FIELDS
        else _parse_float(token, field, line)
        for field, token in zip(fields, tokens[1:], strict=True)
    }


def _parse_c_line(tokens: list[str], line: int) -> tuple[float, float]:
    if len(tokens) != 3:
        raise MetadataError(
            Reason.MALFORMED_C_LINE, line, f"c line has {len(tokens) - 1} values, expected 2"
        )
    return _parse_float(tokens[1], "lat", line), _parse_float(tokens[2], "lon", line)


def _check_a_line(tokens: list[str], line: int) -> None:
    if len(tokens) == 1:
        raise MetadataError(Reason.MALFORMED_A_LINE, line, "a line has no values")
    try:
        list(map(float, tokens[1:]))
    except ValueError:
        bad = next(token for token in tokens[1:] if not _is_float(token))
        raise MetadataError(
            Reason.MALFORMED_A_LINE, line, f"a line value {_shown(bad)} is not a number"
        ) from None


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _check_position(lat: float, lon: float, prefix: str, line: int) -> None:
    if not -90.0 <= lat <= 90.0:
        raise MetadataError(
            Reason.LATITUDE_OUT_OF_RANGE, line, f"{prefix}lat {lat!r} is outside [-90, 90]"
        )
    if not -180.0 <= lon <= 180.0:
        raise MetadataError(
            Reason.LONGITUDE_OUT_OF_RANGE, line, f"{prefix}lon {lon!r} is outside [-180, 180]"
        )


def parse_metadata(text: str) -> ImageMetadata:
    """Parse one metadata file's text; raise MetadataError naming the line and token."""
    d_values: dict[str, int | float] | None = None
    d_line = 0
    c_values: tuple[float, float] | None = None
    c_line = 0
    saw_content = False
    for number, raw in enumerate(text.splitlines(), start=1):
        tokens = raw.split()
        if not tokens:
            continue
        saw_content = True
        record = tokens[0]
        if record == "d":
            if d_values is not None:
                raise MetadataError(
                    Reason.DUPLICATE_D_LINE, number, f"second d line (first on line {d_line})"
                )
            d_values, d_line = _parse_d_line(tokens, number), number
        elif record == "c":
            if c_values is not None:
                raise MetadataError(
                    Reason.DUPLICATE_C_LINE, number, f"second c line (first on line {c_line})"
                )
            c_values, c_line = _parse_c_line(tokens, number), number
        elif record == "a":
            _check_a_line(tokens, number)
        else:
            raise MetadataError(
                Reason.UNKNOWN_RECORD_TYPE,
                number,
                f"record type {_shown(record)} is not one of 'd', 'a', 'c'",
            )
    if not saw_content:
        raise MetadataError(Reason.EMPTY_FILE, 0, "file has no content")
    if d_values is None:
        raise MetadataError(Reason.MISSING_D_LINE, 0, "no d line found")
    return _assemble(d_values, d_line, c_values, c_line)


def _assemble(
    d_values: dict[str, int | float],
    d_line: int,
    c_values: tuple[float, float] | None,
    c_line: int,
) -> ImageMetadata:
    if "lat" not in d_values:
        if c_values is None:
            raise MetadataError(
                Reason.MISSING_COORDINATES, d_line, "short-form d line needs a 'c lat lon' line"
            )
        lat, lon = c_values
        _check_position(lat, lon, "", c_line)
        return ImageMetadata(
            dataset_id=int(d_values["dataset_id"]),
            target_id=int(d_values["target_id"]),
            patch_id=int(d_values["patch_id"]),
            lat=lat,
            lon=lon,
            form="short",
        )
    _check_position(float(d_values["lat"]), float(d_values["lon"]), "", d_line)
    _check_position(float(d_values["sv_lat"]), float(d_values["sv_lon"]), "sv_", d_line)
    if c_values is not None:
        lat_gap = abs(c_values[0] - d_values["lat"])
        lon_gap = abs(c_values[1] - d_values["lon"])
        if max(lat_gap, lon_gap) > COORDINATE_TOLERANCE_DEG:
            raise MetadataError(
                Reason.CONFLICTING_COORDINATES,
                c_line,
                f"c line ({c_values[0]!r}, {c_values[1]!r}) disagrees with d line "
                f"({d_values['lat']!r}, {d_values['lon']!r}) on line {d_line}",
            )
    extras = {field: float(d_values[field]) for field in LONG_D_FIELDS if field not in ID_FIELDS}
    return ImageMetadata(
        dataset_id=int(d_values["dataset_id"]),
        target_id=int(d_values["target_id"]),
        patch_id=int(d_values["patch_id"]),
        street_view_id=int(d_values["street_view_id"]),
        form="long",
        **extras,
    )


def read_metadata_file(path: Path | str) -> ImageMetadata:
    """Read and parse one metadata file; errors carry the path."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise MetadataError(
            Reason.UNREADABLE_FILE, 0, f"cannot read: {error.strerror or error}", path
        ) from error
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise MetadataError(
            Reason.NOT_TEXT,
            0,
            f"byte {data[error.start : error.start + 1]!r} at offset {error.start} is not UTF-8",
            path,
        ) from None
    try:
        return parse_metadata(text)
    except MetadataError as error:
        raise MetadataError(Reason(error.reason), error.line, error.detail, path) from None
