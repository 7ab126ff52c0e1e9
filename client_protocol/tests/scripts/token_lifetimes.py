"""One connection across an expired session token (the client renews it) and a revoked session: the test
changes the session between steps and says "next" on stdin."""
import json
import sys

import snowflake.connector
from connect import connect

con = connect()
cur = con.cursor()
print(json.dumps({"session_id": con.session_id, "first": cur.execute("SELECT 1").fetchone()[0]}), flush=True)
sys.stdin.readline()  # the test expires the session token
print(json.dumps({"after_expiry": cur.execute("SELECT 2").fetchone()[0]}), flush=True)
sys.stdin.readline()  # the test revokes the session
try:
    cur.execute("SELECT 3")
    print(json.dumps({"after_revoke": "answered"}), flush=True)
except snowflake.connector.errors.Error as error:
    print(json.dumps({"after_revoke": {"errno": error.errno, "msg": error.msg}}), flush=True)
