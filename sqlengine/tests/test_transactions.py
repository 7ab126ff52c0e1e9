"""BEGIN / COMMIT / ROLLBACK: each statement commits as it runs. BEGIN and COMMIT are accepted, as the
tools that wrap their writes in them (dbt's seeds) need; ROLLBACK is refused rather than claim to undo."""
from __future__ import annotations

import pytest

from errors import UserError
from sqlengine.executor import Executor


def test_begin_and_commit_around_writes_keep_the_rows(low_account):
    results = Executor(low_account.admin).execute(
        "BEGIN; INSERT INTO pub.s.sink VALUES (1, 'one'); COMMIT; BEGIN TRANSACTION; COMMIT WORK")
    assert [r.rows for r in results] == [[("Statement executed successfully.",)], [(1,)],
                                         [("Statement executed successfully.",)]] + [
                                            [("Statement executed successfully.",)]] * 2
    assert Executor(low_account.admin).execute("SELECT id, name FROM pub.s.sink")[-1].rows == [(1, "one")]


def test_rollback_is_refused_because_the_writes_are_already_committed(low_account):
    with pytest.raises(UserError) as caught:
        Executor(low_account.admin).execute("BEGIN; INSERT INTO pub.s.sink VALUES (2, 'two'); ROLLBACK")
    assert caught.value.message.startswith("ROLLBACK is not supported here: each statement is committed when it runs")
    assert caught.value.sqlstate == "0A000"
    assert Executor(low_account.admin).execute("SELECT id, name FROM pub.s.sink")[-1].rows == [(2, "two")]
