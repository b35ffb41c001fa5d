import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from geotriplet_assets.catalogue import image_catalog
from geotriplet_assets.catalogue.image_catalog import (
    IMAGE_EXTENSIONS,
    Catalog,
    EmptyCatalogError,
    ImageFiles,
    build_catalog,
    catalog_counts,
    read_catalog,
    write_catalog,
)

IMAGE_COLUMNS = {
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
    "target_height": "float64",
    "normal_x": "float64",
    "normal_y": "float64",
    "normal_z": "float64",
    "sv_lat": "float64",
    "sv_lon": "float64",
    "sv_height": "float64",
    "distance": "float64",
    "heading": "float64",
    "pitch": "float64",
    "roll": "float64",
    "file_size": "int64",
    "mtime_ns": "int64",
}
REJECTION_COLUMNS = {"file": "str", "line": "int64", "reason": "str", "detail": "str"}


def long_d(dataset: str, target: str, patch: int, lat: float = 40.441234) -> str:
    return (
        f"d {dataset} {target} {patch} 123456 {lat} -79.998765 12.5 0.1 0.2 0.0 "
        "40.441300 -79.998900 2.5 15.2 182.5 3.1 0\n"
    )


def write_image(path: Path, shade: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image_format = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
    Image.new("RGB", (8, 8), (shade, 64, 32)).save(path, image_format[path.suffix.lower()])


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_tree(root: Path, reverse: bool = False) -> None:
    """A nested input folder with good images and one of each catalogue-level problem."""
    texts = {
        "pittsburgh/0006_0087241_1.txt": long_d("0006", "0087241", 1),
        "pittsburgh/deep/er/0006_0087241_2.txt": long_d("0006", "0087241", 2, 40.441235),
        "pittsburgh/0006_0000009_1.txt": long_d("0006", "0000009", 1),
        "paris/short.txt": "d 0007 0000001 0\r\n\r\nc 48.8566 2.3522\r\n",
        "top.txt": "d 0007 0000002 5\nc -33.9 151.2\n",
        "orphan.txt": long_d("0006", "1", 1),
        "pittsburgh/twice.txt": long_d("0006", "2", 1),
        "paris/broken.txt": "\nd 0007 1 2 3 4\n",
    }
    images = [
        "pittsburgh/0006_0087241_1.jpg",
        "pittsburgh/deep/er/0006_0087241_2.JPG",
        "pittsburgh/0006_0000009_1.jpeg",
        "paris/short.png",
        "top.webp",
        "pittsburgh/twice.jpg",
        "pittsburgh/twice.png",
        "paris/broken.jpg",
        "paris/lonely.jpg",
    ]
    actions = [(name, text) for name, text in texts.items()] + [(name, None) for name in images]
    for shade, (name, text) in enumerate(reversed(actions) if reverse else actions):
        if text is None:
            write_image(root / name, shade)
        else:
            write_text(root / name, text)
    write_text(root / "README.md", "not metadata\n")


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    make_tree(tmp_path / "input")
    return build_catalog(tmp_path / "input")


def test_images_have_expected_columns_and_dtypes(catalog: Catalog) -> None:
    assert {name: str(dtype) for name, dtype in catalog.images.dtypes.items()} == IMAGE_COLUMNS
    assert list(catalog.images.columns) == list(IMAGE_COLUMNS)
    assert isinstance(catalog.images.index, pd.RangeIndex)
    assert {name: str(dtype) for name, dtype in catalog.rejections.dtypes.items()} == (
        REJECTION_COLUMNS
    )


def test_accepts_both_forms_in_nested_folders_sorted_by_image_id(catalog: Catalog) -> None:
    images = catalog.images
    assert images["image_id"].tolist() == [
        "paris/short",
        "pittsburgh/0006_0000009_1",
        "pittsburgh/0006_0087241_1",
        "pittsburgh/deep/er/0006_0087241_2",
        "top",
    ]
    assert images["path"].tolist() == [
        "paris/short.png",
        "pittsburgh/0006_0000009_1.jpeg",
        "pittsburgh/0006_0087241_1.jpg",
        "pittsburgh/deep/er/0006_0087241_2.JPG",
        "top.webp",
    ]
    assert images["metadata_path"].iloc[3] == "pittsburgh/deep/er/0006_0087241_2.txt"
    assert images["dataset_id"].tolist() == [7, 6, 6, 6, 7]
    assert images["target_id"].tolist() == [1, 9, 87241, 87241, 2]
    assert images["patch_id"].tolist() == [0, 1, 1, 2, 5]
    assert images["form"].tolist() == ["short", "long", "long", "long", "short"]
    assert images["lat"].tolist() == [48.8566, 40.441234, 40.441234, 40.441235, -33.9]
    assert images["lon"].tolist() == [2.3522, -79.998765, -79.998765, -79.998765, 151.2]


def test_long_form_extras_and_short_form_nulls(catalog: Catalog) -> None:
    long_row = catalog.images.iloc[2]
    assert long_row["street_view_id"] == 123456
    assert (long_row["heading"], long_row["pitch"], long_row["sv_height"]) == (182.5, 3.1, 2.5)
    short_row = catalog.images.iloc[0]
    assert short_row["street_view_id"] is pd.NA
    extras = list(IMAGE_COLUMNS)[10:21]
    assert np.isnan(short_row[extras].to_numpy(dtype=float)).all()


def test_file_size_and_mtime_come_from_the_image(catalog: Catalog, tmp_path: Path) -> None:
    for row in catalog.images.itertuples():
        stat = os.stat(tmp_path / "input" / row.path)
        assert (row.file_size, row.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
        assert row.file_size > 0


def test_every_problem_is_a_rejection_row(catalog: Catalog) -> None:
    rows = list(catalog.rejections.itertuples(index=False, name=None))
    assert [(file, line, reason) for file, line, reason, _ in rows] == [
        ("orphan.txt", 0, "image_missing"),
        ("paris/broken.txt", 2, "malformed_d_line"),
        ("paris/lonely.jpg", 0, "metadata_missing"),
        ("pittsburgh/twice.txt", 0, "duplicate_image_id"),
    ]
    details = dict(zip(catalog.rejections["reason"], catalog.rejections["detail"], strict=True))
    assert "5 values" in details["malformed_d_line"]
    assert (
        "pittsburgh/twice.jpg, pittsburgh/twice.png, pittsburgh/twice.txt"
        in (details["duplicate_image_id"])
    )
    assert "paris/lonely.jpg" in details["metadata_missing"]


def test_output_does_not_depend_on_creation_order(catalog: Catalog, tmp_path: Path) -> None:
    make_tree(tmp_path / "reversed", reverse=True)
    other = build_catalog(tmp_path / "reversed")
    columns = [name for name in IMAGE_COLUMNS if name not in ("file_size", "mtime_ns")]
    pd.testing.assert_frame_equal(other.images[columns], catalog.images[columns])
    pd.testing.assert_frame_equal(other.rejections, catalog.rejections)


def test_counts(catalog: Catalog) -> None:
    assert catalog_counts(catalog) == {
        "images": 5,
        "targets": 4,
        "datasets": 2,
        "rejections_by_reason": {
            "duplicate_image_id": 1,
            "image_missing": 1,
            "malformed_d_line": 1,
            "metadata_missing": 1,
        },
        "images_by_dataset": {6: 3, 7: 2},
    }


def test_parquet_round_trip_is_exact(catalog: Catalog, tmp_path: Path) -> None:
    directory = tmp_path / "out" / "catalog"
    write_catalog(catalog, directory)
    assert sorted(os.listdir(directory)) == ["images.parquet", "rejections.parquet"]
    loaded = read_catalog(directory)
    pd.testing.assert_frame_equal(loaded.images, catalog.images, check_exact=True)
    pd.testing.assert_frame_equal(loaded.rejections, catalog.rejections, check_exact=True)


def test_round_trip_without_rejections_and_overwrite(tmp_path: Path) -> None:
    write_text(tmp_path / "in" / "a.txt", "d 1 2 3\nc 4 5\n")
    write_image(tmp_path / "in" / "a.jpg")
    catalog = build_catalog(tmp_path / "in")
    assert catalog.rejections.empty
    assert list(catalog.rejections.columns) == list(REJECTION_COLUMNS)
    write_catalog(catalog, tmp_path / "out")
    write_catalog(catalog, tmp_path / "out")
    loaded = read_catalog(tmp_path / "out")
    pd.testing.assert_frame_equal(loaded.images, catalog.images, check_exact=True)
    pd.testing.assert_frame_equal(loaded.rejections, catalog.rejections, check_exact=True)
    assert catalog_counts(catalog)["rejections_by_reason"] == {}


def test_a_failed_write_keeps_the_previous_pair(catalog: Catalog, tmp_path: Path) -> None:
    directory = tmp_path / "catalog"
    write_catalog(catalog, directory)
    unwritable = Catalog(
        catalog.images, catalog.rejections.assign(line=[object()] * len(catalog.rejections))
    )
    with pytest.raises(Exception, match="object"):
        write_catalog(unwritable, directory)
    assert sorted(os.listdir(directory)) == ["images.parquet", "rejections.parquet"]
    pd.testing.assert_frame_equal(read_catalog(directory).rejections, catalog.rejections)


def test_read_catalog_missing_says_to_materialise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="materialise the image_catalog asset"):
        read_catalog(tmp_path / "nowhere")


def test_image_extensions_are_the_documented_ones() -> None:
    assert IMAGE_EXTENSIONS == (".jpg", ".jpeg", ".png", ".webp")


def test_missing_input_folder(tmp_path: Path) -> None:
    with pytest.raises(EmptyCatalogError, match="does not exist"):
        build_catalog(tmp_path / "absent")


def test_input_path_that_is_a_file(tmp_path: Path) -> None:
    write_text(tmp_path / "file.txt", "d 1 2 3\nc 4 5\n")
    with pytest.raises(EmptyCatalogError, match="is not a directory"):
        build_catalog(tmp_path / "file.txt")


def test_folder_without_metadata(tmp_path: Path) -> None:
    write_image(tmp_path / "in" / "a.jpg")
    with pytest.raises(EmptyCatalogError, match=r"no \.txt metadata files found .*1 image"):
        build_catalog(tmp_path / "in")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyCatalogError, match=r"no \.txt metadata files found"):
        build_catalog(tmp_path / "empty")


