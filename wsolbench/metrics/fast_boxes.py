"""Every CAM threshold of a score map in two union-find passes (numba).

The protocol (:mod:`wsolbench.metrics.protocol`) thresholds the 8-bit map at
each distinct cut ``c`` and runs ``cv2.findContours(q > c, RETR_TREE)``. The
foreground only grows as the cut falls, so one pass that adds pixels from the
brightest level down, merging 8-connected neighbours with union-find, holds the
foreground components of every cut in turn; a second pass that adds pixels from
the darkest level up, merging 4-connected neighbours, holds the background
components, and those that never reach the image border are the holes (this
pass runs only up to the last cut that has holes, which the Euler number of the
foreground tells). Pixels between two consecutive cuts are added in raster
order. What each cut needs is read off these two structures:

Outer contours
    One per 8-connected foreground component (findContours follows 8-connected
    foreground and 4-connected background). Its ``boundingRect`` is the
    component's bounding box: the extreme pixels of a component border the
    background outside it (or the image edge, which findContours treats as
    background).
Hole contours
    One per hole (a 4-connected background component not touching the image
    edge). The inner border runs through the foreground pixels 4-adjacent to
    the hole; the extreme ones are the neighbours just outside the hole's own
    extreme pixels, so the contour's ``boundingRect`` is the hole's bounding box
    grown by one pixel on every side.
Contour areas (``cv2.contourArea``, for the "largest" mode)
    The traced polygon runs through pixel centres. Cut the plane into unit cells
    with pixel centres at their corners: a cell whose four corners belong to a
    component lies inside its polygon (area 1), one with three corners holds a
    half-cell triangle (1/2), and cells with two or fewer corners hold only
    segments (0). Inside the outer polygon are, besides, the component's holes:
    a hole's inner polygon covers every cell with two or more hole corners and
    half of each cell with exactly one. So, in half-cells,
    ``area(outer) = own(C) + sum over holes h of C of area(h)``, both sums of
    per-cell terms that grow additively as pixels are added. Each hole's
    enclosing component is the one holding the pixel just above the hole's
    top-left pixel (an island inside the hole lies strictly below its top row).

Ties for the largest contour go to the first in findContours' list, which is
the tree of contours in depth-first order, parents before children, siblings in
reverse raster order of their top-left pixels. A hole is never first (its
component is at least as large and comes before it), nor is an island inside a
hole (the hole, so its component, is larger), so the winner is the tied
top-level component starting last. When a tied component might lie inside a
hole (its box inside a hole's box), the cut is flagged and :func:`fast_best_ious`
recomputes its largest contour with
:func:`~wsolbench.metrics.protocol.contour_boxes`. When the first pass cannot
rank the components (holes present, and the largest own area does not beat
the second by more than all the holes together), a second foreground pass
credits each hole to its component.

IoUs are computed with the same float64 operations as
:func:`~wsolbench.metrics.protocol.box_iou`, so the values are bit-identical,
not merely close; ``tests/test_metrics_fast.py`` checks every curve against the
exact path.
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from wsolbench.metrics.protocol import box_iou, contour_boxes, quantize_scoremap

# Union-by-size weight of the background sentinel (the padding ring): it absorbs
# every component that reaches the image edge.
_SENTINEL_SIZE = 1 << 30

# The eight neighbours of a pixel, as (row, column) steps, in the bit order of a
# neighbourhood mask: N, NE, E, SE, S, SW, W, NW.
_STEPS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))
_ROW_STEPS = np.array([step[0] for step in _STEPS], dtype=np.int64)
_COL_STEPS = np.array([step[1] for step in _STEPS], dtype=np.int64)
_W = 6  # the west neighbour: the pixel before in raster order
# The four cells (2 x 2 pixel windows) around a pixel, as (diagonal, side, side)
# neighbour bits: NW, NE, SE, SW.
_CELLS = ((7, 0, 6), (1, 0, 2), (3, 2, 4), (5, 4, 6))

# Columns of the neighbourhood table _LUT (256 masks of already-added neighbours).
_FG_GROUPS = 0  # foreground (8-connected) groups among the added neighbours
_FG_MEMBER = 1  # ... one neighbour of each, columns 1..4
_BG_GROUPS = 5  # background (4-connected) groups
_BG_MEMBER = 6  # ... columns 6..9
_FG_GAIN = 10  # cells gaining their 3rd or 4th corner (own area, half-cells)
_BG_GAIN = 11  # cells gaining their 1st or 2nd corner (hole area, half-cells)
_EULER = 12  # change of 4 x the 8-connected Euler number


def _groups(mask: int, nodes: list[int], linked) -> list[int]:
    """One member of each group of ``nodes`` under ``linked``; W's group first, as W."""
    group = {i: i for i in nodes}

    def root(i: int) -> int:
        while group[i] != i:
            i = group[i]
        return i

    for a in nodes:
        for b in nodes:
            if a < b and linked(mask, a, b):
                group[root(b)] = root(a)
    reps = sorted({root(i) for i in nodes})
    if _W in group:
        reps.remove(root(_W))
        reps.insert(0, _W)
    return reps


