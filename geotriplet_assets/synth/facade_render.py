"""Draw a FacadeGeometry as a frontal RGBA elevation (transparent above the roof line)."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from geotriplet_assets.synth.facade import RGB, FacadeGeometry

DOOR_COLOUR: RGB = (74, 56, 46)
SLATE_COLOUR: RGB = (70, 74, 82)
RAILING_COLOUR: RGB = (34, 34, 36)
ARCADE_SHADOW: RGB = (48, 46, 50)
Point = tuple[float, float]


def _shade(colour: RGB, factor: float) -> RGB:
    r, g, b = (min(255, max(0, round(c * factor))) for c in colour)
    return (r, g, b)


def _contrast(colour: RGB) -> RGB:
    return (24, 24, 24) if sum(colour) > 380 else (240, 240, 232)


class _Painter:
    """ImageDraw in facade metres: x to the right from the left edge, y up from the ground."""

    def __init__(self, width_m: float, height_m: float, px_per_m: float) -> None:
        self.scale = px_per_m
        self.height_m = height_m
        size = (math.ceil(width_m * px_per_m), math.ceil(height_m * px_per_m))
        self.image = Image.new("RGBA", size, (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.image)

    def _xy(self, x: float, y: float) -> Point:
        return x * self.scale, (self.height_m - y) * self.scale

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: RGB) -> None:
        (a, b), (c, d) = self._xy(x0, y1), self._xy(x1, y0)
        self.draw.rectangle((a, b, max(a, c - 1), max(b, d - 1)), fill=fill)

    def polygon(self, points: list[Point], fill: RGB) -> None:
        self.draw.polygon([self._xy(x, y) for x, y in points], fill=fill)

    def ellipse(self, x0: float, y0: float, x1: float, y1: float, fill: RGB) -> None:
        (a, b), (c, d) = self._xy(x0, y1), self._xy(x1, y0)
        self.draw.ellipse((a, b, max(a, c), max(b, d)), fill=fill)

    def hline(self, x0: float, x1: float, y: float, fill: RGB, thickness_m: float) -> None:
        self.rect(x0, y - thickness_m / 2, x1, y + thickness_m / 2, fill)


def _opening(p: _Painter, x0: float, y0: float, x1: float, y1: float, top: str, fill: RGB) -> None:
    """A window or door hole with a flat, arched, segmental or pointed head."""
    width = x1 - x0
    rise = {"flat": 0.0, "arch": width / 2, "segment": width / 5, "pointed": width * 0.7}[top]
    body_top = y1 - rise
    p.rect(x0, y0, x1, body_top, fill)
    if top == "arch":
        p.ellipse(x0, body_top - rise, x1, y1, fill)
    elif top == "segment":
        p.ellipse(x0 - width * 0.3, body_top - rise * 2, x1 + width * 0.3, y1, fill)
        p.rect(x0, y0, x1, body_top, fill)
    elif top == "pointed":
        p.polygon([(x0, body_top), (x0 + width / 2, y1), (x1, body_top)], fill)


def _window(p: _Painter, g: FacadeGeometry, cx: float, y0: float, w: float, h: float) -> None:
    x0, x1, y1 = cx - w / 2, cx + w / 2, y0 + h
    trim, frame = g.trim_colour, max(0.06, w * 0.06)
    if g.window_trim == "surround":
        _opening(p, x0 - 0.18, y0 - 0.18, x1 + 0.18, y1 + 0.18, g.window_top, trim)
    if g.window_trim in ("sill", "lintel", "pediment"):
        p.rect(x0 - 0.15, y0 - 0.18, x1 + 0.15, y0, trim)
    if g.window_trim == "lintel":
        p.rect(x0 - 0.2, y1, x1 + 0.2, y1 + 0.3, trim)
    if g.window_trim == "pediment":
        p.polygon([(x0 - 0.25, y1 + 0.1), (cx, y1 + 0.15 + w * 0.35), (x1 + 0.25, y1 + 0.1)], trim)
    if g.shutters:
        shutter = _shade(trim, 0.7)
        p.rect(
            x0 - w * 0.48, y0, x0 - 0.04, y1 - (w / 2 if g.window_top == "arch" else 0), shutter
        )
        p.rect(
            x1 + 0.04, y0, x1 + w * 0.48, y1 - (w / 2 if g.window_top == "arch" else 0), shutter
        )
    _opening(p, x0, y0, x1, y1, g.window_top, trim)
    _opening(p, x0 + frame, y0 + frame, x1 - frame, y1 - frame, g.window_top, g.glass_colour)
    bar = frame * 0.7
    if g.muntins in ("cross", "grid", "vertical"):
        p.rect(cx - bar / 2, y0, cx + bar / 2, y1 - frame, trim)
    if g.muntins == "cross":
        p.hline(x0, x1, y0 + h * 0.62, trim, bar)
    if g.muntins == "grid":
        for k in (1, 2):
            p.hline(x0, x1, y0 + h * k / 3, trim, bar)


def _balcony(p: _Painter, x0: float, x1: float, y: float) -> None:
    p.rect(x0, y - 0.18, x1, y, RAILING_COLOUR)
    p.hline(x0, x1, y + 1.0, RAILING_COLOUR, 0.07)
    bars = max(2, int((x1 - x0) / 0.3))
    for k in range(bars + 1):
        x = x0 + (x1 - x0) * k / bars
        p.rect(x - 0.025, y, x + 0.025, y + 1.0, RAILING_COLOUR)


def _has_balcony(g: FacadeGeometry, floor: int, column: int) -> bool:
    if g.balconies == "all":
        return True
    if g.balconies == "alternate":
        return floor % 2 == 0
    if g.balconies == "middle":
        third = g.columns / 3
        return third <= column < g.columns - third or g.columns <= 2
    return False


def _walls(p: _Painter, g: FacadeGeometry) -> None:
    w, top = g.width_m, g.wall_height_m
    p.rect(0, 0, w, top, g.wall_colour)
    joint = _shade(g.wall_colour, 0.82)
    if g.material == "brick":
        for k in range(1, int(top / 0.3)):
            p.hline(0, w, k * 0.3, joint, 0.04)
    elif g.material == "stone":
        for k in range(1, int(top / 0.75)):
            p.hline(0, w, k * 0.75, joint, 0.05)
            offset = 0.75 * (k % 2)
            for j in range(int(w / 1.5) + 1):
                x = j * 1.5 + offset
                p.rect(x - 0.025, (k - 1) * 0.75, x + 0.025, k * 0.75, joint)
    if g.rustication:
        for k in range(1, int(g.ground_floor_height_m / 0.5)):
            p.hline(0, w, k * 0.5, _shade(g.wall_colour, 0.7), 0.07)


def _roof(p: _Painter, g: FacadeGeometry) -> None:
    w, top, rise = g.width_m, g.wall_height_m, g.total_height_m - g.wall_height_m
    if g.roof == "gable":
        p.polygon([(0, top), (w / 2, top + rise), (w, top)], g.trim_colour)
        p.polygon(
            [(0.5, top + 0.25), (w / 2, top + rise - 0.35), (w - 0.5, top + 0.25)], g.wall_colour
        )
        p.ellipse(
            w / 2 - 0.7,
            top + rise * 0.35 - 0.7,
            w / 2 + 0.7,
            top + rise * 0.35 + 0.7,
            g.glass_colour,
        )
    elif g.roof == "mansard":
        p.polygon([(0, top), (0.8, top + rise), (w - 0.8, top + rise), (w, top)], SLATE_COLOUR)
        pitch = g.column_pitch_m
        for c in range(0, g.columns, 2):
            cx = g.side_margin_m + (c + 0.5) * pitch
            dw = min(1.2, pitch * 0.5)
            p.rect(
                cx - dw / 2 - 0.15, top + 0.2, cx + dw / 2 + 0.15, top + rise * 0.85, g.trim_colour
            )
            p.rect(cx - dw / 2, top + 0.3, cx + dw / 2, top + rise * 0.7, g.glass_colour)


def _cornice(p: _Painter, g: FacadeGeometry) -> None:
    w, top = g.width_m, g.wall_height_m
    if g.cornice == "none":
        return
    p.rect(0, top - 0.45, w, top, g.trim_colour)
    if g.cornice == "dentil":
        shadow = _shade(g.trim_colour, 0.6)
        for k in range(int(w / 0.5)):
            p.rect(k * 0.5 + 0.1, top - 0.75, k * 0.5 + 0.35, top - 0.45, shadow)


def _upper_floors(p: _Painter, g: FacadeGeometry) -> None:
    pitch, fh = g.column_pitch_m, g.floor_height_m
    ww = g.window_width_frac * pitch
    wh = min(ww * g.window_aspect, fh * 0.72)
    for floor in range(g.upper_floors):
        base = g.ground_floor_height_m + floor * fh
        if g.string_courses:
            p.rect(0, base - 0.1, g.width_m, base + 0.16, g.trim_colour)
        if g.balconies == "continuous":
            _balcony(p, g.side_margin_m * 0.5, g.width_m - g.side_margin_m * 0.5, base + 0.2)
        for column in range(g.columns):
            cx = g.side_margin_m + (column + 0.5) * pitch
            y0 = base + (fh - wh) * 0.45
            if column == g.blind_column:
                p.rect(cx - ww / 2, y0, cx + ww / 2, y0 + wh, _shade(g.wall_colour, 0.88))
                continue
            _window(p, g, cx, y0, ww, wh)
            if _has_balcony(g, floor, column):
                _balcony(p, cx - ww / 2 - 0.35, cx + ww / 2 + 0.35, base + 0.2)
    if g.pilaster_every:
        for column in range(0, g.columns + 1, g.pilaster_every):
            x = g.side_margin_m + column * pitch
            p.rect(x - 0.22, g.ground_floor_height_m, x + 0.22, g.wall_height_m, g.trim_colour)


def _ground_floor(p: _Painter, g: FacadeGeometry) -> None:
    pitch, gh = g.column_pitch_m, g.ground_floor_height_m
    door_h = min(2.7, gh - 0.6)
    for column in range(g.columns):
        cx = g.side_margin_m + (column + 0.5) * pitch
        if column == g.door_column:
            dw = min(1.6, pitch * 0.7)
            top = "arch" if g.door_arched else "flat"
            _opening(
                p, cx - dw / 2 - 0.15, 0, cx + dw / 2 + 0.15, door_h + 0.15, top, g.trim_colour
            )
            _opening(p, cx - dw / 2, 0, cx + dw / 2, door_h, top, DOOR_COLOUR)
        elif g.ground_floor == "shop":
            p.rect(cx - pitch * 0.42, 0.4, cx + pitch * 0.42, gh - 0.9, g.trim_colour)
            p.rect(cx - pitch * 0.38, 0.5, cx + pitch * 0.38, gh - 1.0, g.glass_colour)
        elif g.ground_floor == "arcade":
            aw = pitch * 0.7
            _opening(p, cx - aw / 2, 0, cx + aw / 2, gh - 0.4, "arch", ARCADE_SHADOW)
        else:
            ww = g.window_width_frac * pitch
            _window(p, g, cx, 1.0, ww, min(ww * g.window_aspect, gh - 1.6))


def _glyphs(p: _Painter, g: FacadeGeometry, x0: float, y0: float, x1: float, y1: float) -> None:
    ink = _contrast(g.sign_colour)
    horizontal = (x1 - x0) >= (y1 - y0)
    count = len(g.sign_glyphs)
    for k, size in enumerate(g.sign_glyphs):
        if horizontal:
            cell = (x1 - x0) / count
            a, b = x0 + k * cell + cell * 0.15, x0 + k * cell + cell * (0.15 + 0.7 * size)
            p.rect(a, y0 + (y1 - y0) * 0.25, b, y1 - (y1 - y0) * 0.25, ink)
        else:
            cell = (y1 - y0) / count
            a, b = y0 + k * cell + cell * 0.15, y0 + k * cell + cell * (0.15 + 0.7 * size)
            p.rect(x0 + (x1 - x0) * 0.25, a, x1 - (x1 - x0) * 0.25, b, ink)


def _sign(p: _Painter, g: FacadeGeometry) -> None:
    gh, pitch = g.ground_floor_height_m, g.column_pitch_m
    cx = g.side_margin_m + (g.sign_column + 0.5) * pitch
    if g.sign == "band":
        box = (g.side_margin_m, gh - 0.85, g.width_m - g.side_margin_m, gh - 0.15)
    elif g.sign == "blade":
        x = g.side_margin_m + g.sign_column * pitch
        box = (x - 0.4, gh + 0.2, x + 0.4, gh + 2.6)
    elif g.sign == "board":
        box = (cx - pitch * 0.45, gh + 0.1, cx + pitch * 0.45, gh + 1.0)
    elif g.sign == "disc":
        p.ellipse(cx - 0.75, gh - 0.2, cx + 0.75, gh + 1.3, g.sign_colour)
        p.ellipse(cx - 0.45, gh + 0.1, cx + 0.45, gh + 1.0, _contrast(g.sign_colour))
        return
    else:
        return
    p.rect(*box, g.sign_colour)
    _glyphs(p, g, *box)


def render_facade(geometry: FacadeGeometry, px_per_m: float) -> Image.Image:
    """Frontal RGBA image of the facade at px_per_m, bottom edge at ground level."""
    painter = _Painter(geometry.width_m, geometry.total_height_m, px_per_m)
    _walls(painter, geometry)
    _roof(painter, geometry)
    _ground_floor(painter, geometry)
    _upper_floors(painter, geometry)
    _cornice(painter, geometry)
    _sign(painter, geometry)
    return painter.image
