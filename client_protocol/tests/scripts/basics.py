"""connect, DDL, inserts with bindings, a query, an error, logout."""
import sys

import snowflake.connector
from connect import connect, report

database = sys.argv[1]
out = {"version": snowflake.connector.__version__}
con = connect()
cur = con.cursor()
out["session_id"] = con.session_id
out["current"] = list(cur.execute("SELECT CURRENT_USER(), CURRENT_ROLE(), CURRENT_WAREHOUSE()").fetchone())
cur.execute(f"CREATE DATABASE {database}")
cur.execute(f"USE DATABASE {database}")
out["database_after_use"] = cur.execute("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()").fetchone()
cur.execute("CREATE TABLE t (id INT, name TEXT)")
cur.execute("INSERT INTO t VALUES (1, 'one'), (2, 'two')")
out["inserted_rowcount"] = cur.rowcount
qmark = connect(paramstyle="qmark", database=database, schema="PUBLIC")
qcur = qmark.cursor()
qcur.execute("INSERT INTO t VALUES (?, ?)", (3, "it's three; DROP TABLE t"))
qcur.executemany("INSERT INTO t VALUES (?, ?)", [(4, "four"), (5, None)])
out["bound_select"] = qcur.execute("SELECT id, name FROM t WHERE id >= ? ORDER BY id", (3,)).fetchall()
qmark.close()
out["rows"] = cur.execute("SELECT id, name FROM t ORDER BY id").fetchall()
out["description"] = [(d.name, d.type_code, d.is_nullable) for d in cur.description]
try:
    cur.execute("SELECT * FROM no_such_table")
except snowflake.connector.errors.ProgrammingError as error:
    out["error"] = {"errno": error.errno, "sqlstate": error.sqlstate, "msg": error.msg}
con.close()
report(**out)
