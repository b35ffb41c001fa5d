from pathlib import Path

import pytest

from geotriplet_assets.catalogue.metadata import (
    ImageMetadata,
    MetadataError,
    Reason,
    parse_metadata,
    read_metadata_file,
)

LONG_D = (
    "d 0006 0087241 1 123456 40.441234 -79.998765 12.5 0.1 0.2 0.0 "
    "40.441300 -79.998900 2.5 15.2 182.5 3.1 0"
)
A_LINE = "a " + " ".join(f"{0.25 * i:.2f}" for i in range(40))
SHORT_D = "d 0006 0087241 2"

EXPECTED_LONG = ImageMetadata(
    dataset_id=6,
    target_id=87241,
    patch_id=1,
    lat=40.441234,
    lon=-79.998765,
    form="long",
    street_view_id=123456,
    target_height=12.5,
    normal_x=0.1,
    normal_y=0.2,
    normal_z=0.0,
    sv_lat=40.4413,
    sv_lon=-79.9989,
    sv_height=2.5,
    distance=15.2,
    heading=182.5,
    pitch=3.1,
    roll=0.0,
)


def long_d_with(index: int, token: str) -> str:
    """The long d line with the value at position index (0 = DatasetID) replaced."""
    tokens = LONG_D.split()
    tokens[index + 1] = token
    return " ".join(tokens)


def test_long_form_without_a_line() -> None:
    assert parse_metadata(LONG_D + "\n") == EXPECTED_LONG


def test_long_form_with_a_line() -> None:
    assert parse_metadata(f"{LONG_D}\n{A_LINE}\n") == EXPECTED_LONG


def test_short_form_takes_position_from_c_line() -> None:
    metadata = parse_metadata(f"{SHORT_D}\nc 40.5 -80.25\n")
    assert metadata == ImageMetadata(
        dataset_id=6, target_id=87241, patch_id=2, lat=40.5, lon=-80.25, form="short"
    )
    assert metadata.street_view_id is None
    assert metadata.heading is None


def test_long_form_with_agreeing_c_line_keeps_d_line_position() -> None:
    metadata = parse_metadata(f"{LONG_D}\nc 40.4412345 -79.9987655\n")
    assert metadata == EXPECTED_LONG


def test_zero_padded_ids_are_integers() -> None:
    metadata = parse_metadata("d 0000 0000000 007\nc 0 0\n")
    assert (metadata.dataset_id, metadata.target_id, metadata.patch_id) == (0, 0, 7)
    assert isinstance(metadata.target_id, int)


def test_crlf_blank_lines_and_surrounding_whitespace() -> None:
    text = f"\r\n   \r\n  {SHORT_D}  \r\n\t\r\n\tc   40.5   -80.25 \r\n\r\n"
    metadata = parse_metadata(text)
    assert (metadata.lat, metadata.lon, metadata.patch_id) == (40.5, -80.25, 2)


def test_record_order_does_not_matter() -> None:
    assert parse_metadata(f"{A_LINE}\n{LONG_D}") == EXPECTED_LONG
    assert parse_metadata(f"c 1 2\n{SHORT_D}").lat == 1.0


def test_boundary_coordinates_are_accepted() -> None:
    metadata = parse_metadata(f"{SHORT_D}\nc -90 180\n")
    assert (metadata.lat, metadata.lon) == (-90.0, 180.0)


