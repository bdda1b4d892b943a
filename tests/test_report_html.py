"""wsolbench report: the HTML page of a real bench, parsed (leaderboard, images, gallery) and rendered in headless
Chromium (every image loads; nothing overflows a phone-width screen outside the scroll wrappers); the predicted
box at the chosen threshold on a hand-made map."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from wsolbench.cli import cli
from wsolbench.records import load_gallery, load_outcomes
from wsolbench.report.gallery import PRED_COLOR, draw_tile, predicted_boxes, scale_of, tile_info

TINY = ["--preset", "smoke", "--threads", "1", "--set", "data.synthetic.n_train=96", "--set",
        "data.synthetic.n_val=40", "--set", "data.synthetic.n_test=40", "--set", "data.synthetic.num_classes=3",
        "--set", "model.width=8", "--set", "optim.epochs=1", "--set", "eval.gallery=5",
        "--set", "eval.gallery_extremes=2", "--no-progress"]
SAMPLE, EXTREMES = 5, 2


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


class Page(HTMLParser):
    """What the tests read from the page: tables (class, cell texts and classes) by section, <img> sources,
    gallery tiles (data-setting, data-image, data-role), scripts and external references."""

    def __init__(self) -> None:
        super().__init__()
        self.section: str | None = None
        self.tables: list[dict] = []
        self.images: list[str] = []
        self.tiles: list[dict[str, str]] = []
        self.scripts = 0
        self.urls: list[str] = []
        self._cell: list[str] | None = None
        self._cell_class = ""
        self._depth = 0  # nesting of tables: cells of the outermost open table only
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            self.section = a.get("id")
        elif tag == "table":
            self._depth += 1
            if self._depth == 1:
                self.tables.append({"section": self.section, "class": a.get("class", ""), "head": [], "rows": []})
        elif tag == "thead" and self._depth == 1:
            self._in_head = True
        elif tag == "tr" and self._depth == 1:
            self._row: list[tuple[str, str]] = []
        elif tag in ("td", "th") and self._depth == 1:
            self._cell, self._cell_class = [], a.get("class", "")
        elif tag == "img":
            self.images.append(a["src"])
        elif tag == "figure" and "tile" in a.get("class", "").split():
            self.tiles.append({k: a.get(f"data-{k}", "") for k in ("setting", "image", "role")})
        elif tag == "script":
            self.scripts += 1
        for key in ("src", "href"):
            if key in a:
                self.urls.append(a[key])

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._depth == 1:
            self._row.append((" ".join("".join(self._cell).split()), self._cell_class))
            self._cell = None
        elif tag == "tr" and self._depth == 1:
            table = self.tables[-1]
            if self._in_head:
                table["head"] = [text for text, _ in self._row]
            else:
                table["rows"].append(self._row)
        elif tag == "thead":
            self._in_head = False
        elif tag == "table":
            self._depth -= 1

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    result = invoke("bench", *TINY, "--objective", "ce,kl_uniform", "--output-dir", runs)
    assert result.exit_code == 0, result.output
    out = runs.parent / "report"
    result = invoke("report", runs, "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "index.html").is_file()
    return runs, out


def _numbers(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"[-+]?\d+(?:\.\d+)?", text)]


@pytest.mark.slow
def test_the_leaderboard_table_is_the_leaderboard_csv_row_by_row(report):
    runs, out = report
    csv = pd.read_csv(runs / "leaderboard.csv")  # written by the bench, not by the report
    page = parse(out / "index.html")
    boards = [t for t in page.tables if t["section"] == "leaderboard"]
    assert len(boards) == 1
    board = boards[0]
    assert len(board["rows"]) == len(csv) == 2
    keys = {"top-1": "top1", "MaxBoxAccV2": "MaxBoxAccV2", "GT-known Loc": "GT-known Loc", "Top-1 Loc": "Top-1 Loc",
            "PxAP": "PxAP", "entropy_norm": "entropy_norm"}
    assert board["head"][0] == "setting" and set(keys) <= set(board["head"])
    for (_, expected), row in zip(csv.iterrows(), board["rows"]):
        cells = {head: text for head, (text, _) in zip(board["head"], row)}
        assert cells["setting"] == f"{expected['method']} + {expected['objective']}"
        for column, key in keys.items():
            digits = 4 if key == "entropy_norm" else 2
            values = _numbers(cells[column])
            assert values[0] == pytest.approx(expected[key], abs=0.6 * 10 ** -digits), column
            if not math.isnan(expected[f"{key}_std"]):
                assert values[1] == pytest.approx(expected[f"{key}_std"], abs=0.6 * 10 ** -digits), column
        delta = cells["Δ MaxBoxAccV2 vs ce"]
        if expected["objective"] == "ce":
            assert delta == "baseline"
        else:
            diff, low, high = _numbers(delta)[:3]
            for value, column in ((diff, "_diff"), (low, "_low"), (high, "_high")):
                assert value == pytest.approx(expected[f"MaxBoxAccV2{column}"], abs=0.006)
        assert cells["seeds"] == str(expected["seeds"])
    # the best mean of a column is bold (class "best"), and only it (none where every row ties)
    for column, key in (("MaxBoxAccV2", "MaxBoxAccV2"), ("top-1", "top1"), ("PxAP", "PxAP")):
        position = board["head"].index(column)
        bold = [i for i, row in enumerate(board["rows"]) if "best" in row[position][1].split()]
        values = csv[key].round(2)
        best = [i for i, v in enumerate(values) if v == values.max()]
        assert bold == (best if len(best) < len(values) else []), column


@pytest.mark.slow
def test_every_image_is_a_png_beside_the_page_and_nothing_is_fetched_from_elsewhere(report):
    _, out = report
    page = parse(out / "index.html")
    assert page.images and page.scripts == 0
    for src in page.images:
        assert not re.match(r"^[a-z]+:|^/", src), src  # relative, no scheme: opens from disk
        path = out / src
        assert path.is_file(), src
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", src
    assert {"entropy_vs_accuracy.png", "threshold_sweeps.png"} <= set(page.images)
    assert not [u for u in page.urls if re.match(r"^[a-z]+://", u)]
    text = (out / "index.html").read_text(encoding="utf-8")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in text


@pytest.mark.slow
def test_the_gallery_shows_the_same_sample_in_every_setting_and_each_settings_true_extremes(report):
    runs, out = report
    page = parse(out / "index.html")
    csv = pd.read_csv(runs / "leaderboard.csv")
    settings = [f"{m} + {o}" for m, o in zip(csv["method"], csv["objective"])]
    samples = [t for t in page.tiles if t["role"] == "sample"]
    by_setting = {s: [t["image"] for t in samples if t["setting"] == s] for s in settings}
    assert set(t["setting"] for t in samples) == set(settings)
    first = by_setting[settings[0]]
    assert len(first) == SAMPLE and len(set(first)) == SAMPLE
    assert all(ids == first for ids in by_setting.values())  # the same images, in the same columns
    assert len(samples) == len(settings) * SAMPLE  # one tile per (setting, sample image)
    assert [t["image"] for t in page.tiles if t["role"] == "image"] == first  # the plain-image row above them

    for run_dir in sorted(p.parent for p in runs.glob("*/record.json")):
        record = json.loads((run_dir / "record.json").read_text())
        setting = f"{record['summary']['method']} + {record['summary']['objective']}"
        gallery = load_gallery(run_dir)
        assert sorted(g["image_id"] for g in gallery if g["role"] == "sample") == sorted(first)
        # best and worst: the run's extremes over every test image by the protocol's per-image IoU
        outcomes = load_outcomes(run_dir, "test")
        ranked = sorted(zip(map(str, outcomes["boxes.image_ids"]), outcomes["loc.iou"]), key=lambda t: (-t[1], t[0]))
        shown = {role: [t["image"] for t in page.tiles if t["setting"] == setting and t["role"] == role]
                 for role in ("best", "worst")}
        assert shown["best"] == [i for i, _ in ranked[:EXTREMES]]
        assert shown["worst"] == [i for i, _ in ranked[::-1][:EXTREMES]]
        # the drawn boxes' IoU is the evaluation's own at the val-chosen threshold (the maps are kept at
        # 8 bits from a second forward pass, which may move a pixel by one level: nearly every image agrees)
        iou = dict(zip(map(str, outcomes["boxes.image_ids"]), outcomes["loc.iou"]))
        threshold = record["selection"]["threshold"]["threshold"]
        agree = [abs(tile_info(g).iou - iou[g["image_id"]]) < 1e-9 for g in gallery]
        assert all(g["threshold"] == pytest.approx(threshold) for g in gallery)
        assert np.mean(agree) >= 0.9


def _hand_made_map() -> np.ndarray:
    """16 x 16: a strong small blob A (rows 2-5, cols 3-8, 0.9) and a weak large blob B (rows 9-14, cols 1-10, 0.5)."""
    scoremap = np.zeros((16, 16))
    scoremap[2:6, 3:9] = 0.9
    scoremap[9:15, 1:11] = 0.5
    return scoremap


def test_the_predicted_box_is_the_largest_contour_at_the_given_threshold():
    scoremap = _hand_made_map()
    # 8 bits: A = floor(0.9 * 255) = 229, B = 127; cut = int(t * 229): t = 0.4 -> 91 (A and B foreground, B is
    # larger), t = 0.6 -> 137 (only A). Boxes are boundingRect's (x, y, x + w, y + h) clipped to 15, the
    # protocol's convention.
    assert predicted_boxes(scoremap, 0.4).tolist() == [[1, 9, 11, 15]]
    assert predicted_boxes(scoremap, 0.6).tolist() == [[3, 2, 9, 6]]
    assert sorted(predicted_boxes(scoremap, 0.4, contours="all").tolist()) == [[1, 9, 11, 15], [3, 2, 9, 6]]
    assert predicted_boxes(scoremap, 0.99).tolist() == [[3, 2, 9, 6]]  # cut int(0.99 * 229) = 226 < 229
    assert predicted_boxes(0 * scoremap, 0.5).tolist() == [[0, 0, 0, 0]]  # no foreground: the protocol's empty box
    assert predicted_boxes(scoremap, math.nan).shape == (0, 4)  # no threshold chosen: nothing drawn


def test_a_tile_draws_the_box_of_its_own_threshold():
    scoremap = _hand_made_map()
    k = scale_of(16)
    for threshold, (x0, y0, x1, y1), (ox0, oy0, _, _) in ((0.4, (1, 9, 11, 15), (3, 2, 9, 6)),
                                                          (0.6, (3, 2, 9, 6), (1, 9, 11, 15))):
        item = {"image_id": "a", "role": "sample", "label": 0, "predicted": 0, "map": scoremap.astype(np.float32),
                "image": np.zeros((16, 16, 3), np.uint8), "boxes": np.array([[12, 0, 15, 3]]),
                "threshold": threshold}
        info = tile_info(item)
        tile = draw_tile(item, info.boxes)
        assert tile.shape == (16 * k, 16 * k, 3)
        white = np.all(tile == PRED_COLOR, axis=2)
        # the predicted box's top edge runs along row y0 * k from x0 * k to (x1 + 1) * k - 1; the other blob's
        # top-left corner is not drawn
        assert white[y0 * k, x0 * k + 2:(x1 + 1) * k - 3].all()
        assert not white[oy0 * k, ox0 * k + 2:ox0 * k + 6].any()
        assert info.iou == pytest.approx(0.0)  # the ground truth (top right) touches neither blob


def test_a_bad_runs_folder_is_a_one_line_error(tmp_path):
    result = invoke("report", tmp_path / "missing", "--out", tmp_path / "r")
    assert result.exit_code == 2 and result.output.strip().count("\n") == 0
    assert result.output.startswith("error: runs folder")
    (tmp_path / "empty").mkdir()
    result = invoke("report", tmp_path / "empty", "--out", tmp_path / "r")
    assert result.exit_code == 2 and result.output.startswith("error: no run records")


@pytest.mark.slow
def test_runs_without_a_gallery_get_a_note_not_a_crash(report, tmp_path):
    runs, _ = report
    copy = tmp_path / "runs"
    shutil.copytree(runs, copy, ignore=shutil.ignore_patterns("*.sqlite", "model.pt", "data"))
    victim = sorted(copy.glob("*kl_uniform*/gallery-test.npz"))[0]
    victim.unlink()
    result = invoke("report", copy, "--out", tmp_path / "r", "--bootstrap", "0")
    assert result.exit_code == 0, result.output
    page = parse(tmp_path / "r" / "index.html")
    assert {t["setting"] for t in page.tiles if t["role"] == "sample"} == {"cam + ce"}
    assert "no gallery: its runs kept no score maps" in (tmp_path / "r" / "index.html").read_text()


# ---------------------------------------------------------------- headless Chromium

# Injected into a copy of the page (the page itself has no script): after the load event (every image has
# loaded or failed by then), open every <details>, then report each image's naturalWidth, the leaderboard
# tables' rows, and every element outside a scroll wrapper that reaches past the viewport's width.
PROBE = """<script>
window.addEventListener("load", function () {
  document.querySelectorAll("details").forEach(function (d) { d.open = true; });
  var width = document.documentElement.clientWidth, over = [];
  document.querySelectorAll("body *").forEach(function (el) {
    if (el.parentElement && el.parentElement.closest(".scroll")) return;  // scrolls inside its wrapper
    var r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) return;
    if (r.right > width + 0.5 || r.left < -0.5)
      over.push(el.tagName + "." + el.className + " " + r.left + ".." + r.right);
  });
  var result = {width: width, innerWidth: window.innerWidth, scrollWidth: document.documentElement.scrollWidth,
    images: Array.prototype.map.call(document.images, function (i) {
      return [i.getAttribute("src"), i.complete, i.naturalWidth, i.getBoundingClientRect().width]; }),
    boards: Array.prototype.map.call(document.querySelectorAll("#leaderboard table"), function (t) {
      return t.rows.length; }),
    overflow: over};
  parent.postMessage(JSON.stringify(result), "*");
});
</script>"""

# The page in an iframe of the width under test: headless Chromium keeps its window at least 500 px wide,
# but an iframe's document lays out at the iframe's width, as a phone's does with the viewport meta tag.
HARNESS = """<!DOCTYPE html><html><body style="margin:0">
<iframe src="probe.html" style="border:0;width:{width}px;height:900px"></iframe><pre id="result"></pre>
<script>window.addEventListener("message", function (e) {{
  document.getElementById("result").textContent = e.data; }});</script></body></html>"""


def chromium_probe(out: Path, width: int, tmp_path: Path) -> dict:
    """Render ``out/index.html`` at ``width`` CSS pixels in headless Chromium; the probe's measurements."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    page = (out / "index.html").read_text(encoding="utf-8")
    (out / "probe.html").write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    harness = out / f"harness-{width}.html"
    harness.write_text(HARNESS.format(width=width), encoding="utf-8")
    command = [binary, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
               f"--user-data-dir={tmp_path / f'profile-{width}'}", "--window-size=1400,1000",
               "--virtual-time-budget=20000", "--dump-dom", harness.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="result">(.*?)</pre>', done.stdout, re.S)
    assert found and found.group(1), f"no probe result from chromium (rc {done.returncode}): {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="no chromium binary (Debian: apt-get install chromium)")
@pytest.mark.parametrize("width", [1280, 390])
def test_chromium_loads_every_image_and_nothing_overflows_the_screen(report, width, tmp_path):
    _, out = report
    expected = parse(out / "index.html").images
    probe = chromium_probe(out, width, tmp_path)
    assert probe["innerWidth"] == width  # laid out at the width under test
    assert [src for src, *_ in probe["images"]] == expected
    broken = [src for src, complete, natural, _ in probe["images"] if not (complete and natural > 0)]
    assert not broken, broken
    assert all(shown > 0 for *_, shown in probe["images"])
    assert probe["boards"] == [3]  # the leaderboard: header and two settings
    assert probe["scrollWidth"] <= probe["width"], probe["overflow"][:10]
    assert probe["overflow"] == []
