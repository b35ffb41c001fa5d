"""Pinhole camera in front of a facade plane."""

from __future__ import annotations

import numpy as np
import pytest

from geotriplet_assets.synth.camera import CameraPose, project


def _pose(yaw: float = 0.0, look_y: float = 2.5) -> CameraPose:
    return CameraPose(
        yaw_deg=yaw, distance_m=20.0, height_m=2.5, look_x_m=0.0, look_y_m=look_y, fov_deg=60.0
    )


def test_look_at_point_lands_in_the_image_centre() -> None:
    pose = _pose(yaw=25.0, look_y=9.0)
    centre = project(pose.plane_homography(640), np.array([[0.0, 9.0]]))[0]
    assert centre == pytest.approx([320.0, 320.0], abs=1e-6)


def test_level_frontal_view_keeps_verticals_and_scale() -> None:
    pose = _pose()
    assert pose.pitch_deg == pytest.approx(0.0)
    points = project(pose.plane_homography(640), np.array([[1.0, 2.5], [1.0, 5.5], [-1.0, 2.5]]))
    assert points[0, 0] == pytest.approx(points[1, 0])  # vertical stays vertical
    assert points[1, 1] < points[0, 1]  # up on the facade is up in the image
    assert points[2, 0] < points[0, 0]  # left stays left
    focal = 320 / np.tan(np.radians(30))
    assert points[0, 0] - 320 == pytest.approx(focal / 20.0)


def test_looking_up_gives_positive_pitch_and_converging_verticals() -> None:
    pose = _pose(look_y=14.0)
    assert pose.pitch_deg > 20
    h = pose.plane_homography(640)
    bottom = project(h, np.array([[-5.0, 0.0], [5.0, 0.0]]))
    top = project(h, np.array([[-5.0, 20.0], [5.0, 20.0]]))
    assert (top[1, 0] - top[0, 0]) < (bottom[1, 0] - bottom[0, 0])
    assert pose.horizon_row(640) > 320


def test_yaw_moves_the_camera_sideways_and_foreshortens() -> None:
    pose = _pose(yaw=30.0)
    assert pose.position[0] == pytest.approx(10.0)
    assert pose.position[2] == pytest.approx(20.0 * np.cos(np.radians(30)))
    h = pose.plane_homography(640)
    left, centre, right = project(h, np.array([[-4.0, 2.5], [0.0, 2.5], [4.0, 2.5]]))
    assert (centre[0] - left[0]) != pytest.approx(right[0] - centre[0], abs=1.0)
