"""A 50,000-row result (in chunks) through fetchall, fetch_pandas_all and fetch_arrow_all, and the result
format switched by ALTER SESSION. argv: the format the session starts in (arrow or json)."""
import hashlib
import sys

import snowflake.connector
from connect import connect, report

ROWS = 50_000
QUERY = (f"SELECT SEQ4() AS n, 'row-' || SEQ4() AS label, (SEQ4() / 100)::NUMBER(12,2) AS amount, "
         f"DATEADD(second, SEQ4(), '2024-01-01'::TIMESTAMP_NTZ) AS at FROM TABLE(GENERATOR(ROWCOUNT => {ROWS})) "
         "ORDER BY n")


def result_format_of(cursor):
    """The format the server answered in (no public API tells; 4.x and 5.x keep it under these names)."""
    query_result = getattr(cursor, "_query_result", None)
    return getattr(cursor, "_query_result_format", None) or getattr(query_result, "query_result_format", None)


def checksum(rows):
    digest = hashlib.sha256()
    for n, label, amount, at in rows:
        digest.update(f"{n}|{label}|{amount}|{at.isoformat()}\n".encode())
    return digest.hexdigest()


def attempt(call):
    try:
        return call()
    except snowflake.connector.errors.Error as error:
        return {"error": type(error).__name__, "msg": error.msg}


con = connect(session_parameters={"PYTHON_CONNECTOR_QUERY_RESULT_FORMAT": sys.argv[1]})
cur = con.cursor()
out = {"version": snowflake.connector.__version__}
rows = cur.execute(QUERY).fetchall()
out["format"] = result_format_of(cur)
out["batches"] = len(cur.get_result_batches()) if hasattr(cur, "get_result_batches") else None
out["count"] = len(rows)
out["first"], out["last"] = [str(v) for v in rows[0]], [str(v) for v in rows[-1]]
out["sums"] = [sum(r[0] for r in rows), str(sum(r[2] for r in rows))]
out["checksum"] = checksum(rows)


def pandas():
    frame = cur.execute(QUERY).fetch_pandas_all()
    return {"shape": list(frame.shape), "dtypes": [str(t) for t in frame.dtypes], "n_sum": int(frame["N"].sum()),
            "amount_sum": round(float(frame["AMOUNT"].sum()), 2), "last_at": str(frame["AT"].iloc[-1]),
            "labels": int(frame["LABEL"].str.startswith("row-").sum())}


def arrow():
    table = cur.execute(QUERY).fetch_arrow_all()
    return {"rows": table.num_rows, "types": [str(field.type) for field in table.schema]}


out["pandas"] = attempt(pandas)
out["arrow"] = attempt(arrow)
cur.execute("ALTER SESSION SET PYTHON_CONNECTOR_QUERY_RESULT_FORMAT = 'JSON'")
cur.execute("SELECT 1 AS one")
out["after_set_json"] = [result_format_of(cur), cur.fetchall()]
out["pandas_after_set_json"] = attempt(lambda: cur.execute("SELECT 1 AS one").fetch_pandas_all().to_dict("list"))
cur.execute("ALTER SESSION UNSET PYTHON_CONNECTOR_QUERY_RESULT_FORMAT")
cur.execute("SELECT 1 AS one")
out["after_unset"] = [result_format_of(cur), cur.fetchall()]
con.close()
report(**out)