def _linked8(mask: int, i: int, j: int) -> bool:
    # Two added neighbours that touch each other are already one component.
    (ri, ci), (rj, cj) = _STEPS[i], _STEPS[j]
    return max(abs(ri - rj), abs(ci - cj)) == 1


def _linked4(mask: int, i: int, j: int) -> bool:
    # Two side neighbours at a right angle are 4-connected through the corner
    # between them when it is added.
    if (j - i) % 8 == 2:
        return bool(mask >> (i + 1) % 8 & 1)
    if (i - j) % 8 == 2:
        return bool(mask >> (j + 1) % 8 & 1)
    return False


def _euler4(count: int, diagonal: bool) -> int:
    """4 x the Euler-number contribution of a cell (Gray's bit quads, 8-connectivity)."""
    if count == 1:
        return 1
    if count == 3:
        return -1
    if count == 2 and diagonal:
        return -2
    return 0


def _neighbourhood_table() -> np.ndarray:
    """What adding a pixel does, for each mask of its already-added neighbours.

    Neighbours added before the pixel that are connected to one another are
    already in one component, so the pixel needs one find per group only. The
    area and Euler terms depend only on the pixel's four cells, so on the mask.
    """
    lut = np.zeros((256, 13), dtype=np.int8)
    for mask in range(256):
        added = [i for i in range(8) if mask >> i & 1]
        fg = _groups(mask, added, _linked8)
        bg = _groups(mask, [i for i in added if i % 2 == 0], _linked4)
        lut[mask, _FG_GROUPS] = len(fg)
        lut[mask, _FG_MEMBER : _FG_MEMBER + len(fg)] = fg
        lut[mask, _BG_GROUPS] = len(bg)
        lut[mask, _BG_MEMBER : _BG_MEMBER + len(bg)] = bg
        for diag, side_a, side_b in _CELLS:
            corners = [mask >> i & 1 for i in (diag, side_a, side_b)]
            before = sum(corners)
            lut[mask, _FG_GAIN] += before >= 2
            lut[mask, _BG_GAIN] += before < 2
            was_diagonal = corners == [0, 1, 1]
            now_diagonal = corners == [1, 0, 0]
            lut[mask, _EULER] += _euler4(before + 1, now_diagonal) - _euler4(before, was_diagonal)
    return lut


_LUT = _neighbourhood_table()

# Hot loops index with unsigned integers: numba adds a negative-index
# wraparound check to every access with a signed one.
_NONE = np.uint32(0xFFFFFFFF)  # parent of a pixel not added yet
_ONE = np.uint64(1)


@numba.njit(cache=True)
def _find(parent, x):
    """Root of ``x`` (uint64), halving the path on the way."""
    up = np.uint64(parent[x])
    top = np.uint64(parent[up])
    if top == up:  # x is a root or a child of one: most calls
        return up
    while True:
        parent[x] = np.uint32(top)
        x = top
        up = np.uint64(parent[x])
        if up == x:
            return x
        top = np.uint64(parent[up])


@numba.njit(cache=True)
def _best_box_iou(x0, y0, x1, y1, gt):
    """max over GT boxes of the +1-pixel IoU, in the float64 operations of box_iou."""
    best = -1.0
    a_area = (float(x1) - float(x0) + 1.0) * (float(y1) - float(y0) + 1.0)
    for g in range(gt.shape[0]):
        gx0 = float(gt[g, 0])
        gy0 = float(gt[g, 1])
        gx1 = float(gt[g, 2])
        gy1 = float(gt[g, 3])
        iw = max(0.0, min(float(x1), gx1) - max(float(x0), gx0) + 1.0)
        ih = max(0.0, min(float(y1), gy1) - max(float(y0), gy0) + 1.0)
        inter = iw * ih
        b_area = (gx1 - gx0 + 1.0) * (gy1 - gy0 + 1.0)
        den = a_area + b_area - inter
        best = max(best, inter / den if den > 0.0 else 0.0)
    return best


@numba.njit(cache=True)
def _neighbour_mask(added, p, offsets):
    """Mask of the added neighbours of ``p``, from the 0/1 ``added`` array.

    Not from ``parent``: the west neighbour is often the pixel added just
    before, and reading its parent would wait for that pixel's find, chaining
    every pixel's finds through memory; ``added`` is written with a constant.
    The steps are scalars (``offsets[0]`` is ``-wp``, wrapped), which the
    compiler keeps in registers.
    """
    up = np.uint64(0) - offsets[0]
    n = p - up
    s = p + up
    one = np.uint64(1)
    return (
        np.uint64(added[n])
        | np.uint64(added[n + one]) << np.uint64(1)
        | np.uint64(added[p + one]) << np.uint64(2)
        | np.uint64(added[s + one]) << np.uint64(3)
        | np.uint64(added[s]) << np.uint64(4)
        | np.uint64(added[s - one]) << np.uint64(5)
        | np.uint64(added[p - one]) << np.uint64(6)
        | np.uint64(added[n - one]) << np.uint64(7)
    )


