"""What the playground's tests share: the answer SQL COMPLETE gives for the same messages and options,
which every playground answer must equal."""
from __future__ import annotations

from typing import Any

from access.session import Session
from tests.support.cortex import sql_literal, sql_value


def sql_complete(session: Session, model: str, messages: list[dict[str, str]], *, max_tokens: int,
                 temperature: float = 0) -> dict[str, Any]:
    """SELECT SNOWFLAKE.CORTEX.COMPLETE(model, messages, options): Snowflake's response object."""
    array = ", ".join(f"{{'role': '{m['role']}', 'content': {sql_literal(m['content'])}}}" for m in messages)
    return sql_value(session, f"SELECT SNOWFLAKE.CORTEX.COMPLETE({sql_literal(model)}, [{array}], "
                              f"{{'max_tokens': {max_tokens}, 'temperature': {temperature}}})")