def test_all_rejected_message_counts_by_reason(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_text(root / "a.txt", "d 1 2 3\n")
    write_image(root / "a.jpg")
    write_text(root / "b" / "b.txt", "d 1 2 3\nc 4 5\n")
    write_text(root / "b" / "c.txt", "d 1 2 3\nc 4 5\n")
    with pytest.raises(EmptyCatalogError) as caught:
        build_catalog(root)
    message = str(caught.value)
    assert "3 .txt metadata files found" in message
    assert "3 rejections: image_missing=2, missing_coordinates=1" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without permission")
def test_unreadable_folder_and_file_are_rejections(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_text(root / "a.txt", "d 1 2 3\nc 4 5\n")
    write_image(root / "a.jpg")
    write_text(root / "b.txt", "d 1 2 4\nc 4 5\n")
    write_image(root / "b.jpg")
    write_text(root / "locked" / "c.txt", "d 1 2 5\nc 4 5\n")
    (root / "b.txt").chmod(0)
    (root / "locked").chmod(0)
    try:
        catalog = build_catalog(root)
    finally:
        (root / "locked").chmod(0o755)
    rows = list(catalog.rejections[["file", "line", "reason"]].itertuples(index=False, name=None))
    assert rows == [("b.txt", 0, "unreadable_file"), ("locked", 0, "unreadable_file")]
    assert catalog.images["image_id"].tolist() == ["a"]


def _rejected(catalog: Catalog) -> dict[str, tuple[str, str]]:
    return {
        row.file: (row.reason, row.detail) for row in catalog.rejections.itertuples(index=False)
    }


def test_a_file_name_that_is_not_utf8_is_a_rejection_not_a_crash(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_text(root / "good.txt", long_d("1", "1", 1))
    write_image(root / "good.jpg")
    bad = os.fsencode(root) + b"/caf\xe9"
    with open(bad + b".txt", "w") as handle:
        handle.write(long_d("1", "2", 1))
    write_image(Path(os.fsdecode(bad + b".jpg")))
    catalog = build_catalog(root)
    assert catalog.images["image_id"].tolist() == ["good"]
    rejected = _rejected(catalog)
    assert rejected["caf\\xe9.txt"] == ("undecodable_name", "the file name is not valid UTF-8")
    assert rejected["caf\\xe9.jpg"][0] == "undecodable_name"
    write_catalog(catalog, tmp_path / "out")  # the tables hold every name
    assert len(read_catalog(tmp_path / "out").rejections) == 2


def test_a_fifo_or_a_symlink_is_rejected_without_being_opened(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_text(root / "good.txt", long_d("1", "1", 1))
    write_image(root / "good.jpg")
    write_text(root / "pipe.txt", long_d("1", "2", 1))
    os.mkfifo(root / "pipe.jpg")  # opening it for reading would block forever
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2 is the password\n")
    (root / "linked.txt").symlink_to(secret)
    write_image(root / "linked.jpg")
    catalog = build_catalog(root)
    assert catalog.images["image_id"].tolist() == ["good"]
    rejected = _rejected(catalog)
    assert rejected["pipe.jpg"] == (
        "not_a_regular_file",
        "not a regular file: only regular files are read",
    )
    assert rejected["linked.txt"][0] == "not_a_regular_file"
    assert "symbolic link" in rejected["linked.txt"][1]
    assert not catalog.rejections["detail"].str.contains("hunter2").any()


def test_the_same_view_twice_is_kept_once_and_reported(tmp_path: Path) -> None:
    root = tmp_path / "in"
    for folder in ("a", "b"):
        write_text(root / folder / "view.txt", long_d("1", "7", 3))
        write_image(root / folder / "view.jpg")
    write_text(root / "a" / "other.txt", long_d("1", "7", 3).replace(" 123456 ", " 123457 "))
    write_image(root / "a" / "other.jpg")
    catalog = build_catalog(root)
    assert catalog.images["image_id"].tolist() == ["a/other", "a/view"]
    reason, detail = _rejected(catalog)["b/view.txt"]
    assert reason == "duplicate_view"
    assert "as a/view, which is kept" in detail


def test_details_never_carry_more_than_a_short_quote_of_the_file(tmp_path: Path) -> None:
    root = tmp_path / "in"
    write_text(root / "long.txt", "d 1 2 " + "9" * 5_000_000 + "x\n")
    write_image(root / "long.jpg")
    write_text(root / "good.txt", long_d("1", "1", 1))
    write_image(root / "good.jpg")
    reason, detail = _rejected(build_catalog(root))["long.txt"]
    assert reason == "invalid_number"
    assert len(detail) <= 200
    assert "(5000001 characters)" in detail


def test_a_name_with_a_control_character_is_rejected(tmp_path: Path) -> None:
    # An image id with a newline could be searched but never fetched by GET /images/{id}.
    root = tmp_path / "in"
    write_text(root / "good.txt", long_d("1", "1", 1))
    write_image(root / "good.jpg")
    write_text(root / "two\nlines.txt", long_d("1", "2", 1))
    write_image(root / "two\nlines.jpg")
    catalog = build_catalog(root)
    assert catalog.images["image_id"].tolist() == ["good"]
    assert _rejected(catalog)["two\\nlines.txt"][0] == "control_character_in_name"


def test_parsing_in_processes_gives_the_catalogue_parsed_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tree(tmp_path / "input")
    for folder in ("x", "y"):  # one view in two folders: the later is a duplicate_view
        write_text(tmp_path / "input" / folder / "view.txt", "d 0007 5 5\nc 48.85 2.35\n")
        write_image(tmp_path / "input" / folder / "view.jpg")
    inline = build_catalog(tmp_path / "input", workers=1)
    monkeypatch.setattr(image_catalog, "BATCH_STEMS", 2)  # many batches in flight
    seen: list[tuple[int, int]] = []
    parallel = build_catalog(
        tmp_path / "input", workers=2, progress=lambda done, found: seen.append((done, found))
    )

    pd.testing.assert_frame_equal(parallel.images, inline.images)
    pd.testing.assert_frame_equal(parallel.rejections, inline.rejections)
    assert "y/view.txt" in _rejected(parallel) and "x/view" in set(parallel.images["image_id"])
    assert len(seen) > 3 and seen[-1][0] == seen[-1][1] > 10
    assert all(done <= found for done, found in seen)


def test_workers_must_be_positive(tmp_path: Path) -> None:
    make_tree(tmp_path / "input")
    with pytest.raises(ValueError, match="workers must be at least 1"):
        build_catalog(tmp_path / "input", workers=0)


def test_image_files_map_ids_with_a_recorded_file_to_it(catalog: Catalog, tmp_path: Path) -> None:
    images = catalog.images.copy()
    images.loc[images["image_id"] == "top", "path"] = ""  # e.g. a dataset.h5 row, no photo
    files = ImageFiles(images, tmp_path / "input")
    assert files["pittsburgh/0006_0087241_1"] == tmp_path / "input/pittsburgh/0006_0087241_1.jpg"
    assert files.get("top") is None and files.get("nowhere") is None
    assert len(files) == len(images) - 1 and "top" not in set(files)
