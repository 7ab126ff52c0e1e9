"""Settings for the test suite: everything under one temporary data directory, shared with the worker
and inference server processes the tests start (they inherit these environment variables)."""
import os
import tempfile

from supervision.processes import free_port  # no Django imports: safe before settings exist

os.environ.setdefault("STUDIO_DATA_DIR", tempfile.mkdtemp(prefix="studio-test-"))
os.environ.setdefault("STUDIO_REDIS_PORT", str(free_port()))
os.environ.pop("REDIS_URL", None)
os.environ.pop("DATABASE_URL", None)

from project.settings import *  # noqa: E402,F403
from project.settings import DATA_DIR, DATABASES  # noqa: E402

# One SQLite file that pytest-django creates and the worker and inference server processes open too.
DATABASES["default"]["NAME"] = str(DATA_DIR / "test.sqlite3")
DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# WhiteNoise warns about a missing STATIC_ROOT on every request; tests serve no collected files.
(DATA_DIR / "staticfiles").mkdir(parents=True, exist_ok=True)
