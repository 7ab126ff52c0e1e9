"""dbt-snowflake, unchanged in its own environment (.venv-clients/dbt), builds a small project against the
studio: `dbt seed` loads a CSV, `dbt run` builds a table model over it, `dbt test` runs its generic tests."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from client_protocol.tests.conftest import PASSWORD, ROOT

PROJECT = Path(__file__).parent / "dbt_project"
SCHEMA = "ANALYTICS"  # not there yet: dbt creates it


def _dbt_executable() -> Path:
    dbt = ROOT / ".venv-clients" / "dbt" / "bin" / "dbt"
    if not dbt.exists():
        pytest.fail(f"{dbt} is missing: run bin/install --test, which installs Snowflake's clients and dbt.")
    return dbt


def _dbt(studio, project: Path, database: str, *command: str, exit_code: int = 0) -> dict:
    """Run one dbt command in the project; returns its run_results.json (dbt writes it even on failure)."""
    environment = {**os.environ, "STUDIO_HOST": studio.host, "STUDIO_PORT": str(studio.port), "STUDIO_USER": "admin",
                   "STUDIO_PASSWORD": PASSWORD, "STUDIO_DATABASE": database, "STUDIO_SCHEMA": SCHEMA,
                   "DBT_PROFILES_DIR": str(project),
                   # no usage pings to dbt Labs, no version check against PyPI: the machine may be offline
                   "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_VERSION_CHECK": "false"}
    environment.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run([str(_dbt_executable()), *command, "--no-use-colors"], capture_output=True, text=True,
                          timeout=300, env=environment, cwd=str(project))
    log = project / "logs" / "dbt.log"
    if done.returncode != exit_code:
        raise AssertionError(f"dbt {' '.join(command)} exited {done.returncode}:\n{done.stdout[-6000:]}\n"
                             f"{done.stderr[-3000:]}\n--- logs/dbt.log ---\n"
                             f"{log.read_text()[-8000:] if log.exists() else '(none)'}")
    return json.loads((project / "target" / "run_results.json").read_text())


def _statuses(results: dict) -> dict[str, str]:
    """Each node's status by its id; a test's id without the hash dbt appends to it."""
    found = {}
    for result in results["results"]:
        node = result["unique_id"]
        found[node.rsplit(".", 1)[0] if node.startswith("test.") else node] = result["status"]
    return found


TESTS = ["test.studio_smoke.accepted_values_fruits_colour__red__yellow__green",
         "test.studio_smoke.accepted_values_red_fruits_name__APPLE__CHERRY", "test.studio_smoke.not_null_fruits_id",
         "test.studio_smoke.not_null_red_fruits_id", "test.studio_smoke.unique_fruits_id",
         "test.studio_smoke.unique_red_fruits_id"]


def test_dbt_seeds_runs_and_tests_a_project_in_a_schema_it_creates(studio, tmp_path):
    from sqlengine.executor import Executor
    from tests.support.cortex import admin_session

    database = f"DBT_{uuid.uuid4().hex[:6].upper()}"
    Executor(admin_session()).execute(f"CREATE DATABASE {database}")
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project)

    assert _statuses(_dbt(studio, project, database, "seed")) == {"seed.studio_smoke.fruits": "success"}
    assert _statuses(_dbt(studio, project, database, "run")) == {"model.studio_smoke.red_fruits": "success"}
    assert _statuses(_dbt(studio, project, database, "test")) == dict.fromkeys(TESTS, "pass")

    session = admin_session(database=database, schema=SCHEMA)
    fruits = [(1, "apple", "red", 0.5), (2, "banana", "yellow", 0.25), (3, "cherry", "red", 3.0),
              (4, "lime", "green", 0.4)]
    assert Executor(session).execute("SELECT id, name, colour, price FROM fruits ORDER BY id")[-1].rows == fruits
    red = Executor(session).execute("SELECT id, name, price_of_two FROM red_fruits ORDER BY id")[-1].rows
    assert red == [(1, "APPLE", 1.0), (3, "CHERRY", 6.0)]

    # A second build finds everything in place (SHOW OBJECTS lists it) and replaces rather than appends.
    rebuilt = _statuses(_dbt(studio, project, database, "build"))
    assert rebuilt == {"seed.studio_smoke.fruits": "success", "model.studio_smoke.red_fruits": "success",
                       **dict.fromkeys(TESTS, "pass")}
    assert Executor(session).execute("SELECT id, name, colour, price FROM fruits ORDER BY id")[-1].rows == fruits

    # dbt's tests read the data: a duplicate id and an unexpected colour fail exactly the tests on them.
    Executor(session).execute("INSERT INTO fruits VALUES (4, 'plum', 'purple', 1.0)")
    failing = _statuses(_dbt(studio, project, database, "test", "--select", "fruits", exit_code=1))
    assert failing == {"test.studio_smoke.accepted_values_fruits_colour__red__yellow__green": "fail",
                       "test.studio_smoke.not_null_fruits_id": "pass", "test.studio_smoke.unique_fruits_id": "fail"}
