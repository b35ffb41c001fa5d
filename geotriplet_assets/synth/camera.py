"""Pinhole camera in front of a facade plane, and the homography it induces.

Facade coordinates, in metres: x to the right along the facade (as seen from the street),
y up from the ground, z out of the facade towards the street; the facade is the plane z = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

WORLD_UP = np.array([0.0, 1.0, 0.0])


@dataclass(frozen=True)
class CameraPose:
    """Camera at a horizontal distance and yaw from the point x = 0 of the facade, looking at
    (look_x_m, look_y_m) on it."""

    yaw_deg: float
    distance_m: float
    height_m: float
    look_x_m: float
    look_y_m: float
    fov_deg: float

    @property
    def position(self) -> np.ndarray:
        """Camera centre (x, y, z) in facade coordinates."""
        yaw = math.radians(self.yaw_deg)
        return np.array(
            [
                self.distance_m * math.sin(yaw),
                self.height_m,
                self.distance_m * math.cos(yaw),
            ]
        )

    @property
    def forward(self) -> np.ndarray:
        """Unit viewing direction in facade coordinates."""
        direction = np.array([self.look_x_m, self.look_y_m, 0.0]) - self.position
        return direction / np.linalg.norm(direction)

    @property
    def pitch_deg(self) -> float:
        """Upward tilt of the viewing direction; 0 is level."""
        return math.degrees(math.asin(float(self.forward[1])))

    def rotation(self) -> np.ndarray:
        """World-to-camera rotation; camera axes are right, down, forward (no roll)."""
        forward = self.forward
        right = np.cross(forward, WORLD_UP)
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    def focal_px(self, image_size: int) -> float:
        """Focal length in pixels for a square image of image_size pixels."""
        return (image_size / 2) / math.tan(math.radians(self.fov_deg) / 2)

    def plane_homography(self, image_size: int) -> np.ndarray:
        """3x3 map from facade-plane (x, y, 1) in metres to image pixels (u, v, 1)."""
        f, c = self.focal_px(image_size), image_size / 2
        intrinsics = np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])
        rotation = self.rotation()
        extrinsic = np.column_stack([rotation[:, 0], rotation[:, 1], -rotation @ self.position])
        return intrinsics @ extrinsic

    def horizon_row(self, image_size: int) -> float:
        """Image row of the horizon (may lie outside the image)."""
        return image_size / 2 + self.focal_px(image_size) * math.tan(math.radians(self.pitch_deg))


def project(homography: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 3x3 homography to (N, 2) points."""
    ones = np.ones((points.shape[0], 1))
    mapped = np.hstack([points, ones]) @ homography.T
    return mapped[:, :2] / mapped[:, 2:3]
