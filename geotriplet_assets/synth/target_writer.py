"""Render every image of one target and write its `.jpg` / `.txt` pairs."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geotriplet_assets.synth.camera import project
from geotriplet_assets.synth.layout import VIEW_STREAM, TargetPlan, target_rng
from geotriplet_assets.synth.metadata_writer import (
    ImageRecord,
    image_stem,
    long_form_text,
    short_form_text,
)
from geotriplet_assets.synth.output_dir import atomic_write_bytes
from geotriplet_assets.synth.scene import build_scene
from geotriplet_assets.synth.views import ViewParams, render_view, sample_view

SCENE_METRES_PER_IMAGE = 28.0
"""The scene is drawn at image_size / 28 pixels per metre (about 23 px/m at 640 px)."""


@dataclass(frozen=True)
class RenderedImage:
    """One finished image: file stem, JPEG bytes and metadata text."""

    stem: str
    jpeg: bytes
    metadata: str


def _facade_to_en(plan: TargetPlan, x_m: float, z_m: float) -> tuple[float, float]:
    """East/north offset of facade coordinates (x along the facade, z towards the street)."""
    normal = math.radians(plan.normal_azimuth_deg)
    along = normal - math.pi / 2
    east = x_m * math.sin(along) + z_m * math.sin(normal)
    north = x_m * math.cos(along) + z_m * math.cos(normal)
    return east, north


def _record(plan: TargetPlan, view: ViewParams, street_view_id: int) -> ImageRecord:
    city, pose = plan.city, view.pose
    camera = pose.position
    cam_east, cam_north = _facade_to_en(plan, float(camera[0]), float(camera[2]))
    forward = pose.forward
    look_east, look_north = _facade_to_en(plan, float(forward[0]), float(forward[2]))
    target = np.array([0.0, plan.geometry.target_height_m, 0.0])
    jitter_east, jitter_north = view.target_jitter_m
    target_lat, target_lon = city.to_latlon(plan.east_m + jitter_east, plan.north_m + jitter_north)
    sv_lat, sv_lon = city.to_latlon(plan.east_m + cam_east, plan.north_m + cam_north)
    normal = math.radians(plan.normal_azimuth_deg)
    return ImageRecord(
        dataset_id=city.dataset_id,
        target_id=plan.target_id,
        patch_id=plan.patch_id,
        street_view_id=street_view_id,
        target_lat=target_lat,
        target_lon=target_lon,
        target_height=city.elevation_m + plan.geometry.target_height_m,
        normal=(math.sin(normal), math.cos(normal), 0.0),
        sv_lat=sv_lat,
        sv_lon=sv_lon,
        sv_height=city.elevation_m + pose.height_m,
        distance=float(np.linalg.norm(camera - target)),
        heading=math.degrees(math.atan2(look_east, look_north)) % 360.0,
        pitch=pose.pitch_deg,
    )


def _alignment(plan: TargetPlan, view: ViewParams, image_size: int) -> list[float]:
    """Image positions of a 5 x 4 grid spanning the target facade (40 numbers)."""
    g = plan.geometry
    left = -g.width_m / 2 - g.target_x_m
    xs, ys = np.meshgrid(
        np.linspace(left, left + g.width_m, 5), np.linspace(0, g.wall_height_m, 4)
    )
    grid = np.column_stack([xs.ravel(), ys.ravel()])
    return project(view.pose.plane_homography(image_size), grid).ravel().tolist()


def render_target(plan: TargetPlan, image_size: int) -> list[RenderedImage]:
    """All images of a target; a pure function of the plan and the image size."""
    rng = target_rng(plan.seed, plan.city.dataset_id, plan.target_id, VIEW_STREAM)
    scene = build_scene(plan.geometry, plan.left, plan.right, image_size / SCENE_METRES_PER_IMAGE)
    images = []
    for index, (short, with_alignment) in enumerate(
        zip(plan.short_form, plan.alignment_line, strict=True)
    ):
        view = sample_view(rng, plan.geometry, image_size)
        record = _record(plan, view, int(rng.integers(1, 10_000_000)))
        if short:
            text = short_form_text(record)
        else:
            alignment = _alignment(plan, view, image_size) if with_alignment else None
            text = long_form_text(record, alignment)
        buffer = io.BytesIO()
        render_view(scene, view, image_size).save(buffer, "JPEG", quality=view.jpeg_quality)
        images.append(RenderedImage(image_stem(record, index), buffer.getvalue(), text))
    return images


def write_target(plan: TargetPlan, out_dir: Path, image_size: int) -> int:
    """Render the target and write its files under out_dir/<DatasetID>/; return the count."""
    folder = out_dir / f"{plan.city.dataset_id:04d}"
    folder.mkdir(exist_ok=True)
    images = render_target(plan, image_size)
    for image in images:
        atomic_write_bytes(folder / f"{image.stem}.jpg", image.jpeg)
        atomic_write_bytes(folder / f"{image.stem}.txt", image.metadata.encode("ascii"))
    return len(images)
