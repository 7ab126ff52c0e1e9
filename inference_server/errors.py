"""Errors carried to clients as TGI's error JSON: ``{"error": message, "error_type": kind}``."""
from __future__ import annotations


class ServerError(Exception):
    status_code = 500
    error_type = "generation"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict:
        return {"error": self.message, "error_type": self.error_type}


class ValidationError(ServerError):
    status_code = 422
    error_type = "validation"


class TemplateError(ServerError):
    status_code = 422
    error_type = "template_error"


class AdapterNotFound(ServerError):
    status_code = 404
    error_type = "adapter_not_found"


class UnknownAdapterParameter(ServerError):
    """An unknown ``parameters.adapter_id`` on TGI's own routes: TGI validates it with the other parameters."""

    status_code = 422
    error_type = "validation"


class AdapterLoadError(ServerError):
    status_code = 500
    error_type = "adapter_load_error"


class Overloaded(ServerError):
    status_code = 429
    error_type = "overloaded"

    def __init__(self, message: str = "Model is overloaded") -> None:
        super().__init__(message)


class Cancelled(Exception):
    """The client went away; generation stopped early."""
