"""Regenerate docs/screenshot.png from a running stack (`bin/start`), with a finished demo job.

    .venv/bin/pip install playwright==1.65.2
    .venv/bin/python docs/screenshot.py [http://127.0.0.1:8000/]

Uses the system's chromium (Debian: apt install chromium); the admin password comes from
var/admin-password.txt.
"""
from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parent.parent


def main(url: str = "http://127.0.0.1:8000/") -> None:
    password = (ROOT / "var" / "admin-password.txt").read_text().strip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        page.goto(url)
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", password)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_load_state()
        page.click("table a >> nth=0")  # the newest job
        page.wait_for_load_state()
        page.screenshot(path=str(ROOT / "docs" / "screenshot.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
