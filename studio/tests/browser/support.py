"""What the browser tests share besides fixtures: where chromium is, the screenshots folder, the cast's
passwords."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from supervision.processes import BASE_DIR

CHROMIUM = os.environ.get("STUDIO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = BASE_DIR / "test-artifacts" / "screenshots"
ADMIN_PASSWORD = "admin-test-password"  # the root conftest.py's stack fixture bootstraps the admin with it
USER_PASSWORD = "a long browser password"
TIMEOUT_MS = 15_000
MISSING_CHROMIUM = (f"no chromium at {CHROMIUM}: the browser tests drive Debian's chromium "
                    "(apt-get install chromium; .ci/run installs it)")
# For the browser test modules' pytestmark, so a machine without chromium skips them before starting the stack.
requires_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=MISSING_CHROMIUM)


def screenshot(page, name: str) -> Path:
    """Save the whole page as test-artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
