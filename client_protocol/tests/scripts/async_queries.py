"""Asynchronous queries: execute_async, status, results, and aborting a running one."""
import time

import snowflake.connector
from connect import connect, report

out = {"version": snowflake.connector.__version__}
con = connect()
cur = con.cursor()
cur.execute_async("SELECT 6 * 7 AS answer")
query_id = cur.sfqid
while con.is_still_running(con.get_query_status(query_id)):
    time.sleep(0.2)
out["status"] = con.get_query_status(query_id).name
cur.get_results_from_sfqid(query_id)
out["rows"] = cur.fetchall()
failing = con.cursor()
failing.execute_async("SELECT * FROM NO_SUCH_DB.PUBLIC.NO_SUCH_TABLE")
while con.is_still_running(con.get_query_status(failing.sfqid)):
    time.sleep(0.2)
try:
    con.get_query_status_throw_if_error(failing.sfqid)
except snowflake.connector.errors.ProgrammingError as error:
    out["error"] = {"errno": error.errno, "msg": error.msg}
con.close()
report(**out)