@numba.njit(cache=True)
def _workspace(height, width):
    """Scratch arrays for maps of one size, reused from map to map.

    Fresh large arrays would cost page faults on every map.
    """
    n_cells = (height + 2) * (width + 2)
    n_pixels = height * width
    return (
        np.empty(n_cells, np.uint32),  # 0 parent
        np.empty(n_cells, np.int32),  # 1 size
        np.empty(n_cells, np.int32),  # 2 row0
        np.empty(n_cells, np.int32),  # 3 row1
        np.empty(n_cells, np.int32),  # 4 col0
        np.empty(n_cells, np.int32),  # 5 col1
        np.empty(n_cells, np.uint32),  # 6 first
        np.empty(n_cells, np.int64),  # 7 area
        np.empty(n_cells, np.int64),  # 8 extra
        np.empty(n_cells, np.bool_),  # 9 dirty
        np.empty(n_cells, np.float64),  # 10 cached
        np.empty(n_cells, np.uint32),  # 11 pos
        np.empty(n_pixels, np.uint32),  # 12 active
        np.empty((height, width), np.uint8),  # 13 quantised map
        np.empty(n_pixels, np.uint32),  # 14 pixels sorted by band
        np.empty(n_cells, np.uint8),  # 15 added (1) or not (0)
    )


@numba.njit(cache=True)
def _sort_bands(q, level_counts, band_of_level, n_bands, order):
    """Pixels grouped by band, raster order within a band.

    Counting sort on ``band_of_level[q]`` (``level_counts``: pixels per level);
    consecutive pixels are then near one another. Fills ``order`` with
    ``row << 16 | col`` and returns ``start``: band ``b`` occupies
    ``order[start[b]:start[b + 1]]`` (bands ``0 .. n_bands``, the last one
    holding the pixels never added).
    """
    height, width = q.shape
    start = np.zeros(n_bands + 2, np.int64)
    for lv in range(256):
        start[band_of_level[lv] + 1] += level_counts[lv]
    for b in range(1, n_bands + 2):
        start[b] += start[b - 1]
    fill = np.empty(n_bands + 1, np.int64)
    for b in range(n_bands + 1):
        fill[b] = start[b]
    for r in range(height):
        for c in range(width):
            b = band_of_level[q[r, c]]
            order[fill[b]] = np.uint32(r << 16 | c)
            fill[b] += 1
    return start