@pytest.mark.parametrize(
    ("text", "reason", "line", "detail"),
    [
        ("", Reason.EMPTY_FILE, 0, "no content"),
        ("\n   \r\n\t\n", Reason.EMPTY_FILE, 0, "no content"),
        ("c 1 2\n", Reason.MISSING_D_LINE, 0, "no d line"),
        (f"{A_LINE}\n", Reason.MISSING_D_LINE, 0, "no d line"),
        (f"{SHORT_D}\nc 1 2\n{SHORT_D}\n", Reason.DUPLICATE_D_LINE, 3, "line 1"),
        ("d 1 2\nc 1 2\n", Reason.MALFORMED_D_LINE, 1, "2 values"),
        ("d 1 2 3 4 5\nc 1 2\n", Reason.MALFORMED_D_LINE, 1, "5 values"),
        (LONG_D + " 0\n", Reason.MALFORMED_D_LINE, 1, "18 values"),
        ("d 1 1.5 3\nc 1 2\n", Reason.INVALID_NUMBER, 1, "target_id '1.5'"),
        ("d 1 2 x\nc 1 2\n", Reason.INVALID_NUMBER, 1, "patch_id 'x'"),
        ("d 1 2 1_0\nc 1 2\n", Reason.INVALID_NUMBER, 1, "patch_id '1_0'"),
        ("d 1 2 \u0663\nc 1 2\n", Reason.INVALID_NUMBER, 1, "patch_id '\u0663'"),
        (long_d_with(3, "12.0"), Reason.INVALID_NUMBER, 1, "street_view_id '12.0'"),
        (long_d_with(4, "nan"), Reason.INVALID_NUMBER, 1, "lat 'nan'"),
        (long_d_with(14, "inf"), Reason.INVALID_NUMBER, 1, "heading 'inf'"),
        (long_d_with(6, "1_2.5"), Reason.INVALID_NUMBER, 1, "target_height '1_2.5'"),
        (f"{SHORT_D}\nc north 2\n", Reason.INVALID_NUMBER, 2, "lat 'north'"),
        ("d -1 2 3\nc 1 2\n", Reason.INVALID_ID, 1, "dataset_id '-1'"),
        (long_d_with(3, "-5"), Reason.INVALID_ID, 1, "street_view_id '-5'"),
        (f"\n{SHORT_D}\n", Reason.MISSING_COORDINATES, 2, "c lat lon"),
        (f"{SHORT_D}\nc 1 2\nc 1 2\n", Reason.DUPLICATE_C_LINE, 3, "line 2"),
        (f"{SHORT_D}\nc 1\n", Reason.MALFORMED_C_LINE, 2, "1 values"),
        (f"{SHORT_D}\nc 1 2 3\n", Reason.MALFORMED_C_LINE, 2, "3 values"),
        (f"{LONG_D}\n\nc 40.4413 -79.998765\n", Reason.CONFLICTING_COORDINATES, 3, "40.4413"),
        (f"{SHORT_D}\nc 90.5 0\n", Reason.LATITUDE_OUT_OF_RANGE, 2, "lat 90.5"),
        (long_d_with(4, "-91"), Reason.LATITUDE_OUT_OF_RANGE, 1, "lat -91.0"),
        (long_d_with(10, "100"), Reason.LATITUDE_OUT_OF_RANGE, 1, "sv_lat 100.0"),
        (f"{SHORT_D}\nc 0 -180.5\n", Reason.LONGITUDE_OUT_OF_RANGE, 2, "lon -180.5"),
        (long_d_with(11, "181"), Reason.LONGITUDE_OUT_OF_RANGE, 1, "sv_lon 181.0"),
        (f"{SHORT_D}\nc 1 2\nx 1 2\n", Reason.UNKNOWN_RECORD_TYPE, 3, "'x'"),
        ("D 1 2 3\nc 1 2\n", Reason.UNKNOWN_RECORD_TYPE, 1, "'D'"),
        (f"{LONG_D}\na\n", Reason.MALFORMED_A_LINE, 2, "no values"),
        (f"{LONG_D}\na 1 2 foo 4\n", Reason.MALFORMED_A_LINE, 2, "'foo'"),
    ],
)
def test_rejects_with_reason_line_and_detail(
    text: str, reason: Reason, line: int, detail: str
) -> None:
    with pytest.raises(MetadataError) as caught:
        parse_metadata(text)
    assert caught.value.reason == reason
    assert caught.value.line == line
    assert detail in caught.value.detail
    assert isinstance(caught.value, ValueError)


def test_every_reason_code_is_a_stable_snake_case_string() -> None:
    assert {reason.value for reason in Reason} == {
        "unreadable_file",
        "not_text",
        "empty_file",
        "missing_d_line",
        "duplicate_d_line",
        "malformed_d_line",
        "invalid_number",
        "invalid_id",
        "missing_coordinates",
        "duplicate_c_line",
        "malformed_c_line",
        "conflicting_coordinates",
        "latitude_out_of_range",
        "longitude_out_of_range",
        "unknown_record_type",
        "malformed_a_line",
    }


def test_read_metadata_file_parses_real_file_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "0006_0087241_1.txt"
    path.write_bytes(("\ufeff" + LONG_D + "\r\n" + A_LINE + "\r\n").encode())
    assert read_metadata_file(path) == EXPECTED_LONG


def test_read_metadata_file_error_names_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("d 1 2 3\nc 1 2\nq\n")
    with pytest.raises(MetadataError) as caught:
        read_metadata_file(path)
    assert (caught.value.reason, caught.value.line) == ("unknown_record_type", 3)
    assert caught.value.path == path
    assert str(caught.value).startswith(f"{path}: line 3: unknown_record_type: ")


def test_read_metadata_file_missing_file_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "absent.txt"
    with pytest.raises(MetadataError) as caught:
        read_metadata_file(path)
    assert (caught.value.reason, caught.value.line) == ("unreadable_file", 0)
    assert str(path) in str(caught.value)


def test_read_metadata_file_rejects_binary_content(tmp_path: Path) -> None:
    path = tmp_path / "binary.txt"
    path.write_bytes(b"d 1 2 3\nc \xff\xd8 2\n")
    with pytest.raises(MetadataError) as caught:
        read_metadata_file(path)
    assert (caught.value.reason, caught.value.line) == ("not_text", 0)
    assert "offset 10" in caught.value.detail
