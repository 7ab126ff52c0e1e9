"""snowflake-ml-python's snowflake.cortex.Finetune, unchanged: create, list_jobs, describe, cancel."""
import json
import os
import sys
import time

from snowflake.cortex import Finetune
from snowflake.snowpark import Session

from connect import report

database, base_model, action = sys.argv[1], sys.argv[2], sys.argv[3]
session = Session.builder.configs({
    "account": "studio", "host": os.environ["STUDIO_HOST"], "port": int(os.environ["STUDIO_PORT"]),
    "protocol": "http", "user": os.environ["STUDIO_USER"], "password": os.environ["STUDIO_PASSWORD"],
    "database": database, "schema": "PUBLIC",
}).create()
finetune = Finetune(session)
out = {}
job = finetune.create("tuned_by_ml", base_model, "SELECT prompt, completion FROM examples", None,
                      {"max_epochs": int(os.environ.get("MAX_EPOCHS", "10"))})
out["id"] = job.status.id
out["listed"] = [j.status.id for j in finetune.list_jobs()]
if action == "cancel":
    out["cancelled"] = job.cancel()
    out["after_cancel"] = job.describe().status
else:
    deadline = time.time() + 300
    status = job.describe()
    while status.status not in ("SUCCESS", "ERROR", "CANCELLED") and time.time() < deadline:
        time.sleep(1)
        status = job.describe()
    out["described"] = {k: v for k, v in vars(status).items()}
    answer = session.sql(f"SELECT SNOWFLAKE.CORTEX.COMPLETE('{database}.PUBLIC.TUNED_BY_ML', prompt) AS answer "
                         "FROM examples ORDER BY prompt LIMIT 2").collect()
    out["answers"] = [row["ANSWER"] for row in answer]
session.close()
report(**out)