@numba.njit(cache=True)
def _foreground_pass(ws, order, start, cuts, gt, lut, hole_start, hole_anchor, hole_area, hole_box):
    """Foreground components of every cut, brightest level down (8-connectivity).

    With hole records (``hole_start`` non-empty, from :func:`_background_pass`),
    also the exact largest contour, each hole's area credited to the component
    enclosing it; pass an empty ``hole_start`` to skip that.

    Returns, ``(K,)`` each: best IoU over outer contours; number of holes (from
    the Euler number); IoU, own area and count of the components of largest own
    area (the first in findContours' order on ties, valid when there are no
    holes); the second largest own area (-1 with one component); the exact
    largest-contour IoU and whether it is ambiguous (with hole records).
    """
    parent, size, row0, row1, col0, col1, first, own, extra, dirty, cached, pos, active = ws[:13]
    height, width = ws[13].shape
    n_cuts = cuts.shape[0]
    wp = width + 2
    offsets = (_ROW_STEPS * wp + _COL_STEPS).astype(np.uint64)  # wraps: p + offset is exact
    exact = hole_start.shape[0] > 0
    # first: smallest padded index (the top-left pixel); own: area in half-cells
    added = ws[15]
    for i in range((height + 2) * wp):
        parent[i] = _NONE
        added[i] = 0

    best_out = np.empty(n_cuts, np.float64)
    holes = np.zeros(n_cuts, np.int64)
    top_iou = np.empty(n_cuts, np.float64)
    top_own = np.empty(n_cuts, np.int64)
    top_ties = np.zeros(n_cuts, np.int64)
    second_own = np.empty(n_cuts, np.int64)
    exact_iou = np.empty(n_cuts, np.float64)
    ambiguous = np.zeros(n_cuts, np.bool_)

    zero_box = _best_box_iou(0, 0, 0, 0, gt)
    euler4 = 0
    n_active = np.uint64(0)
    prev = np.uint64(0)
    prev_root = np.uint64(0)
    for k in range(n_cuts - 1, -1, -1):
        # band k: the pixels in the foreground of cut k but not of cut k + 1
        for ptr in range(np.uint64(start[k]), np.uint64(start[k + 1])):
            rc = order[ptr]
            pr = np.int32(rc >> 16)
            pc = np.int32(rc & 0xFFFF)
            p = np.uint64(pr + 1) * np.uint64(wp) + np.uint64(pc + 1)
            mask = _neighbour_mask(added, p, offsets)
            added[p] = 1
            euler4 += lut[mask, _EULER]
            n_groups = lut[mask, _FG_GROUPS]
            if n_groups == 0:
                parent[p] = np.uint32(p)
                size[p] = 1
                row0[p] = pr
                row1[p] = pr
                col0[p] = pc
                col1[p] = pc
                first[p] = np.uint32(p)
                own[p] = 0
                extra[p] = 0
                dirty[p] = True
                active[n_active] = np.uint32(p)
                pos[p] = np.uint32(n_active)
                n_active += _ONE
                rp = p
            elif n_groups == 1 and p == prev + _ONE:
                # The west neighbour came just before, so its root is at hand;
                # its row is in the box and the box's first pixel precedes it.
                rp = prev_root
                parent[p] = np.uint32(rp)
                size[rp] += 1
                if pc > col1[rp]:
                    col1[rp] = pc
                    dirty[rp] = True
            else:
                if p == prev + _ONE:
                    # The west neighbour came just before: its group is first
                    # in the table and its root is at hand.
                    rp = prev_root
                else:
                    rp = _find(parent, p + offsets[np.uint64(lut[mask, _FG_MEMBER])])
                parent[p] = np.uint32(rp)
                size[rp] += 1
                if (
                    pr < row0[rp]
                    or pr > row1[rp]
                    or pc < col0[rp]
                    or pc > col1[rp]
                    or np.uint32(p) < first[rp]
                ):
                    row0[rp] = min(row0[rp], pr)
                    row1[rp] = max(row1[rp], pr)
                    col0[rp] = min(col0[rp], pc)
                    col1[rp] = max(col1[rp], pc)
                    first[rp] = min(first[rp], np.uint32(p))
                    dirty[rp] = True
                for j in range(1, n_groups):
                    rn = _find(parent, p + offsets[np.uint64(lut[mask, _FG_MEMBER + j])])
                    if rn == rp:
                        continue
                    if size[rn] < size[rp]:
                        rn, rp = rp, rn
                    # rn survives
                    parent[rp] = np.uint32(rn)
                    size[rn] += size[rp]
                    n_active -= _ONE
                    last = active[n_active]
                    active[pos[rp]] = last
                    pos[last] = pos[rp]
                    row0[rn] = min(row0[rn], row0[rp])
                    row1[rn] = max(row1[rn], row1[rp])
                    col0[rn] = min(col0[rn], col0[rp])
                    col1[rn] = max(col1[rn], col1[rp])
                    first[rn] = min(first[rn], first[rp])
                    own[rn] += own[rp]
                    dirty[rn] = True
                    rp = rn
            own[rp] += lut[mask, _FG_GAIN]
            prev = p
            prev_root = rp
        if n_active == 0:
            best_out[k] = zero_box
            top_iou[k] = zero_box
            exact_iou[k] = zero_box
            top_own[k] = -1
            top_ties[k] = 0
            second_own[k] = -1
            continue
        holes[k] = np.int64(n_active) - euler4 // 4
        best = -1.0
        top = -1
        arg = np.uint64(0)
        ties = 0
        second = -1
        for i in range(n_active):
            r = np.uint64(active[i])
            if dirty[r]:
                cached[r] = _best_box_iou(
                    col0[r], row0[r], min(col1[r] + 1, width - 1), min(row1[r] + 1, height - 1), gt
                )
                dirty[r] = False
            best = max(best, cached[r])
            a = own[r]
            if a > top:
                second = top
                top = a
                arg = r
                ties = 1
            elif a == top:
                second = a
                ties += 1
                # Without holes findContours lists the outer contours in reverse
                # raster order of their top-left pixels: the first of the tied is
                # the one starting last.
                if first[r] > first[arg]:
                    arg = r
            elif a > second:
                second = a
        best_out[k] = best
        top_iou[k] = cached[arg]
        top_own[k] = top
        top_ties[k] = ties
        second_own[k] = second
        if not exact or k + 1 >= hole_start.shape[0]:
            continue
        # Exact outer areas: own area plus the holes each component encloses.
        h0 = hole_start[k]
        h1 = hole_start[k + 1]
        for h in range(h0, h1):
            extra[_find(parent, np.uint64(hole_anchor[h]))] += hole_area[h]
        top = -1
        ties = 0
        for i in range(n_active):
            r = np.uint64(active[i])
            a = own[r] + extra[r]
            if a > top:
                top = a
                arg = r
                ties = 1
            elif a == top:
                ties += 1
                if first[r] > first[arg]:
                    arg = r
        # A hole never comes first: its enclosing component has at least its
        # area and precedes it in findContours' list. Tied outer contours at the
        # top level come in reverse raster order (arg); one that may lie inside
        # a hole (an island, listed after that hole's parent) leaves the order
        # to findContours.
        unsure = False
        if ties > 1:
            for i in range(n_active):
                r = np.uint64(active[i])
                if own[r] + extra[r] != top:
                    continue
                for h in range(h0, h1):
                    if (
                        hole_box[h, 0] < row0[r]
                        and row1[r] < hole_box[h, 1]
                        and hole_box[h, 2] < col0[r]
                        and col1[r] < hole_box[h, 3]
                    ):
                        unsure = True
                        break
                if unsure:
                    break
        for h in range(h0, h1):
            extra[_find(parent, np.uint64(hole_anchor[h]))] = 0
        exact_iou[k] = cached[arg]
        ambiguous[k] = unsure
    return best_out, holes, top_iou, top_own, top_ties, second_own, exact_iou, ambiguous


