"""snowflake.cortex.complete() through a Snowpark session over HTTPS, unchanged.

With a string prompt the client POSTs https://<host>/api/v2/cortex/inference:complete itself, without the
connection's port, signed with the session token; with a Column prompt (`column <table>`) Snowpark runs
AI_COMPLETE in a query. The certificate is checked against REQUESTS_CA_BUNDLE (both the connector and
snowflake.cortex use requests' trust store).

Arguments: model, prompt, max_tokens, then `string` (greedy: temperature 0) or `column <table>` (its column
PROMPT, ordered by ID, with AI_COMPLETE's defaults).
"""
import os
import sys

import requests
from snowflake.cortex import complete
from snowflake.snowpark import Session
from snowflake.snowpark.functions import col

from connect import report

model, prompt, max_tokens, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
configs = {"account": "studio", "host": os.environ["STUDIO_HOST"], "port": int(os.environ["STUDIO_PORT"]),
           "protocol": "https", "user": os.environ["STUDIO_USER"], "password": os.environ["STUDIO_PASSWORD"]}
if os.environ.get("STUDIO_ROLE"):
    configs["role"] = os.environ["STUDIO_ROLE"]
session = Session.builder.configs(configs).create()
out = {"current": list(session.sql("SELECT CURRENT_USER(), CURRENT_ROLE(), CURRENT_WAREHOUSE()").collect()[0])}
try:
    if mode == "string":
        out["answer"] = complete(model, prompt, options={"temperature": 0, "max_tokens": max_tokens}, session=session)
    else:
        table = session.table(sys.argv[5])
        rows = table.select(col("id"), complete(model, col("prompt")).alias("answer")).sort(col("id"))
        out["answers"] = [row["ANSWER"] for row in rows.collect()]
except requests.HTTPError as error:
    out["http_error"] = {"status": error.response.status_code, "body": error.response.json()}
session.close()
report(**out)
