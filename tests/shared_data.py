"""Where the real data of ``shared/data`` lives (read-only, never copied into the project)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("LAZYMETA_SHARED_DATA")
                   or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def require_shared(relative_path: str) -> Path:
    """Path of a file in the shared data; skips the test, naming the path, when it is absent."""
    path = SHARED_DATA / relative_path
    if not path.exists():
        pytest.skip(f"needs the real data file {path} (set LAZYMETA_SHARED_DATA to the shared/data folder)")
    return path