@numba.njit(cache=True)
def _background_pass(ws, order, start, stop, cuts, gt, lut, k_end):
    """Holes of the cuts ``cuts[:k_end + 1]``, darkest level up (4-connectivity).

    Band ``k``, the pixels joining the background at cut ``k``, is
    ``order[start[k]:stop[k]]``.

    The padding ring is one component rooted at the sentinel 0, so the holes
    are the other roots.

    Returns:
        ``(best, total, hole_start, anchor, area, box)``: per cut, the best IoU
        over hole contours (-1 without holes) and the total hole area
        (half-cells); hole ``h`` of cut ``k`` (``hole_start[k] <= h <
        hole_start[k + 1]``) has the padded index ``anchor[h]`` of the
        foreground pixel above its top-left pixel, the area ``area[h]`` of its
        contour (half-cells) and the extent ``box[h]`` (row0, row1, col0, col1)
        of its pixels.
    """
    parent, size, row0, row1, col0, col1, first, area, _, dirty, cached, pos, active = ws[:13]
    height, width = ws[13].shape
    n_cuts = k_end + 1
    wp = width + 2
    offsets = (_ROW_STEPS * wp + _COL_STEPS).astype(np.uint64)
    sentinel = np.uint64(0)
    added = ws[15]
    for i in range((height + 2) * wp):
        parent[i] = _NONE
        added[i] = 0
    for c in range(wp):
        parent[c] = 0
        parent[(height + 1) * wp + c] = 0
        added[c] = 1
        added[(height + 1) * wp + c] = 1
    for r in range(height + 2):
        parent[r * wp] = 0
        parent[r * wp + wp - 1] = 0
        added[r * wp] = 1
        added[r * wp + wp - 1] = 1
    size[0] = _SENTINEL_SIZE

    best_out = np.empty(n_cuts, np.float64)
    total_out = np.zeros(n_cuts, np.int64)
    hole_start = np.zeros(n_cuts + 1, np.int64)
    cap = 64
    anchor = np.empty(cap, np.int64)
    hole_area = np.empty(cap, np.int64)
    hole_box = np.empty((cap, 4), np.int32)
    n_holes = 0
    n_active = np.uint64(0)
    prev = np.uint64(0)
    prev_root = np.uint64(0)
    for k in range(n_cuts):
        # band k: the pixels in the background of cut k but not of cut k - 1
        for ptr in range(np.uint64(start[k]), np.uint64(stop[k])):
            rc = order[ptr]
            pr = np.int32(rc >> 16)
            pc = np.int32(rc & 0xFFFF)
            p = np.uint64(pr + 1) * np.uint64(wp) + np.uint64(pc + 1)
            mask = _neighbour_mask(added, p, offsets)
            added[p] = 1
            n_groups = lut[mask, _BG_GROUPS]
            if n_groups == 0:
                parent[p] = np.uint32(p)
                size[p] = 1
                row0[p] = pr
                row1[p] = pr
                col0[p] = pc
                col1[p] = pc
                first[p] = np.uint32(p)
                area[p] = 0
                dirty[p] = True
                active[n_active] = np.uint32(p)
                pos[p] = np.uint32(n_active)
                n_active += _ONE
                rp = p
            elif n_groups == 1 and p == prev + _ONE:
                # as in _foreground_pass: the west neighbour's root, only col1 can grow
                rp = prev_root
                parent[p] = np.uint32(rp)
                if rp != sentinel:
                    size[rp] += 1
                    if pc > col1[rp]:
                        col1[rp] = pc
                        dirty[rp] = True
            else:
                if p == prev + _ONE:
                    rp = prev_root
                else:
                    rp = _find(parent, p + offsets[np.uint64(lut[mask, _BG_MEMBER])])
                parent[p] = np.uint32(rp)
                if rp != sentinel:
                    size[rp] += 1
                    if (
                        pr < row0[rp]
                        or pr > row1[rp]
                        or pc < col0[rp]
                        or pc > col1[rp]
                        or np.uint32(p) < first[rp]
                    ):
                        row0[rp] = min(row0[rp], pr)
                        row1[rp] = max(row1[rp], pr)
                        col0[rp] = min(col0[rp], pc)
                        col1[rp] = max(col1[rp], pc)
                        first[rp] = min(first[rp], np.uint32(p))
                        dirty[rp] = True
                for j in range(1, n_groups):
                    rn = _find(parent, p + offsets[np.uint64(lut[mask, _BG_MEMBER + j])])
                    if rn == rp:
                        continue
                    if size[rn] < size[rp]:
                        rn, rp = rp, rn
                    # rn survives; the sentinel always does
                    parent[rp] = np.uint32(rn)
                    size[rn] += size[rp]
                    n_active -= _ONE
                    last = active[n_active]
                    active[pos[rp]] = last
                    pos[last] = pos[rp]
                    if rn != sentinel:
                        row0[rn] = min(row0[rn], row0[rp])
                        row1[rn] = max(row1[rn], row1[rp])
                        col0[rn] = min(col0[rn], col0[rp])
                        col1[rn] = max(col1[rn], col1[rp])
                        first[rn] = min(first[rn], first[rp])
                        area[rn] += area[rp]
                        dirty[rn] = True
                    rp = rn
            # A pixel of a hole has no padding cell around it, so its cells are
            # inside the image and the mask counts their background corners.
            if rp != sentinel:
                area[rp] += lut[mask, _BG_GAIN]
            prev = p
            prev_root = rp
        n_now = np.int64(n_active)
        if n_holes + n_now > cap:
            # (element loops: slice assignment costs seconds of compile time)
            cap = 2 * (n_holes + n_now)
            grown = np.empty(cap, np.int64)
            grown_area = np.empty(cap, np.int64)
            grown_box = np.empty((cap, 4), np.int32)
            for h in range(n_holes):
                grown[h] = anchor[h]
                grown_area[h] = hole_area[h]
                for j in range(4):
                    grown_box[h, j] = hole_box[h, j]
            anchor = grown
            hole_area = grown_area
            hole_box = grown_box
        best = -1.0
        total = 0
        for i in range(n_now):
            r = np.uint64(active[i])
            if dirty[r]:
                cached[r] = _best_box_iou(
                    col0[r] - 1, row0[r] - 1, min(col1[r] + 2, width - 1), min(row1[r] + 2, height - 1), gt
                )
                dirty[r] = False
            best = max(best, cached[r])
            total += area[r]
            anchor[n_holes] = np.int64(first[r]) - wp
            hole_area[n_holes] = area[r]
            hole_box[n_holes, 0] = row0[r]
            hole_box[n_holes, 1] = row1[r]
            hole_box[n_holes, 2] = col0[r]
            hole_box[n_holes, 3] = col1[r]
            n_holes += 1
        best_out[k] = best
        total_out[k] = total
        hole_start[k + 1] = n_holes
    return best_out, total_out, hole_start, anchor, hole_area, hole_box


