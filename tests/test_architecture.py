"""The module boundaries of DESIGN.md: import-linter contracts, and torch-free reports."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed")
    result = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_records_and_reports_import_without_torch():
    code = ("import sys; import wsolbench.records, wsolbench.report, wsolbench.config, wsolbench.manifest; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_cli_starts_without_torch():
    """``evaluate-cams`` and ``leaderboard`` need no torch: loading the CLI (its options read the sweep presets)
    must not import it (3.4 s and 700 MB of start-up when it did)."""
    code = "import sys; import wsolbench.cli, wsolbench.bench.sweep; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
