"""`scripts/ui_check.py`: MLflow's UI on a store the real `airush` CLI made, checked in headless Chromium."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium: apt-get install -y chromium")
@pytest.mark.skipif(
    importlib.util.find_spec("playwright") is None, reason="needs Playwright: pip install playwright"
)
def test_the_ui_shows_runs_models_datasets_and_plots(tmp_path):
    out = tmp_path / "ui_check"
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "ui_check.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1500,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    checks = json.loads((out / "ui_check.json").read_text())
    assert checks and all(check["ok"] for check in checks)
    what = " ".join(check["what"] for check in checks)
    for expected in ("runs table", "metric columns", "logged model", "Dataset column", "plot", "children"):
        assert expected in what, expected
    for check in checks:
        if check["screenshot"]:
            assert (out / check["screenshot"]).stat().st_size > 10_000, check
