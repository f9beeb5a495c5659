"""Shared fixtures: a small sample lake, an engine over it, the lakecap CLI."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import lakecap

REPO = Path(__file__).resolve().parents[2]
LAKE_ROWS = 48


@pytest.fixture(scope="session")
def lake(tmp_path_factory) -> Path:
    """lakecap's sample lake: real photos, generated images, known defects."""
    d = tmp_path_factory.mktemp("lake")
    report = lakecap.sample_lake(d, rows=LAKE_ROWS, seed=7)
    assert report["rows"] == LAKE_ROWS
    return d


@pytest.fixture()
def engine(lake) -> lakecap.Engine:
    eng = lakecap.Engine(ignore_env=True, progress=False)
    eng.register("lake", lake)
    return eng


@pytest.fixture(scope="session")
def cli() -> str:
    """The `lakecap` binary: $LAKECAP_BIN, else the cargo build's."""
    candidates = [os.environ.get("LAKECAP_BIN"), shutil.which("lakecap")]
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    candidates.append(str(target / "debug" / "lakecap"))
    for c in candidates:
        if c and Path(c).is_file():
            return c
    if os.environ.get("LAKECAP_REQUIRE_CLI"):
        pytest.fail("LAKECAP_REQUIRE_CLI is set but no lakecap binary was found")
    pytest.skip("no lakecap binary: set LAKECAP_BIN or cargo build")


def run_cli(cli: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [cli, "--no-progress", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )
