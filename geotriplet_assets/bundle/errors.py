"""Errors of the bundle layer, independent of HTTP."""

from __future__ import annotations


class BundleLoadError(Exception):
    """A bundle directory that cannot be served, with what is wrong with it."""


class UnknownImageError(KeyError):
    """An image id that the bundle does not index."""

    def __init__(self, image_id: str) -> None:
        super().__init__(image_id)
        self.image_id = image_id

    def __str__(self) -> str:
        return f"unknown image_id {self.image_id!r}"


class OriginalUnavailable(LookupError):
    """The image is indexed, but its original photo cannot be read (not recorded, absent,
    outside the bundle's images_root, or not a readable image)."""