@numba.njit(cache=True)
def _map_cut_ious(scoremap, thresholds, gt, lut, ws, out_all, out_largest, out_fallback, out_cuts):
    """Best IoUs of one map at every CAM threshold, written to the ``(T,)`` outputs.

    Quantisation and cuts repeat :func:`~wsolbench.metrics.protocol.quantize_scoremap`
    and :func:`~wsolbench.metrics.protocol.threshold_cuts` operation for
    operation; each distinct cut is evaluated once. ``out_fallback[t]`` marks
    thresholds whose largest contour must be found by the exact path
    (``out_largest[t]`` is then meaningless).

    Returns whether the map lies in ``[0, 1]`` (no NaN), checked in the same
    pass as the quantisation; when it does not, the outputs are left unset.
    """
    q = ws[13]
    height, width = q.shape
    level_counts = np.zeros(256, np.int64)
    bad = 0
    for r in range(height):
        for c in range(width):
            x = np.float64(scoremap[r, c])
            bad |= (x < 0.0) | (x > 1.0) | (x != x)  # NaN compares unequal to itself
            # float64 product, truncated like astype(np.uint8) (the map is in [0, 1])
            v = np.uint8(np.int64(x * 255.0))
            q[r, c] = v
            level_counts[v] += 1
    if bad:
        return False
    top_level = 255
    while top_level > 0 and level_counts[top_level] == 0:
        top_level -= 1
    n_thresholds = thresholds.shape[0]
    cuts = np.empty(n_thresholds, np.int64)
    inverse = np.empty(n_thresholds, np.int64)
    n_cuts = 0
    for t in range(n_thresholds):
        cut = np.int64(thresholds[t] * float(top_level))
        out_cuts[t] = cut
        if n_cuts == 0 or cut != cuts[n_cuts - 1]:
            cuts[n_cuts] = cut
            n_cuts += 1
        inverse[t] = n_cuts - 1
    cuts = cuts[:n_cuts]
    # Foreground band of level l: the last cut below l (the pixel joins the
    # foreground there, going down); n_cuts for levels at or below every cut.
    band = np.empty(256, np.int64)
    k = -1
    for lv in range(256):
        while k + 1 < n_cuts and cuts[k + 1] < lv:
            k += 1
        band[lv] = k if k >= 0 else n_cuts
    order = ws[14]
    start = _sort_bands(q, level_counts, band, n_cuts, order)
    none = np.empty(0, np.int64)
    iou_all, holes, iou_largest, top_own, top_ties, second_own, _, _ = _foreground_pass(
        ws, order, start, cuts, gt, lut, none, none, none, np.empty((0, 4), np.int32)
    )
    fallback = np.zeros(n_cuts, np.bool_)
    k_end = -1
    for k in range(n_cuts):
        if holes[k] > 0:
            k_end = k
    if k_end >= 0:
        # The background grows, going up, by the same bands: band k of the
        # background is foreground band k - 1, and background band 0 the
        # pixels at or below every cut (the last bin of the foreground sort).
        bg_start = np.empty(k_end + 2, np.int64)
        bg_stop = np.empty(k_end + 2, np.int64)
        bg_start[0] = start[n_cuts]
        bg_stop[0] = start[n_cuts + 1]
        for k in range(1, k_end + 1):
            bg_start[k] = start[k - 1]
            bg_stop[k] = start[k]
        hole_best, hole_total, hole_start, anchor, hole_area, hole_box = _background_pass(
            ws, order, bg_start, bg_stop, cuts, gt, lut, k_end
        )
        unsure = np.zeros(n_cuts, np.bool_)
        any_unsure = False
        for k in range(k_end + 1):
            iou_all[k] = max(iou_all[k], hole_best[k])
            if holes[k] == 0:
                continue
            # A lone component is the largest contour (its holes are no larger
            # and come after it); else the largest own area wins when it beats
            # every other component even if all the holes were credited to it.
            sure = second_own[k] < 0 or (top_ties[k] == 1 and top_own[k] > second_own[k] + hole_total[k])
            if not sure:
                unsure[k] = True
                any_unsure = True
        if any_unsure:
            _, _, _, _, _, _, exact_iou, ambiguous = _foreground_pass(
                ws, order, start, cuts, gt, lut, hole_start, anchor, hole_area, hole_box
            )
            for k in range(k_end + 1):
                if unsure[k]:
                    iou_largest[k] = exact_iou[k]
                    fallback[k] = ambiguous[k]
    for t in range(n_thresholds):
        out_all[t] = iou_all[inverse[t]]
        out_largest[t] = iou_largest[inverse[t]]
        out_fallback[t] = fallback[inverse[t]]
    return True


