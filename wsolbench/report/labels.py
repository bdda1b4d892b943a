"""Point labels that never overlap each other and never sit on a marker.

A small deterministic placement, in display pixels, after the figure's layout and the axes' limits are
final (a later change of either moves the points under the labels): for each point in turn, try
candidate offsets around it, nearest first, and keep the first where its text box (the size rendered
by ``Text.get_window_extent(renderer)``, moved to the candidate) stays inside the axes and intersects
no obstacle (markers, error bars, line segments) and no label placed before. Past the near rings the
label gets a leader line back to its point. When no candidate is free (a very crowded panel), the one
with the least overlap is kept, with a leader line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from matplotlib.axes import Axes
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

#: Gap (pixels) kept between a label and any obstacle.
PAD_PX = 1.5
#: Rings of candidate offsets: (pixels past the point's marker, directions, leader line). A ring is a
#: square around the marker, so a diagonal candidate clears the marker's corner as a side one does.
RINGS = ((2.0, 8, False), (6.0, 8, False), (12.0, 16, False), (22.0, 16, True), (34.0, 24, True),
         (50.0, 24, True), (70.0, 32, True), (95.0, 32, True), (125.0, 32, True))


@dataclass(frozen=True)
class LabelSpec:
    """One label to place: its point (data coordinates), text, colour, and the size (points) of the
    largest marker drawn at the point, which the label keeps clear of."""

    x: float
    y: float
    text: str
    color: Any = "black"
    marker_pt: float = 6.0


@dataclass(frozen=True)
class PlacedLabel:
    """A placed label: its spec, the annotation drawn, its text box (display pixels), leader or not."""

    spec: LabelSpec
    artist: Annotation
    bbox: Bbox
    leader: bool


def marker_box(ax: Axes, x: float, y: float, size_pt: float) -> Bbox:
    """The display box (pixels) of a marker of ``size_pt`` points centred on data point (x, y)."""
    cx, cy = ax.transData.transform((x, y))
    half = size_pt * ax.figure.dpi / 72.0 / 2.0
    return Bbox.from_extents(cx - half, cy - half, cx + half, cy + half)


def path_boxes(ax: Axes, xs: Sequence[float], ys: Sequence[float], *, width_px: float = 2.0,
               step_px: float = 4.0) -> list[Bbox]:
    """Small display boxes along the polyline through data points (xs, ys): a line labels should not cover.

    An axis-parallel segment (an error bar) is one box; a sloped one is sampled every ``step_px`` pixels.
    """
    pts = ax.transData.transform(list(zip(xs, ys)))
    half = width_px / 2.0
    boxes = []
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
        if not all(map(math.isfinite, (x0, y0, x1, y1))):
            continue
        if abs(x1 - x0) < 1.0 or abs(y1 - y0) < 1.0:
            boxes.append(Bbox.from_extents(min(x0, x1) - half, min(y0, y1) - half, max(x0, x1) + half,
                                           max(y0, y1) + half))
            continue
        n = max(1, int(math.hypot(x1 - x0, y1 - y0) / step_px))
        for k in range(n + 1):
            cx, cy = x0 + (x1 - x0) * k / n, y0 + (y1 - y0) * k / n
            boxes.append(Bbox.from_extents(cx - half, cy - half, cx + half, cy + half))
    return boxes


def _directions(count: int) -> list[float]:
    """Angles (radians), starting to the upper right and alternating around, so nearby sides come first."""
    first = [45.0, 135.0, -45.0, -135.0, 0.0, 180.0, 90.0, -90.0]
    if count == 8:
        return [math.radians(a) for a in first]
    step = 360.0 / count
    rest = [k * step for k in range(count) if not any(abs(((k * step - a) + 180) % 360 - 180) < 1e-9 for a in first)]
    return [math.radians(a) for a in first + rest]


def _alignment(angle: float) -> tuple[str, str]:
    """Text alignment that puts the text on the far side of its anchor, as seen from the point."""
    dx, dy = math.cos(angle), math.sin(angle)
    ha = "left" if dx > 0.3 else "right" if dx < -0.3 else "center"
    va = "bottom" if dy > 0.3 else "top" if dy < -0.3 else "center"
    return ha, va


def _overlap(box: np.ndarray, others: np.ndarray) -> float:
    """Total area of ``box`` (x0, y0, x1, y1) shared with the rows of ``others`` (N, 4)."""
    if not len(others):
        return 0.0
    w = np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0])
    h = np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1])
    return float(np.sum(np.clip(w, 0.0, None) * np.clip(h, 0.0, None)))


def _outside(box: np.ndarray, frame: Bbox) -> float:
    """Area of ``box`` outside ``frame`` (0 when inside)."""
    inside_w = max(0.0, min(box[2], frame.x1) - max(box[0], frame.x0))
    inside_h = max(0.0, min(box[3], frame.y1) - max(box[1], frame.y0))
    return float((box[2] - box[0]) * (box[3] - box[1]) - inside_w * inside_h)


def _candidate(anchor_x: float, anchor_y: float, width: float, height: float, ha: str, va: str) -> np.ndarray:
    """The box of an unrotated text of that size anchored at (x, y) with that alignment (display pixels)."""
    x0 = anchor_x - {"left": 0.0, "center": width / 2.0, "right": width}[ha]
    y0 = anchor_y - {"bottom": 0.0, "center": height / 2.0, "top": height}[va]
    return np.array([x0, y0, x0 + width, y0 + height])


def _text_box(artist: Annotation, renderer) -> Bbox:
    """The display box of an annotation's text alone (not its leader line), at its current offset."""
    artist.update_positions(renderer)
    return Text.get_window_extent(artist, renderer)


