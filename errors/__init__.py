"""The one exception that crosses layers: an error a user can act on, shaped like Snowflake's.

Every layer may import this module, and it imports nothing of the project's, so the lowest service and
the topmost page speak of the same error."""
from __future__ import annotations


class UserError(Exception):
    """An error a user can act on. `code` and `sqlstate` follow Snowflake's conventions so SQL clients
    can show them the way they show Snowflake's own errors.

    `field` names the argument the error concerns (a FINETUNE argument such as "training_data" or
    "base_model", a form field, an option), so an entry point can put the message beside the input that
    caused it without reading the message's words."""

    def __init__(self, message: str, *, code: int = 100000, sqlstate: str = "P0000", refused: bool = False,
                 field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.sqlstate = sqlstate
        self.field = field
        # A missing privilege: Snowflake's "Insufficient privileges" (3001), or a refusal worded as
        # "does not exist or not authorized" so as not to tell what exists. The access history counts
        # both as REFUSED; users see only the message.
        self.refused = refused or code == 3001

    def __str__(self) -> str:
        return self.message

    def concerning(self, field: str) -> UserError:
        """This error, naming `field` unless a lower layer already named a more precise one."""
        if self.field is None:
            self.field = field
        return self


def compilation_error(message: str, *, field: str | None = None) -> UserError:
    return UserError(f"SQL compilation error: {message}", code=2003, sqlstate="42S02", field=field)


def invalid_argument(message: str, *, field: str | None = None) -> UserError:
    return UserError(message, code=100357, sqlstate="22023", field=field)
