"""``data show``: a PNG grid with boxes and masks drawn, written atomically."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner
from miniature import make_voc

from wsolbench.cli import cli
from wsolbench.data.show import BOX_RGB, render_grid
from wsolbench.data.sources import prepare
from wsolbench.errors import ConfigError


@pytest.fixture()
def voc_manifest(tmp_path: Path) -> Path:
    raw = make_voc(tmp_path / "raw")
    return prepare("voc", root=raw["root"], out=tmp_path / "m", options={"val_size": 2}).directory


def test_grid_png(voc_manifest: Path, tmp_path: Path) -> None:
    out = render_grid(voc_manifest, out=tmp_path / "g" / "grid.png", n=3, split="test", tile=64)
    image = cv2.imread(str(out))
    assert image is not None
    # 2 test images: one row of two 64-px tiles (+ caption strip), 4-px gaps
    assert image.shape == (4 + 64 + 18 + 4, 4 + 2 * (64 + 4), 3)
    b, g, r = image[:, :, 0].astype(int), image[:, :, 1].astype(int), image[:, :, 2].astype(int)
    assert ((r == BOX_RGB[0]) & (g == BOX_RGB[1]) & (b == BOX_RGB[2])).any()  # a box was drawn
    assert ((g > r + 40) & (g > b + 40)).any()  # the mask's foreground is tinted green
    assert [p.name for p in out.parent.iterdir()] == ["grid.png"]  # no temporary file left


def test_cli_default_split_and_bad_image(voc_manifest: Path, tmp_path: Path) -> None:
    out = tmp_path / "grid.png"
    for path in (tmp_path / "raw").rglob("JPEGImages/*.jpg"):
        path.write_bytes(b"broken")  # unreadable images become grey tiles, not a crash
    result = CliRunner().invoke(cli, ["data", "show", str(voc_manifest), "--out", str(out), "--n", "16",
                                      "--seed", "1"], obj={})
    assert result.exit_code == 0, result.output
    assert out.is_file() and cv2.imread(str(out)).shape[2] == 3
    with pytest.raises(ConfigError, match="must be a .png"):
        render_grid(voc_manifest, out=tmp_path / "grid.jpg")
