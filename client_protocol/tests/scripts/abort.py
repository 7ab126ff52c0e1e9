"""Abort a running asynchronous query with cursor.abort_query()."""
import time

import snowflake.connector
from connect import connect, report

SLOW = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 1000000) SELECT COUNT(*) FROM r"
con = connect()
cur = con.cursor()
cur.execute_async(SLOW)
query_id = cur.sfqid
out = {"running": con.get_query_status(query_id).name, "aborted": cur.abort_query(query_id)}
time.sleep(0.5)
out["status"] = con.get_query_status(query_id).name
try:
    cur.get_results_from_sfqid(query_id)
    cur.fetchall()
    out["result"] = "rows"
except snowflake.connector.errors.Error as error:
    out["result"] = {"errno": error.errno, "msg": error.msg}
con.close()
report(**out)
