"""Settings for the test suite: everything under one temporary data directory, shared with the worker
and inference server processes the tests start (they inherit these environment variables).

The metadata database is SQLite, or with STUDIO_TEST_DATABASE=postgres a throwaway PostgreSQL server
(tests/support/postgres.py) that the started processes share too. DATABASE_URL is never used: a
developer's own database must not be flushed by a test run."""
import os
import tempfile

from supervision.processes import free_port  # no Django imports: safe before settings exist

os.environ.setdefault("STUDIO_DATA_DIR", tempfile.mkdtemp(prefix="studio-test-"))
os.environ.setdefault("STUDIO_REDIS_PORT", str(free_port()))
os.environ.pop("REDIS_URL", None)
os.environ.pop("DATABASE_URL", None)

from project.settings import *  # noqa: E402,F403
from project.settings import DATA_DIR, DATABASES  # noqa: E402

TEST_DATABASE = os.environ.get("STUDIO_TEST_DATABASE", "sqlite")
if TEST_DATABASE == "postgres":
    import dj_database_url

    from tests.support.postgres import server_url

    DATABASES["default"] = dj_database_url.parse(server_url(), conn_max_age=0)
    # The name pytest-django creates is the one the started processes connect to (no test_ prefix).
    DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"]["NAME"]}
elif TEST_DATABASE == "sqlite":
    # One SQLite file that pytest-django creates and the worker and inference server processes open too.
    DATABASES["default"]["NAME"] = str(DATA_DIR / "test.sqlite3")
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
else:
    raise ValueError(f"STUDIO_TEST_DATABASE={TEST_DATABASE!r}: expected sqlite or postgres")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# WhiteNoise warns about a missing STATIC_ROOT on every request; tests serve no collected files.
(DATA_DIR / "staticfiles").mkdir(parents=True, exist_ok=True)
