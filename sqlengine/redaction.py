"""Passwords out of SQL text: statement text is kept (the worksheet's history, the SQL API's Statement
rows, logs), and CREATE / ALTER USER … PASSWORD = '…' must not leave the password in it."""
from __future__ import annotations

import re

# PASSWORD (CREATE / ALTER USER) and KEY (CREATE ACCOUNT: the key two deployments sign with).
_PASSWORD = re.compile(r"""(\b(?:PASSWORD|KEY)\s*=\s*)('(?:[^'\\]|''|\\.)*'|\S+)""", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with every PASSWORD = '…' value replaced by '***': for history and logs."""
    return _PASSWORD.sub(r"\1'***'", text)