@numba.njit(cache=True, nogil=True)
def _maps(maps, thresholds, gt_flat, gt_offsets, lut, out_all, out_largest, out_fallback, out_cuts, out_valid,
          lo, hi):
    """Maps ``lo .. hi - 1`` of a batch, with one workspace (no GIL: threads split a batch).

    ``out_valid[b]``: whether map ``b`` lies in ``[0, 1]`` (no NaN); its other outputs are unset if not.
    """
    ws = _workspace(maps.shape[1], maps.shape[2])
    for b in range(lo, hi):
        out_valid[b] = _map_cut_ious(
            maps[b],
            thresholds,
            gt_flat[gt_offsets[b] : gt_offsets[b + 1]],
            lut,
            ws,
            out_all[b],
            out_largest[b],
            out_fallback[b],
            out_cuts[b],
        )


def split_count(n: int, workers: int) -> int:
    """How many parts :func:`run_split` cuts ``n`` items into."""
    return max(1, min(workers, n))


def run_split(kernel, n: int, workers: int) -> None:
    """``kernel(part, lo, hi)`` over ``0 .. n`` in :func:`split_count` contiguous parts, in threads.

    The numba kernels release the GIL, so the threads run in parallel.
    """
    parts = split_count(n, workers)
    spans = [(i, i * n // parts, (i + 1) * n // parts) for i in range(parts)]
    if parts == 1:
        kernel(*spans[0])
        return
    pool = _executor(parts)
    for future in [pool.submit(kernel, *span) for span in spans]:
        future.result()


@functools.lru_cache(maxsize=4)
def _executor(workers: int) -> ThreadPoolExecutor:
    """One pool per worker count, kept: starting threads for every batch would cost more than small batches."""
    return ThreadPoolExecutor(workers, thread_name_prefix="wsolbench-metrics")


def maps_in_unit_interval(maps: np.ndarray) -> np.ndarray:
    """Whether each map of a float ``(B, H, W)`` array lies in ``[0, 1]`` (no NaN); bool ``(B,)``.

    Two reductions and no copy: the check before the fast engines, which leave
    the error message to :func:`~wsolbench.metrics.validate.check_scoremaps`.
    """
    if maps.shape[0] == 0:
        return np.ones(0, dtype=np.bool_)
    # min and max propagate NaN, and NaN compares False
    return (maps.min(axis=(1, 2)) >= 0) & (maps.max(axis=(1, 2)) <= 1)


def fast_best_ious(
    scoremaps: np.ndarray,
    gt_boxes: list[np.ndarray],
    thresholds: np.ndarray,
    workers: int = 1,
) -> np.ndarray:
    """Best IoU with the ground truth at each CAM threshold, for a batch of maps.

    Equal, bit for bit, to stacking
    :func:`~wsolbench.metrics.protocol.best_ious` over the batch.

    Args:
        scoremaps: ``(B, H, W)`` float in ``[0, 1]`` (checked by the caller),
            ``H, W < 65536``.
        gt_boxes: ``B`` int arrays ``(n_i, 4)``, ``n_i >= 1``, at map resolution.
        thresholds: ``(T,)`` CAM thresholds, ascending.
        workers: threads splitting the maps.

    Returns:
        float64 ``(B, 2, T)``: ``[:, 0]`` all contours, ``[:, 1]`` largest contour
        (NaN rows for maps outside ``[0, 1]``; see :func:`fast_best_ious_checked`).
    """
    return fast_best_ious_checked(scoremaps, gt_boxes, thresholds, workers=workers)[0]


def fast_best_ious_checked(
    scoremaps: np.ndarray,
    gt_boxes: list[np.ndarray],
    thresholds: np.ndarray,
    workers: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fast_best_ious` and ``valid``, bool ``(B,)``: whether each map lies in ``[0, 1]`` (no NaN).

    The range check rides on the quantisation pass, so a caller needs no
    separate pass over the maps; the IoU rows of an invalid map are NaN.
    """
    # float32 maps go in as they are, no float64 copy of the batch: the kernel
    # widens each score, exactly, as the protocol does.
    maps = np.ascontiguousarray(scoremaps)
    if maps.dtype not in (np.float32, np.float64):
        maps = maps.astype(np.float64)
    n = maps.shape[0]
    thresholds = np.ascontiguousarray(thresholds, dtype=np.float64)
    n_thresholds = len(thresholds)
    out = np.empty((n, 2, n_thresholds), dtype=np.float64)
    valid = np.ones(n, dtype=np.bool_)
    if n == 0:
        return out, valid
    if max(maps.shape[1:]) >= 1 << 16:
        raise ValueError(f"score maps must be smaller than 65536 x 65536, got {maps.shape[1:]}")
    gt_flat = np.ascontiguousarray(np.concatenate([np.asarray(g, dtype=np.int64) for g in gt_boxes]))
    gt_offsets = np.zeros(n + 1, dtype=np.int64)
    gt_offsets[1:] = np.cumsum([len(g) for g in gt_boxes])
    iou_all = np.empty((n, n_thresholds), dtype=np.float64)
    iou_largest = np.empty((n, n_thresholds), dtype=np.float64)
    fallback = np.zeros((n, n_thresholds), dtype=np.bool_)
    cuts = np.empty((n, n_thresholds), dtype=np.int64)
    # The table goes in as an argument: as a global numba would type it
    # read-only and compile every function a second time.
    args = (maps, thresholds, gt_flat, gt_offsets, _LUT, iou_all, iou_largest, fallback, cuts, valid)
    run_split(lambda part, lo, hi: _maps(*args, lo, hi), n, workers)
    if not valid.all():
        iou_all[~valid] = np.nan
        iou_largest[~valid] = np.nan
        fallback[~valid] = False
    # Ambiguous largest contours: the exact path, once per (map, cut).
    for b in np.flatnonzero(fallback.any(axis=1)):
        quantized = quantize_scoremap(maps[b])
        gt = gt_flat[gt_offsets[b] : gt_offsets[b + 1]]
        done: dict[int, float] = {}
        for t in np.flatnonzero(fallback[b]):
            cut = int(cuts[b, t])
            if cut not in done:
                _, largest = contour_boxes(quantized > cut)
                done[cut] = float(box_iou(largest[None, :], gt).max())
            iou_largest[b, t] = done[cut]
    out[:, 0] = iou_all
    out[:, 1] = iou_largest
    return out, valid
