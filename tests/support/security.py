"""The security review's cast: a low-privilege user and a database it must never see.

Role LOW has USAGE on database PUB and schema PUB.S, SELECT on PUB.S.X, SNOWFLAKE.CORTEX_USER and
CREATE MODEL on PUB.S, and nothing on database ACC. ACC.S.T holds the secret rows; ACC.S.SECRETSTAGE
and ACC's table stage @ACC.S.%T hold admin's files. The user `low` holds only LOW (its default role)
and has an API token. Every test that tries to walk around a grant builds this account and asserts
that SECRET (the marker in every secret row, file and name) never comes back.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model

from access import tokens
from access.bootstrap import bootstrap
from access.models import Role, UserProfile
from access.session import Session
from catalog import stage_files, stages
from sqlengine.executor import Executor
from tests.support.cortex import admin_session

SECRET = "TOPSECRET"  # in every secret row, staged file and secret object name
SECRET_ROWS = [(1, f"{SECRET}-alpha", "salary 250000"), (2, f"{SECRET}-beta", "salary 310000")]
PUBLIC_ROWS = [(1, "public one"), (2, "public two")]
SECRET_FILE = f"{SECRET}_payroll.csv"
SECRET_FILE_BODY = f"id,name\n1,{SECRET}-in-a-file\n"
# What admin staged, stage by stage: each stage's files and their bytes (see staged_files).
STAGED_FILES = {"@ACC.S.SECRETSTAGE": {SECRET_FILE: SECRET_FILE_BODY.encode()},
                "@ACC.S.%T": {SECRET_FILE: SECRET_FILE_BODY.encode()}}


@dataclass
class LowAccount:
    admin: Session
    user: object
    token: str

    def session(self, **kw) -> Session:
        """A fresh session as `low` with role LOW (what `manage.py sql --user low --role low` opens)."""
        kw.setdefault("warehouse", "COMPUTE_WH")
        return Session(user=self.user, role="LOW", **kw)

    def sql(self, text: str, **kw):
        """Every result of `text` run as LOW, in one session, as `manage.py sql` runs it (PUT and GET
        included)."""
        return Executor(self.session(**kw), local_files=True).execute(text)


def build(tmp_path: Path) -> LowAccount:
    bootstrap(password="admin-test-password", demo=False)
    admin = admin_session()
    run = Executor(admin).execute
    run("CREATE DATABASE pub")
    run("CREATE SCHEMA pub.s")
    run("CREATE TABLE pub.s.x (id INT, note VARCHAR)")
    run("INSERT INTO pub.s.x VALUES " + ", ".join(f"({i}, '{n}')" for i, n in PUBLIC_ROWS))
    run("CREATE TABLE pub.s.sink (id INT, name VARCHAR)")
    run("CREATE DATABASE acc")
    run("CREATE SCHEMA acc.s")
    run("CREATE TABLE acc.s.t (id INT, name VARCHAR, detail VARCHAR)")
    run("INSERT INTO acc.s.t VALUES " + ", ".join(f"({i}, '{n}', '{d}')" for i, n, d in SECRET_ROWS))
    run(f"CREATE TABLE acc.s.{SECRET}_names (name VARCHAR)")
    run("CREATE STAGE acc.s.secretstage")
    for ref, files in STAGED_FILES.items():
        location = stages.resolve(stages.StageRef.parse(ref), admin, stages.WRITE)
        for name, body in files.items():
            stage_files.store_stream(location, name, [body])
    run("CREATE ROLE low")
    run("GRANT USAGE ON DATABASE pub TO ROLE low")
    run("GRANT USAGE ON SCHEMA pub.s TO ROLE low")
    run("GRANT SELECT ON TABLE pub.s.x TO ROLE low")
    run("GRANT INSERT, SELECT ON TABLE pub.s.sink TO ROLE low")
    run("GRANT CREATE MODEL ON SCHEMA pub.s TO ROLE low")
    run("GRANT DATABASE ROLE SNOWFLAKE.CORTEX_USER TO ROLE low")
    user = get_user_model().objects.create_user(username="low", password="low-password")
    run("GRANT ROLE low TO USER low")
    UserProfile.objects.update_or_create(user=user, defaults={"default_role": "LOW"})
    assert Role.objects.filter(name="LOW", users=user).exists()
    _token, secret = tokens.create_token(user, "security-tests")
    return LowAccount(admin=admin, user=user, token=secret)


def staged_files(account: LowAccount) -> dict[str, dict[str, bytes]]:
    """Every file in admin's two stages with its bytes, read as admin: STAGED_FILES until LOW changes one."""
    found = {}
    for ref in STAGED_FILES:
        location = stages.resolve(stages.StageRef.parse(ref), account.admin, stages.READ)
        found[ref] = {f.relative: f.path.read_bytes() for f in stage_files.list_files(location)}
    return found


def leaks(text: object) -> bool:
    """Whether anything shown to LOW carries a secret: a row, a file, a name or a server path."""
    from django.conf import settings

    shown = str(text)
    return SECRET in shown or "salary" in shown or str(settings.DATA_DIR) in shown
