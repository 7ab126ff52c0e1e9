"""Snowpark: Session.builder…create(), session.sql().collect(), session.table() with filters and selects."""
import os
import sys

from snowflake.snowpark import Session
from snowflake.snowpark.functions import col

from connect import report

database = sys.argv[1]
session = Session.builder.configs({
    "account": "studio", "host": os.environ["STUDIO_HOST"], "port": int(os.environ["STUDIO_PORT"]),
    "protocol": "http", "user": os.environ["STUDIO_USER"], "password": os.environ["STUDIO_PASSWORD"],
}).create()
out = {}
session.sql(f"CREATE DATABASE {database}").collect()
session.sql(f"USE DATABASE {database}").collect()
session.sql("CREATE TABLE people (name TEXT, age INT, city TEXT)").collect()
session.sql("INSERT INTO people VALUES ('Ada', 36, 'London'), ('Alan', 41, 'Wilmslow'), ('Grace', 85, 'Arlington')").collect()
out["current"] = [list(r) for r in session.sql("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()").collect()]
people = session.table("people")
out["schema"] = [(f.name, type(f.datatype).__name__) for f in people.schema.fields]
older = people.filter(col("age") > 40).select("name", "city").sort(col("name"))
out["older"] = [row.as_dict() for row in older.collect()]
out["count"] = people.count()
out["created"] = [list(r) for r in session.create_dataframe([[1, "x"], [2, "y"]], schema=["n", "s"]).collect()]
session.close()
report(**out)
