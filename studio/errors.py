"""The one exception that crosses layers: a user-facing error shaped like Snowflake's."""
from __future__ import annotations


class StudioError(Exception):
    """An error a user can act on. `code` and `sqlstate` follow Snowflake's conventions so SQL clients
    can show them the way they show Snowflake's own errors."""

    def __init__(self, message: str, *, code: int = 100000, sqlstate: str = "P0000", refused: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.sqlstate = sqlstate
        # A missing privilege: Snowflake's "Insufficient privileges" (3001), or a refusal worded as
        # "does not exist or not authorized" so as not to tell what exists. The access history counts
        # both as REFUSED; users see only the message.
        self.refused = refused or code == 3001

    def __str__(self) -> str:
        return self.message


def compilation_error(message: str) -> StudioError:
    return StudioError(f"SQL compilation error: {message}", code=2003, sqlstate="42S02")


def invalid_argument(message: str) -> StudioError:
    return StudioError(message, code=100357, sqlstate="22023")