def place_labels(ax: Axes, specs: Sequence[LabelSpec], *, obstacles: Sequence[Bbox] = (), renderer=None,
                 fontsize: float = 7.0) -> list[PlacedLabel]:
    """Annotate ``ax`` with ``specs`` so that no two text boxes intersect and none covers an obstacle.

    Args:
        ax: an axes whose limits and position are final.
        specs: labels in placement order (earlier ones get the nearer places).
        obstacles: display boxes to keep clear of (markers; see :func:`marker_box`).
        renderer: the figure's renderer (``fig.canvas.get_renderer()`` by default).
    Returns:
        The placed labels with their text boxes, in ``specs`` order.
    """
    renderer = renderer or ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken = np.array([[b.x0 - PAD_PX, b.y0 - PAD_PX, b.x1 + PAD_PX, b.y1 + PAD_PX] for b in obstacles]).reshape(-1, 4)
    to_points = 72.0 / ax.figure.dpi
    placed: list[PlacedLabel] = []
    for spec in specs:
        artist = ax.annotate(spec.text, (spec.x, spec.y), xytext=(0, 0), textcoords="offset points",
                             fontsize=fontsize, color=spec.color, zorder=6, annotation_clip=False)
        size = _text_box(artist, renderer)  # measured once; each candidate is this box moved
        px, py = ax.transData.transform((spec.x, spec.y))
        best: tuple[float, float, float, str, str, bool] | None = None  # (cost, dx, dy, ha, va, leader)
        half = spec.marker_pt * ax.figure.dpi / 72.0 / 2.0
        for radius, count, leader in RINGS:
            for angle in _directions(count):
                ha, va = _alignment(angle)
                c, s = math.cos(angle), math.sin(angle)
                scale = (half + radius) / max(abs(c), abs(s))
                box = _candidate(px + c * scale, py + s * scale, size.width, size.height, ha, va)
                cost = _overlap(box, taken) + 10.0 * _outside(box, frame)
                if best is None or cost < best[0]:
                    best = (cost, c * scale * to_points, s * scale * to_points, ha, va, leader)
                if cost == 0.0:
                    break
            if best is not None and best[0] == 0.0:
                break
        assert best is not None  # RINGS is not empty
        _, dx, dy, ha, va, leader = best
        leader = leader or best[0] > 0.0
        artist.xyann = (dx, dy)
        artist.set_horizontalalignment(ha)
        artist.set_verticalalignment(va)
        if leader:  # the same text, drawn again with a line back to its point
            artist.remove()
            artist = ax.annotate(spec.text, (spec.x, spec.y), xytext=(dx, dy), textcoords="offset points",
                                 fontsize=fontsize, color=spec.color, zorder=6, annotation_clip=False,
                                 ha=ha, va=va, arrowprops={"arrowstyle": "-", "color": spec.color, "lw": 0.6,
                                                           "alpha": 0.7, "shrinkA": 0.0, "shrinkB": 3.0})
        box = _text_box(artist, renderer)  # as drawn, from the renderer
        taken = np.vstack([taken, [box.x0 - PAD_PX, box.y0 - PAD_PX, box.x1 + PAD_PX, box.y1 + PAD_PX]])
        placed.append(PlacedLabel(spec=spec, artist=artist, bbox=box, leader=leader))
    return placed
