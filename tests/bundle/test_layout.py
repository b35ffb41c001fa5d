"""Bundle version names and the `current` pointer."""

from __future__ import annotations

import pytest

from geotriplet_assets.bundle import layout as fmt


def test_pointer_errors_are_specific(tmp_path):
    assert fmt.read_current_version(tmp_path) is None
    (tmp_path / fmt.CURRENT_POINTER).write_text("../../etc\n")
    with pytest.raises(fmt.BundleFormatError, match="does not name a bundle"):
        fmt.read_current_version(tmp_path)
    with pytest.raises(fmt.BundleFormatError, match="no bundle"):
        fmt.write_current_version(tmp_path, "20260101T000000Z-00000000")
