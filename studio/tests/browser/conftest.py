"""Browser tests: Playwright driving Debian's chromium (never a browser of Playwright's own download)
against the web app, with the stack's real Redis, worker and inference server behind it.

The web app runs in this process on Django's live-server thread, over the committed database that the
worker and inference server processes share (conftest.py's live_db and stack): pytest-django's
live_server fixture would flush every table after each test, the stack's account included. Each test
logs in through the login form in its own browser context and saves screenshots of the pages it
visits under test-artifacts/screenshots/ (git-ignored).
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from studio.tests.browser.support import (ADMIN_PASSWORD, CHROMIUM, MISSING_CHROMIUM, TIMEOUT_MS, USER_PASSWORD,
                                          screenshot)
from tests.support.web import serve_web_app


@pytest.fixture(scope="session")
def chromium() -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.skip(MISSING_CHROMIUM)
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in requirements-test.txt")
    # Playwright's sync API keeps an asyncio loop running on this thread, so Django would refuse the ORM
    # calls the tests make between browser steps (SynchronousOnlyOperation). They are plain blocking calls
    # from the test's own thread, which is what that guard exists to allow.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_api.sync_playwright().start()
    # --no-sandbox: CI runs as root, where chromium's sandbox refuses to start.
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    try:
        yield browser
    finally:
        browser.close()
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="session")
def web_url(live_db) -> Iterator[str]:
    """The web app over HTTP on the committed database, for the whole session."""
    with serve_web_app() as url:
        yield url


@dataclass
class Cast:
    """Users made for one test, with unique names: ana's role may fine-tune, nina's may not."""
    ana: str
    ana_role: str
    nina: str
    nina_role: str


@pytest.fixture
def cast(stack) -> Cast:
    from tests.support.cortex import admin_session, sql_value

    suffix = uuid.uuid4().hex[:6]
    cast = Cast(f"ana_{suffix}", f"UI_ANALYST_{suffix}".upper(), f"nina_{suffix}", f"UI_NOBODY_{suffix}".upper())
    admin = admin_session()
    for statement in (f"CREATE ROLE {cast.ana_role}", f"CREATE ROLE {cast.nina_role}",
                      f"GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE {cast.ana_role}",
                      f"CREATE USER {cast.ana} PASSWORD = '{USER_PASSWORD}' DEFAULT_ROLE = {cast.ana_role}",
                      f"GRANT ROLE {cast.ana_role} TO USER {cast.ana}",
                      f"CREATE USER {cast.nina} PASSWORD = '{USER_PASSWORD}' DEFAULT_ROLE = {cast.nina_role}",
                      f"GRANT ROLE {cast.nina_role} TO USER {cast.nina}"):
        sql_value(admin, statement)
    return cast


@pytest.fixture
def login(chromium, web_url, stack) -> Iterator[Callable]:
    """login(username, password=…) -> a Playwright page signed in through the login form."""
    contexts = []

    def open_as(username: str = "admin", password: str | None = None):
        context = chromium.new_context(base_url=web_url, viewport={"width": 1280, "height": 860})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.goto("/accounts/login/")
        if not contexts[1:]:
            screenshot(page, "login")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password or (ADMIN_PASSWORD if username == "admin" else USER_PASSWORD))
        page.click("button[type=submit]")
        page.wait_for_selector("nav.sidenav")
        return page

    yield open_as
    for context in contexts:
        context.close()
