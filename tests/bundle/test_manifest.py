"""manifest.json: a manifest a loader would refuse is never written, and the `files` entry
describes the bundle's files so that a change to any of them is found."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from geotriplet_assets.bundle import layout as fmt
from geotriplet_assets.bundle.errors import BundleLoadError
from geotriplet_assets.bundle.manifest import (
    FORMAT_VERSION,
    check_bundle_files,
    describe_files,
    read_manifest,
    write_manifest,
)
from tests.factories.service_app import ServiceData


def _document(bundle: Path) -> dict:
    document = json.loads((bundle / fmt.MANIFEST).read_text())
    del document["format_version"]
    return document


def test_a_written_manifest_reads_back_with_the_format_version(
    service_data: ServiceData, tmp_path: Path
) -> None:
    bundle = Path(shutil.copytree(service_data.bundle_path, tmp_path / "bundle"))
    document = _document(bundle)
    (bundle / fmt.MANIFEST).unlink()
    written = write_manifest(bundle, document)
    read = read_manifest(bundle)
    assert read == written
    assert read.raw["format_version"] == FORMAT_VERSION
    assert read.raw["files"] == describe_files(bundle)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"count": 0}, "count must be at least 1"),
        ({"index": {"type": "lsh", "metric": "inner_product"}}, "index.type 'lsh'"),
        ({"files": {}}, "files does not list"),
    ],
)
def test_a_manifest_a_loader_would_refuse_is_not_written(
    service_data: ServiceData, tmp_path: Path, change: dict, message: str
) -> None:
    bundle = Path(shutil.copytree(service_data.bundle_path, tmp_path / "bundle"))
    (bundle / fmt.MANIFEST).unlink()
    with pytest.raises(BundleLoadError, match=message):
        write_manifest(bundle, {**_document(service_data.bundle_path), **change})
    assert not (bundle / fmt.MANIFEST).exists()


def test_the_files_entry_finds_a_changed_or_missing_file(
    service_data: ServiceData, tmp_path: Path
) -> None:
    bundle = Path(shutil.copytree(service_data.bundle_path, tmp_path / "bundle"))
    manifest = read_manifest(bundle)
    check_bundle_files(bundle, manifest, verify_hashes=True)
    vectors = bundle / fmt.VECTORS
    data = bytearray(vectors.read_bytes())
    data[-1] ^= 0xFF
    vectors.write_bytes(bytes(data))
    check_bundle_files(bundle, manifest, verify_hashes=False)  # same size
    with pytest.raises(BundleLoadError, match=r"vectors\.npy has SHA-256"):
        check_bundle_files(bundle, manifest, verify_hashes=True)
    (bundle / fmt.INDEX).unlink()
    with pytest.raises(BundleLoadError, match=r"index\.faiss is missing"):
        check_bundle_files(bundle, manifest, verify_hashes=False)
