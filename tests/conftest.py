"""Suite-wide test settings."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory):
    """Ground-truth caches (``wsolbench.scoremaps.cache``) of the whole suite go to a temporary folder, never to
    the user's ``~/.cache/wsolbench``."""
    before = os.environ.get("WSOLBENCH_CACHE_DIR")
    os.environ["WSOLBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("wsolbench-cache"))
    yield
    if before is None:
        os.environ.pop("WSOLBENCH_CACHE_DIR", None)
    else:
        os.environ["WSOLBENCH_CACHE_DIR"] = before
