"""What the studio writes is its user's alone: the metadata database (session keys), each database's DuckDB
file (every table), staged files and the generated secrets are 0600 in 0700 directories, also when var/ and
its subdirectories were made 0755/0644 by an older version, and for a stage directory configured elsewhere."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]


def manage(env: dict[str, str], *args: str) -> str:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("STUDIO_", "DJANGO_", "SECRET_KEY", "REDIS_URL", "DATABASE_URL"))}
    done = subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], cwd=BASE_DIR, env=environ | env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def readable_by_others(root: Path) -> list[str]:
    """Every path under root (root included) that its group or other users could read, write or enter."""
    found = []
    for path in [root, *root.rglob("*")]:
        if stat.S_IMODE(path.lstat().st_mode) & 0o077:
            found.append(f"{path.relative_to(root.parent)} {stat.filemode(path.lstat().st_mode)}")
    return found


def test_the_database_files_tables_and_stage_files_are_private(tmp_path):
    data, stages = tmp_path / "var", tmp_path / "elsewhere" / "stages"
    # As an older version left them: world-readable directories and an (empty) metadata database.
    for directory in (data, data / "duckdb", stages):
        directory.mkdir(parents=True)
        directory.chmod(0o755)
    (data / "studio.sqlite3").touch()
    (data / "studio.sqlite3").chmod(0o644)
    rows = tmp_path / "rows.csv"
    rows.write_text("prompt,completion\nwhere is my parcel?,SHIPPING\n")
    rows.chmod(0o644)  # a user's file, readable by all: its staged copy must not be
    env = {"STUDIO_DATA_DIR": str(data), "STUDIO_STAGE_DIR": str(stages)}

    manage(env, "migrate", "--noinput", "-v", "0")
    manage(env, "bootstrap")  # the DEMO database, its SUPPORT_TICKETS table loaded from a file
    out = manage(env, "sql", "--format", "json", "-e",
                 "CREATE DATABASE PRIVATE_FILES; "
                 "CREATE TABLE PRIVATE_FILES.PUBLIC.SECRETS (value VARCHAR); "
                 "INSERT INTO PRIVATE_FILES.PUBLIC.SECRETS VALUES ('only for its owner'); "
                 f"PUT 'file://{rows}' @~ AUTO_COMPRESS=FALSE;")
    assert "rows.csv" in out and "UPLOADED" in out

    assert (data / "studio.sqlite3").stat().st_size > 0
    assert {p.name for p in (data / "duckdb").glob("*.duckdb")} >= {"DEMO.duckdb", "PRIVATE_FILES.duckdb"}
    staged = [p for p in stages.rglob("rows.csv")]
    assert len(staged) == 1 and staged[0].read_text().startswith("prompt,completion")
    assert (data / "admin-password.txt").exists() and (data / "secret-key.txt").exists()
    assert readable_by_others(data) == []
    assert readable_by_others(stages) == []
