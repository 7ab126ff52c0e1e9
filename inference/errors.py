"""The error of asking an inference server: raised by the client (inference/client.py) and by the
deployments it routes through (inference/deployment.py), answered by every entry point (inference/api.py)."""
from __future__ import annotations

from errors import UserError


class InferenceError(UserError):
    """`invalid_request`: the server refused what was asked (TGI's 422: a prompt longer than the model
    takes, a parameter out of its range), which the caller must change, rather than failing itself."""

    def __init__(self, message: str, *, permanent: bool = True, invalid_request: bool = False) -> None:
        super().__init__(message, code=100351, sqlstate="P0001")
        self.permanent = permanent
        self.invalid_request = invalid_request
