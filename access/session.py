"""The session a statement runs in: who, with which role, and where unqualified names resolve."""
from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser


@dataclass
class Session:
    user: AbstractBaseUser | None
    role: str = "ACCOUNTADMIN"
    warehouse: str | None = None
    database: str | None = None
    schema: str | None = None
    entry_point: str = "cli"  # cli, api, worksheet, web, admin: where the statement came from

    @property
    def user_name(self) -> str:
        return self.user.get_username() if self.user is not None else "SYSTEM"
