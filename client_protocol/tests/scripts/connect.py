"""Shared by the client scripts: connect() exactly as a user would, with only the host changed."""
import json
import os

import snowflake.connector


def connect(**extra):
    options = dict(account="studio", host=os.environ["STUDIO_HOST"], port=int(os.environ["STUDIO_PORT"]),
                   protocol="http", user=os.environ["STUDIO_USER"], password=os.environ["STUDIO_PASSWORD"])
    options.update(extra)
    return snowflake.connector.connect(**options)


def report(**values):
    print(json.dumps(values, default=str))
