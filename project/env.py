"""Typed environment readers: every setting comes through here, and a bad value fails loudly."""
from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from project.private import generated_secret


def envstr(name: str, default: str) -> str:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text().strip()
    return os.environ.get(name, default)


def envsecret(name: str, generated: Path) -> str:
    """A secret from `name` or the file `name_FILE` names; when neither is set, the one generated on first use
    and kept in `generated` (project/private.py), so a deployment never runs on a secret shared with others."""
    value = envstr(name, "")
    if value:
        return value
    try:
        return generated_secret(generated)
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"{name} is not set and cannot be generated: {exc}") from None


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None


def envpath(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default
