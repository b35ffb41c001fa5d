"""One photograph of a scene: camera pose, occluders, lighting, blur; rendered to RGB."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from geotriplet_assets.synth.camera import CameraPose, project
from geotriplet_assets.synth.facade import FacadeGeometry
from geotriplet_assets.synth.lighting import Lighting, apply_lighting, sample_lighting
from geotriplet_assets.synth.occluders import draw_random_occluders
from geotriplet_assets.synth.scene import SKY_TOP, SceneCanvas

MAX_YAW_DEG = 35.0
MAX_PITCH_DEG = 38.0
MIN_FOV_DEG, MAX_FOV_DEG = 30.0, 90.0
MIPMAP_SLACK = 1.4
WARP_RESAMPLING = Image.Resampling.NEAREST
MAX_LEVEL = 3
OCCLUDER_COUNTS = (0, 0, 0, 1, 1, 1, 2, 3)


@dataclass(frozen=True)
class ViewParams:
    """Everything that changes from one photograph of a target to the next."""

    pose: CameraPose
    lighting: Lighting
    occluder_count: int
    occluder_seed: int
    blur_px: float
    jpeg_quality: int
    target_jitter_m: tuple[float, float]


def _corner_rays_hit_facade(pose: CameraPose, image_size: int) -> bool:
    """True when every image corner looks towards the facade plane (none parallel/behind)."""
    f, c = pose.focal_px(image_size), image_size / 2
    corners = np.array([[u - c, v - c, f] for u in (0, image_size) for v in (0, image_size)])
    directions = corners @ pose.rotation()
    return bool(np.all(directions[:, 2] < -0.15 * np.linalg.norm(directions, axis=1)))


def sample_pose(rng: np.random.Generator, geometry: FacadeGeometry, image_size: int) -> CameraPose:
    """Street-level camera 10-30 m from the target, aimed near it, framing the facade."""
    height = float(rng.uniform(2.2, 2.9))
    rise = geometry.target_height_m - height
    min_distance = max(10.0, rise / math.tan(math.radians(MAX_PITCH_DEG)))
    distance = float(rng.uniform(min_distance, max(min_distance, 30.0)))
    visible = float(np.clip(rng.uniform(0.75, 1.4) * geometry.width_m, 12.0, 55.0))
    slant = math.hypot(distance, rise)
    fov = float(
        np.clip(math.degrees(2 * math.atan(visible / 2 / slant)), MIN_FOV_DEG, MAX_FOV_DEG)
    )
    pose = CameraPose(
        yaw_deg=float(rng.uniform(-MAX_YAW_DEG, MAX_YAW_DEG)),
        distance_m=distance,
        height_m=height,
        look_x_m=float(rng.uniform(-0.1, 0.1) * visible),
        look_y_m=geometry.target_height_m + float(rng.uniform(-0.08, 0.08) * visible),
        fov_deg=fov,
    )
    while not _corner_rays_hit_facade(pose, image_size) and pose.fov_deg > MIN_FOV_DEG:
        pose = replace(pose, fov_deg=pose.fov_deg * 0.9)
    return pose


def sample_view(rng: np.random.Generator, geometry: FacadeGeometry, image_size: int) -> ViewParams:
    """Draw one view of the facade."""
    pose = sample_pose(rng, geometry, image_size)
    blur = float(rng.uniform(0.0, 1.6)) if rng.random() < 0.6 else 0.0
    return ViewParams(
        pose=pose,
        lighting=sample_lighting(rng),
        occluder_count=int(rng.choice(OCCLUDER_COUNTS)),
        occluder_seed=int(rng.integers(2**31)),
        blur_px=blur * image_size / 640,
        jpeg_quality=int(rng.integers(60, 96)),
        target_jitter_m=(float(rng.normal(0.0, 1.5)), float(rng.normal(0.0, 1.5))),
    )


def _pyramid_level(canvas_from_image: np.ndarray, image_size: int) -> int:
    """Coarsest canvas level whose pixels look at most MIPMAP_SLACK image pixels wide.

    Warping with nearest-neighbour sampling from this prefiltered level does not alias and
    costs about a third of PIL's bilinear perspective warp from the full canvas.
    """
    m = image_size / 2
    centre, right, down = project(canvas_from_image, np.array([[m, m], [m + 1, m], [m, m + 1]]))
    (a, b), (c, d) = right - centre, down - centre
    scale = math.sqrt(abs(float(a * d - b * c)))
    return int(np.clip(math.floor(math.log2(max(scale, 1.0) * MIPMAP_SLACK)), 0, MAX_LEVEL))


def render_view(scene: SceneCanvas, view: ViewParams, image_size: int) -> Image.Image:
    """Photograph the scene: perspective warp, occluders, lighting and blur (RGB).

    A blurred view is rendered at image_size / (1 + blur_px) and scaled up: a soft lens
    at a fraction of the cost of rendering sharp and filtering.
    """
    work_size = max(16, round(image_size / (1.0 + view.blur_px)))
    plane_to_image = view.pose.plane_homography(work_size)
    level = _pyramid_level(np.linalg.inv(plane_to_image @ scene.canvas_to_plane()), work_size)
    canvas_from_image = np.linalg.inv(plane_to_image @ scene.canvas_to_plane(level))
    canvas_from_image /= canvas_from_image[2, 2]
    photo = scene.level(level).transform(
        (work_size, work_size),
        Image.Transform.PERSPECTIVE,
        tuple(canvas_from_image.ravel()[:8]),
        WARP_RESAMPLING,
        fillcolor=SKY_TOP,
    )
    draw_random_occluders(
        ImageDraw.Draw(photo),
        np.random.default_rng(view.occluder_seed),
        work_size,
        view.occluder_count,
    )
    photo = apply_lighting(photo, view.lighting)
    if work_size != image_size:
        photo = photo.resize((image_size, image_size), Image.Resampling.BILINEAR)
    return photo
