"""The HTML report: one static page, openable from disk, that a person reads in a minute.

:func:`write_report` reads the run records under a folder and writes, into ``out``:

- ``index.html``: the aggregated leaderboard with its paired intervals (the compact table of
  ``leaderboard.md``, from the same frame; the best value of each metric column in bold), the
  entropy-vs-accuracy and threshold-sweep plots, the CAM galleries (the same sample of test images in every
  setting, then each setting's best and worst images by IoU), and each run's config, hash, code version,
  environment and timings (collapsible);
- beside it: ``leaderboard.csv`` / ``.md`` and ``runs.csv`` (the numbers of the page), the plots' PNGs, and
  ``tiles/*.png`` (the gallery's images, :mod:`wsolbench.report.gallery`).

Links are relative and nothing is fetched from elsewhere: no server, no external URL, no JavaScript. The page
reads on a phone: a viewport meta tag, a bounded text width, wide tables in horizontally scrolling wrappers
(class ``scroll``), images that scale down. Every file is written atomically.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import os
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from wsolbench._io import atomic_write_text, ensure_writable_dir
from wsolbench.errors import ConfigError, DataError
from wsolbench.metrics.table import metric
from wsolbench.records import (GALLERY_FILE, code_version_label, find_records, load_gallery, load_outcomes,
                               load_records, outcomes_path)
from wsolbench.report.aggregate import setting_key, setting_label
from wsolbench.report.gallery import (GT_COLOR, IGNORE_COLOR, PRED_COLOR, TileInfo, draw_tile, extremes, tile_info,
                                      write_png)
from wsolbench.report.leaderboard import (compact_table, explanation, groups_of, leaderboard_frame,
                                          localization_metric, protocol_of, record_row, runs_frame, write_leaderboard,
                                          write_runs)
from wsolbench.report.plots import plot_entropy_vs_accuracy
from wsolbench.report.significance import parse_baseline
from wsolbench.report.threshold_plots import plot_threshold_sweeps
from wsolbench.structs import LOC_IOU

INDEX = "index.html"
TILES = "tiles"
#: Compact-table columns whose display name is not the metric key.
_COLUMN_KEYS = {"top-1": "top1"}

CSS = """
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2328;
background:#fff}
main{max-width:1200px;margin:0 auto;padding:12px 16px 48px}
h1{font-size:1.55em;margin:.4em 0 .2em}
h2{font-size:1.25em;margin:1.8em 0 .5em;padding-bottom:.2em;border-bottom:1px solid #d0d7de}
h3{font-size:1.05em;margin:1.3em 0 .4em}
p,li{max-width:75ch}
code{font:12.5px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f3f4f6;padding:0 3px;
border-radius:3px;overflow-wrap:anywhere}
a{color:#0a58ca}
nav ul{display:flex;flex-wrap:wrap;gap:4px 16px;padding:0;list-style:none;margin:.5em 0}
.meta{color:#57606a;font-size:13.5px}
.note{color:#57606a;font-size:13.5px;font-style:italic}
.explain{color:#3d444d;font-size:13.5px}
.scroll{overflow-x:auto;max-width:100%;-webkit-overflow-scrolling:touch;margin:.4em 0 1em}
table{border-collapse:collapse;font-size:13px}
th,td{padding:4px 8px;border-bottom:1px solid #e5e7eb;white-space:nowrap;text-align:right;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
th:first-child,td:first-child{text-align:left}
table.board tbody tr:nth-child(even){background:#fafbfc}
table.board td.best{font-weight:700}
table.board tr.baseline td:first-child::after{content:" (baseline)";color:#57606a;font-weight:400}
table.board td.up{color:#0b6e2e}
table.board td.down{color:#b42318}
table.runs th,table.runs td{text-align:left}
table.kv{font-size:12.5px;margin:.3em 0 .8em}
table.kv th{background:none;font-weight:400;color:#57606a}
table.kv td{text-align:left;white-space:normal;overflow-wrap:anywhere}
img{max-width:100%;height:auto}
figure{margin:.8em 0 1.4em}
figure.plot img{display:block;border:1px solid #eaecef}
figure.plot.narrow img{width:640px}
figcaption{font-size:13px;color:#57606a}
table.tiles th,table.tiles td{padding:3px;border:none;background:none;text-align:left}
table.tiles thead th{font-weight:600;color:#57606a;font-size:12px}
table.tiles th.row{position:sticky;left:0;z-index:1;background:#fff;white-space:normal;width:8.5em;
min-width:8.5em;max-width:8.5em;font-size:12px;overflow-wrap:break-word;padding-right:6px}
table.tiles th.row .meta{font-size:inherit;font-weight:400}
figure.tile{margin:0;width:144px}
figure.tile img{display:block;width:144px;height:144px;image-rendering:pixelated;border-radius:2px}
figure.tile figcaption{font-size:11px;line-height:1.3;white-space:normal;overflow-wrap:anywhere;color:#3d444d}
.wrong{color:#b42318;font-weight:600}
.hit{color:#0b6e2e;font-weight:600}
.legend{display:flex;flex-wrap:wrap;gap:4px 18px;font-size:13px;padding:0;list-style:none}
.swatch{display:inline-block;width:18px;height:12px;border:2px solid;margin-right:5px;vertical-align:-2px;
background:#3b1f5c;outline:1px solid #141414}
.ramp{display:inline-block;width:60px;height:10px;margin-right:5px;vertical-align:-1px;
background:linear-gradient(90deg,#000004,#57106e,#bc3754,#f98e09,#fcffa4)}
details{border:1px solid #d0d7de;border-radius:6px;padding:6px 10px;margin:6px 0}
details[open]>summary{margin-bottom:6px}
summary{cursor:pointer;overflow-wrap:anywhere}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font:12px/1.35 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
background:#f6f8fa;padding:8px;border-radius:4px;max-height:32em;overflow-y:auto}
@media (max-width:600px){
 body{font-size:14px} main{padding:8px 10px 32px}
 figure.tile{width:112px} figure.tile img{width:112px;height:112px}
 table.tiles th.row{width:7em;min-width:7em;max-width:7em;font-size:11px}
 table.board th:first-child,table.board td:first-child{position:sticky;left:0;z-index:1;background:#fff;
  white-space:normal;min-width:8.5em;max-width:8.5em;overflow-wrap:break-word;box-shadow:1px 0 0 #e5e7eb}
 table.board thead th:first-child{background:#f6f8fa}
 table.board tbody tr:nth-child(even) td:first-child{background:#fafbfc}
}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _md(text: str) -> str:
    """Escaped text with Markdown's inline `code` as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))


def _rgb(color: Sequence[int]) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in color)


def _png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's header; None when it is not a PNG."""
    with open(path, "rb") as handle:
        head = handle.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def _href(path: Path, out: Path) -> str:
    return quote(Path(os.path.relpath(path, out)).as_posix())


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "-"
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


# ---------------------------------------------------------------- the leaderboard


def _column_key(column: str) -> str | None:
    key = _COLUMN_KEYS.get(column, column)
    try:
        return key if metric(key).higher_is_better is not None else None
    except ConfigError:
        return None


def _best_positions(rows: pd.DataFrame, columns: Sequence[str]) -> dict[str, set[int]]:
    """Per metric column of the compact table, the row positions holding its best mean (as displayed, to two
    decimals; ties all bold, unless every row ties). Only with two rows or more."""
    best: dict[str, set[int]] = {}
    if len(rows) < 2:
        return best
    for column in columns:
        key = _column_key(column)
        if key is None or key not in rows.columns:
            continue
        values = pd.to_numeric(rows[key], errors="coerce").round(2).to_numpy()
        if not pd.notna(values).any():
            continue
        target = pd.Series(values).max() if metric(key).higher_is_better else pd.Series(values).min()
        positions = {i for i, v in enumerate(values) if v == target}
        if len(positions) < len(values):  # a column where every row ties has no best
            best[column] = positions
    return best


def leaderboard_table(rows: pd.DataFrame, *, sort_by: str, baseline: str | None) -> str:
    """One (dataset, backbone) group of the aggregated leaderboard as an HTML table (the compact table's
    cells), wrapped for horizontal scrolling."""
    shown = compact_table(rows, sort_by=sort_by, baseline=baseline)
    best = _best_positions(rows, list(shown.columns))
    head = "".join(f"<th>{_e(c)}</th>" for c in shown.columns)
    body = []
    flags = list(rows["is_baseline"]) if "is_baseline" in rows.columns else [False] * len(rows)
    for i, (cells, is_base) in enumerate(zip(shown.itertuples(index=False), flags)):
        tds = []
        for column, text in zip(shown.columns, cells):
            classes = ["best"] if i in best.get(column, ()) else []
            if column.startswith("Δ") and str(text).endswith("*"):  # the interval excludes 0
                classes.append("down" if str(text).startswith("-") else "up")
            attr = f' class="{" ".join(classes)}"' if classes else ""
            tds.append(f"<td{attr}>{_breakable(text) if column == 'setting' else _e(text)}</td>")
        row_class = ' class="baseline"' if is_base is True or (isinstance(is_base, np.bool_) and is_base) else ""
        body.append(f"<tr{row_class}>{''.join(tds)}</tr>")
    return (f'<div class="scroll"><table class="board"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


# ---------------------------------------------------------------- galleries


@dataclass(frozen=True)
class SettingGallery:
    """The gallery of one setting: the seed of the run it comes from, its items with their caption facts, the
    positions of its best and worst images; ``note`` instead when the setting has no gallery."""

    label: str
    seed: Any = None
    items: tuple[Mapping[str, Any], ...] = ()
    infos: tuple[TileInfo, ...] = ()
    best: tuple[int, ...] = ()
    worst: tuple[int, ...] = ()
    note: str | None = None


def _outcome_iou(run_dir: Path) -> tuple[dict[str, float] | None, int | None]:
    """``loc.iou`` of the test outcomes by image id, and the number of test images (None, None without them)."""
    if not outcomes_path(run_dir, "test").exists():
        return None, None
    arrays = load_outcomes(run_dir, "test")
    ids = arrays.get("boxes.image_ids")
    if ids is None or "loc.iou" not in arrays:
        return None, None
    return {str(i): float(v) for i, v in zip(ids, arrays["loc.iou"])}, len(ids)


def setting_gallery(label: str, runs: Sequence[tuple[dict[str, Any], Path | None]]) -> SettingGallery:
    """The gallery of a setting from the first of its runs (by seed) that kept one."""
    for record, run_dir in runs:
        if run_dir is None or not (Path(run_dir) / GALLERY_FILE).exists():
            continue
        items = load_gallery(run_dir)
        contours = protocol_of(record).get("loc_contours") or "largest"
        infos = [tile_info(item, contours=contours) for item in items]
        outcome_iou, n_test = _outcome_iou(Path(run_dir))
        evaluation = (record.get("config") or {}).get("eval") or {}
        k = int(evaluation.get("gallery_extremes", sum(i.role == "best" for i in infos)))
        if n_test is not None:
            k = min(k, n_test // 2)
        best, worst = extremes(items, infos, k, outcome_iou)
        return SettingGallery(label=label, seed=(record.get("summary") or {}).get("seed"), items=tuple(items),
                              infos=tuple(infos), best=tuple(best), worst=tuple(worst))
    return SettingGallery(label=label, note="no gallery: its runs kept no score maps (made before galleries "
                                            "existed, or with eval.gallery = 0)")


def _caption(info: TileInfo, *, with_iou: bool = True) -> str:
    """Image id; label and predicted class (red when wrong); IoU (green when it counts for Loc)."""
    lines = [_e(info.image_id)]
    if not with_iou:
        return "<br>".join([*lines, f"label {info.label}"])
    pred = f"pred {info.predicted}"
    shown = pred if info.predicted == info.label else f'<span class="wrong">{pred}</span>'
    lines.append(f"label {info.label} · {shown}")
    if info.iou is not None:
        text = f"IoU {info.iou:.2f}"
        lines.append(f'<span class="hit">{text}</span>' if info.iou >= LOC_IOU / 100 else text)
    else:
        lines.append("IoU -" if math.isfinite(info.threshold) else "no threshold chosen")
    return "<br>".join(lines)


def _breakable(label: str) -> str:
    """An escaped setting label that may also wrap after "(", "," and "_" (besides its spaces)."""
    return re.sub(r"([(,_])", r"\1<wbr>", _e(label))


def _tile(out: Path, name: str, item: Mapping[str, Any], info: TileInfo, *, setting: str, role: str,
          overlay: bool = True) -> str:
    rgb = draw_tile(item, info.boxes if overlay else None, overlay=overlay)
    path = write_png(out / TILES / name, rgb)
    side = rgb.shape[0]
    alt = f"{info.image_id}, label {info.label}" + (
        f", predicted {info.predicted}" + (f", IoU {info.iou:.2f}" if info.iou is not None else "") if overlay else "")
    return (f'<figure class="tile" data-setting="{_e(setting)}" data-image="{_e(info.image_id)}" '
            f'data-role="{_e(role)}"><img src="{_href(path, out)}" width="{side}" height="{side}" alt="{_e(alt)}">'
            f"<figcaption>{_caption(info, with_iou=overlay)}</figcaption></figure>")


def _row_head(gallery: SettingGallery) -> str:
    """The setting, the seed of the run shown and its CAM threshold."""
    facts = [f"seed {_e(gallery.seed)}"] if gallery.seed is not None else []
    thresholds = {info.threshold for info in gallery.infos if math.isfinite(info.threshold)}
    if len(thresholds) == 1:
        facts.append(f"threshold {next(iter(thresholds)):g}")
    meta = f'<br><span class="meta">{"<br>".join(facts)}</span>' if facts else ""
    return f'<th class="row" scope="row">{_breakable(gallery.label)}{meta}</th>'


def sample_table(out: Path, prefix: str, galleries: Sequence[SettingGallery]) -> str:
    """Images as columns, settings as rows: the plain image with its ground truth first, then each setting's
    map, ground truth and predicted box for the same image."""
    kept = [g for g in galleries if g.note is None]
    ids = sorted({info.image_id for g in kept for info in g.infos if info.role == "sample"})
    if not ids:
        return '<p class="note">No setting kept a sample of test images (eval.gallery = 0).</p>'
    first: dict[str, tuple[Mapping[str, Any], TileInfo]] = {}
    for g in kept:
        for item, info in zip(g.items, g.infos):
            if info.role == "sample":
                first.setdefault(info.image_id, (item, info))
    cells = [_tile(out, f"{prefix}-image-{j:03d}.png", *first[i], setting="", role="image", overlay=False)
             for j, i in enumerate(ids)]
    plain = "".join(f"<td>{c}</td>" for c in cells)
    rows = [f'<tr><th class="row" scope="row">image and ground truth</th>{plain}</tr>']
    for s, g in enumerate(galleries):
        if g.note is not None:
            rows.append(f'<tr>{_row_head(g)}<td colspan="{len(ids)}" class="note">{_e(g.note)}</td></tr>')
            continue
        where = {info.image_id: p for p, info in enumerate(g.infos) if info.role == "sample"}
        tds = []
        for j, image_id in enumerate(ids):
            if image_id not in where:
                tds.append('<td class="note">not kept</td>')
                continue
            p = where[image_id]
            tds.append("<td>" + _tile(out, f"{prefix}-s{s:02d}-sample-{j:03d}.png", g.items[p], g.infos[p],
                                      setting=g.label, role="sample") + "</td>")
        rows.append(f"<tr>{_row_head(g)}{''.join(tds)}</tr>")
    return f'<div class="scroll"><table class="tiles"><tbody>{"".join(rows)}</tbody></table></div>'


def extremes_table(out: Path, prefix: str, galleries: Sequence[SettingGallery]) -> str:
    """Each setting's best and worst test images by IoU at its val-chosen threshold, one row per setting."""
    k = max((len(g.best) for g in galleries), default=0)
    if k == 0:
        return '<p class="note">No best and worst images: no IoU per image (the split has no boxes).</p>'
    head = (f'<thead><tr><th class="row"></th><th colspan="{k}">best by IoU</th>'
            f'<th colspan="{k}">worst by IoU</th></tr></thead>')
    rows = []
    for s, g in enumerate(galleries):
        if g.note is not None:
            rows.append(f'<tr>{_row_head(g)}<td colspan="{2 * k}" class="note">{_e(g.note)}</td></tr>')
            continue
        tds = []
        for role, positions in (("best", g.best), ("worst", g.worst)):
            for j in range(k):
                if j >= len(positions):
                    tds.append("<td></td>")
                    continue
                p = positions[j]
                tds.append("<td>" + _tile(out, f"{prefix}-s{s:02d}-{role}-{j:03d}.png", g.items[p], g.infos[p],
                                          setting=g.label, role=role) + "</td>")
        rows.append(f"<tr>{_row_head(g)}{''.join(tds)}</tr>")
    return f'<div class="scroll"><table class="tiles">{head}<tbody>{"".join(rows)}</tbody></table></div>'


def legend(galleries: Sequence[SettingGallery]) -> str:
    """What the colours of the tiles mean (the mask and ignore items only where some tile has them)."""
    items = [item for g in galleries for item in g.items]
    masks = any(item.get("mask") is not None for item in items)
    ignore = any(item.get("ignore") is not None and item["ignore"].any() for item in items)
    entries = ['<span class="ramp"></span>score map (0 → 1) over the image',
               f'<span class="swatch" style="border-color:{_rgb(GT_COLOR)}"></span>ground-truth box'
               + (" (thin: mask outline)" if masks else ""),
               f'<span class="swatch" style="border-color:{_rgb(PRED_COLOR)}"></span>predicted box at the '
               "val-chosen CAM threshold"]
    if ignore:
        entries.append(f'<span class="swatch" style="border-color:{_rgb(IGNORE_COLOR)}"></span>ignored pixels')
    return '<ul class="legend">' + "".join(f"<li>{e}</li>" for e in entries) + "</ul>"


# ---------------------------------------------------------------- runs


def _kv(pairs: Sequence[tuple[str, Any]]) -> str:
    rows = "".join(f'<tr><th scope="row">{_e(k)}</th><td>{v}</td></tr>' for k, v in pairs)
    return f'<div class="scroll"><table class="kv"><tbody>{rows}</tbody></table></div>'


def _version(record: dict[str, Any]) -> str:
    version = record.get("code_version") or {}
    return code_version_label(version) if version else str((record.get("summary") or {}).get("code_version", "?"))


def _environment(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The device facts, then the library versions, of a record's environment."""
    environment = record.get("environment") or {}
    pairs = [(k, "-" if v is None else str(v)) for k, v in environment.items() if not isinstance(v, dict)]
    return pairs + [(k, "-" if v is None else str(v)) for k, v in (environment.get("libraries") or {}).items()]


def _threshold(record: dict[str, Any]) -> str:
    chosen = ((record.get("selection") or {}).get("threshold") or {}).get("threshold")
    return f"{chosen:g}" if isinstance(chosen, (int, float)) and not isinstance(chosen, bool) else "-"


def runs_table(runs: Sequence[tuple[str, dict[str, Any], Path | None]], out: Path) -> str:
    """One row per run: setting, seed, record, config hash, code version, device, val-chosen CAM threshold, and
    each timing (data, train, eval, total)."""
    timing_keys = list(dict.fromkeys(k for _, r, _ in runs for k in (r.get("timings") or {})))
    head = "".join(f"<th>{_e(c)}</th>" for c in ("setting", "seed", "run", "config hash", "code version", "device",
                                                    "CAM threshold", *timing_keys))
    rows = []
    for label, record, run_dir in runs:
        environment = record.get("environment") or {}
        name = _e(record.get("name"))
        link = f'<a href="{_href(Path(run_dir) / "record.json", out)}">{name}</a>' if run_dir is not None else name
        timings = record.get("timings") or {}
        cells = [_breakable(label), _e((record.get("summary") or {}).get("seed", "-")), link,
                 f"<code>{_e(record.get('config_hash'))}</code>", _e(_version(record)),
                 _e(environment.get("device_name") or environment.get("device") or "-"), _e(_threshold(record)),
                 *(_e(_seconds(timings.get(k))) for k in timing_keys)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (f'<div class="scroll"><table class="board runs"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def environments(runs: Sequence[tuple[str, dict[str, Any], Path | None]]) -> str:
    """The environments the runs were made in (device, then library versions), one row per distinct one."""
    distinct: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for _, record, _ in runs:
        distinct.setdefault(tuple(_environment(record)), []).append(str(record.get("name")))
    keys = list(dict.fromkeys(k for pairs in distinct for k, _ in pairs))
    head = "".join(f"<th>{_e(k)}</th>" for k in ("runs", *keys))
    rows = []
    for pairs, names in distinct.items():
        values = dict(pairs)
        who = "all" if len(distinct) == 1 else ", ".join(names)
        rows.append("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in (who, *(values.get(k, "-") for k in keys)))
                    + "</tr>")
    return (f'<div class="scroll"><table class="board runs"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def run_details(record: dict[str, Any], run_dir: Path | None) -> str:
    """One run's resolved config, collapsed, with the command that made it (where the record says), its folder,
    manifest, and what was chosen for it (checkpoint, CAM threshold)."""
    selection = record.get("selection") or {}
    manifest = record.get("manifest") or {}
    threshold = selection.get("threshold") or {}
    chosen = threshold.get("threshold")
    facts = [("command", f"<code>{_e(record['command'])}</code>")] if record.get("command") else []
    facts += [("created", _e(record.get("created", "-"))), ("status", _e(record.get("status", "-"))),
             ("folder", f"<code>{_e(run_dir)}</code>" if run_dir is not None else "-"),
             ("manifest", f"{_e(manifest.get('name', '-'))} <code>{_e(manifest.get('hash', '-'))}</code>"),
             ("checkpoint", _e(selection.get("checkpoint", "-"))),
             ("CAM threshold", _e(f"{chosen:g}, {threshold.get('criterion', 'chosen')} on "
                                  f"{threshold.get('split', 'val')}") if isinstance(chosen, (int, float)) else "-")]
    config = json.dumps(record.get("config"), indent=1)
    return (f"<details><summary><code>{_e(record.get('name'))}</code> · config "
            f"<code>{_e(record.get('config_hash'))}</code></summary>{_kv(facts)}<pre>{_e(config)}</pre></details>")


# ---------------------------------------------------------------- the page


def _plots(frame: pd.DataFrame, records: Sequence[dict[str, Any]], out: Path,
           sort_by: str) -> list[tuple[Path, str, str]]:
    """The two plots (as ``wsolbench bench`` draws them), each with its width class and caption; those without
    data left out."""
    plots = []
    y = localization_metric(frame, sort_by)
    if not frame.empty and "entropy_norm" in frame and y is not None:
        plots.append((plot_entropy_vs_accuracy(frame, out / "entropy_vs_accuracy.png", metric=y), "narrow",
                      f"Mean predictive entropy (H / log K, test) against top-1 and {y}: one line per regularizer "
                      "through its strengths; with several seeds, error bars = their std."))
    if any((r.get("test") or {}).get("boxes") or (r.get("test") or {}).get("masks") for r in records):
        plots.append((plot_threshold_sweeps(list(records), out / "threshold_sweeps.png"), "wide",
                      "Test accuracy against the CAM threshold (val-chosen thresholds marked), and pixel "
                      "precision-recall where the split has masks."))
    return plots


def _figure(path: Path, width: str, caption: str, out: Path) -> str:
    size = _png_size(path)
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    return (f'<figure class="plot {width}"><img src="{_href(path, out)}"{dims} alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _runs_by_setting(pairs: Sequence[tuple[dict[str, Any], Path]]) -> dict[tuple[str, ...], list[tuple[dict, Path]]]:
    groups: dict[tuple[str, ...], list[tuple[dict, Path]]] = {}
    for record, run_dir in pairs:
        groups.setdefault(setting_key(record_row(record, run_dir)), []).append((record, run_dir))

    def seed(pair: tuple[dict, Path]) -> tuple[int, Any]:
        value = (pair[0].get("summary") or {}).get("seed")
        return (0, value) if isinstance(value, int) else (1, str(value))

    return {key: sorted(runs, key=seed) for key, runs in groups.items()}


def report_html(frame: pd.DataFrame, pairs: Sequence[tuple[dict[str, Any], Path]], out: Path, *,
                runs_dir: Path, sort_by: str, baseline: str | None, n_resamples: int,
                command: str | None = None) -> str:
    """The page's HTML; draws the plots and the gallery tiles into ``out`` on the way."""
    by_setting = _runs_by_setting(pairs)
    groups = groups_of(frame)
    with_cam = "cam" in frame.columns and frame["cam"].nunique(dropna=False) > 1
    versions = sorted({code_version_label(r.get("code_version") or {}) for r, _ in pairs if r.get("code_version")})
    made = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [f'<header><h1>wsolbench report</h1><p class="meta">{len(pairs)} runs, {len(frame)} settings from '
             f"<code>{_e(runs_dir)}</code> · code {_e(', '.join(versions) or '?')} · made {made}"
             + (f" by <code>{_e(command)}</code>" if command else "") + "</p>"
             '<nav><ul><li><a href="#leaderboard">Leaderboard</a></li><li><a href="#plots">Plots</a></li>'
             '<li><a href="#galleries">CAM galleries</a></li><li><a href="#runs">Runs</a></li>'
             '<li><a href="leaderboard.csv">leaderboard.csv</a></li><li><a href="runs.csv">runs.csv</a></li>'
             "</ul></nav></header>"]

    parts.append('<section id="leaderboard"><h2>Leaderboard</h2>')
    for title, rows in groups:
        if title:
            parts.append(f"<h3>{_e(title)}</h3>")
        parts.append(leaderboard_table(rows, sort_by=sort_by, baseline=baseline))
    told = explanation(frame, sort_by=sort_by, baseline=baseline, n_resamples=n_resamples)
    parts.append(f'<p class="explain">{_md(told)}'
                 " Bold: the best mean of each column; Δ in green or red where its interval excludes 0.</p></section>")

    plots = _plots(frame, [r for r, _ in pairs], out, sort_by)
    parts.append('<section id="plots"><h2>Plots</h2>'
                 + ("".join(_figure(p, w, c, out) for p, w, c in plots) or '<p class="note">No data to plot.</p>')
                 + "</section>")

    galleries = [[setting_gallery(setting_label(row, with_cam=with_cam), by_setting.get(setting_key(row), []))
                  for _, row in rows.iterrows()] for _, rows in groups]
    parts.append('<section id="galleries"><h2>CAM galleries</h2><p>The score map of the ground-truth class over '
                 "each test image, the ground truth, and the box GT-known Loc predicts at the run's CAM threshold "
                 f"chosen on val (largest contour unless the run says otherwise; IoU in green when it reaches "
                 f"{LOC_IOU / 100:g}). The same sample of test images in every setting, then each setting's best and "
                 "worst test images by that IoU. A setting shows the run of its first seed.</p>"
                 + legend([g for group in galleries for g in group]))
    level = 4 if len(groups) > 1 else 3  # under a (dataset, backbone) heading when there are several
    for g_index, ((title, _), group) in enumerate(zip(groups, galleries)):
        if len(groups) > 1:
            parts.append(f"<h3>{_e(title)}</h3>")
        if all(g.note is not None for g in group):
            parts.append('<p class="note">No run of these settings kept a gallery (records made before galleries '
                         "existed, or eval.gallery = 0 and eval.gallery_extremes = 0): no images.</p>")
            continue
        parts.append(f"<h{level}>The same test images in every setting</h{level}>"
                     + sample_table(out, f"g{g_index}", group)
                     + f"<h{level}>Best and worst test images of each setting</h{level}>"
                     + extremes_table(out, f"g{g_index}", group))
    parts.append("</section>")

    ordered = [(setting_label(row, with_cam=with_cam), record, run_dir) for _, row in frame.iterrows()
               for record, run_dir in by_setting.get(setting_key(row), [])]
    parts.append('<section id="runs"><h2>Runs</h2>' + runs_table(ordered, out)
                 + "<h3>Environment</h3>" + environments(ordered)
                 + "<h3>Configs</h3><p>Each run's resolved config, as its record holds it.</p>"
                 + "".join(run_details(record, run_dir) for _, record, run_dir in ordered) + "</section>")

    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>wsolbench report</title><style>{CSS}</style></head>\n"
            f"<body><main>{''.join(parts)}</main></body></html>\n")


def write_report(runs_dir: Path, out: Path, *, baseline: str | None = "ce", sort_by: str = "MaxBoxAccV2",
                 n_resamples: int = 1000, command: str | None = None) -> Path:
    """Write the report of the runs under ``runs_dir`` into ``out`` (the module docstring's files); returns
    the path of ``index.html``.

    Args:
        baseline: what each setting is compared with (``ce``, or ``axis=value``); None: no comparison.
        sort_by: the metric rows are sorted by, best first.
        n_resamples: paired bootstrap resamples for the intervals (0: differences only).
    Raises:
        ConfigError: ``runs_dir`` is no folder, an unknown ``sort_by`` or a malformed ``baseline``.
        DataError: no run record under ``runs_dir``, or one that cannot be read.
    """
    runs_dir, out = Path(runs_dir), Path(out)
    if not runs_dir.is_dir():
        raise ConfigError(f"runs folder {runs_dir} does not exist or is not a folder")
    metric(sort_by)
    if baseline is not None:
        parse_baseline(baseline)
    paths = find_records(runs_dir)
    if not paths:
        raise DataError(f"no run records (record.json) under {runs_dir}")
    pairs = list(zip(load_records(paths), (p.parent for p in paths)))
    ensure_writable_dir(out)
    runs = runs_frame(pairs)
    frame = leaderboard_frame(runs, baseline=baseline, sort_by=sort_by, n_resamples=n_resamples)
    write_leaderboard(frame, out, command=command, sort_by=sort_by, baseline=baseline, n_resamples=n_resamples)
    write_runs(runs, out)
    page = report_html(frame, pairs, out, runs_dir=runs_dir, sort_by=sort_by, baseline=baseline,
                       n_resamples=n_resamples, command=command)
    return atomic_write_text(out / INDEX, page)
