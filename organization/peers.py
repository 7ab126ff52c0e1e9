"""Requests from this deployment to another of the organization, signed with the key both registered.

Every failure becomes an error naming the account and what went wrong, never a half answer: a deployment
that cannot be reached, one that refuses (its message passed on), or one that answers something that is
not what was asked for.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from errors import UserError
from organization import signing
from organization.models import Account
from organization.names import current

TIMEOUT_SECONDS = 30
CHUNK = 1 << 20
# The most a JSON answer (a manifest) is read of: another deployment's answer must not fill this one's memory.
MAX_JSON_BYTES = 64 << 20
API_PREFIX = "federation/v1/"


class PeerUnreachable(UserError):
    """The other deployment did not answer: down, wrong URL, or a network in between."""


def unreachable(account: Account, why: object) -> PeerUnreachable:
    return PeerUnreachable(f"Account {account.locator} is unreachable at {account.url} ({why}). Nothing was "
                           "answered in its place; try again when it is back.", code=390100, sqlstate="08001")


def _request(account: Account, path: str, method: str = "GET", body: bytes = b"") -> urllib.request.Request:
    url = account.url + API_PREFIX + path.lstrip("/")
    signed_path = urlsplit(url).path + (f"?{urlsplit(url).query}" if urlsplit(url).query else "")
    headers = signing.sign(account.key, method, signed_path, str(current()), account.locator, body)
    if body:
        headers["Content-Type"] = "application/json"
    return urllib.request.Request(url, data=body or None, headers=headers, method=method)


def _refusal(account: Account, exc: urllib.error.HTTPError) -> UserError:
    try:
        body = json.loads(exc.read(64 * 1024) or b"{}")
    except ValueError:
        body = {}
    if isinstance(body, dict) and body.get("message"):
        return UserError(str(body["message"]), code=int(body.get("code") or 2003),
                         sqlstate=str(body.get("sqlState") or "02000"), refused=exc.code in (401, 403, 404))
    return UserError(f"Account {account.locator} refused the request (HTTP {exc.code}).", code=390101,
                     sqlstate="08004", refused=exc.code in (401, 403))


def get_json(account: Account, path: str) -> Any:
    return _json(account, _request(account, path))


def post_json(account: Account, path: str, body: dict[str, Any]) -> Any:
    return _json(account, _request(account, path, "POST", json.dumps(body).encode()))


def _json(account: Account, request: urllib.request.Request) -> Any:
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            body = response.read(MAX_JSON_BYTES + 1)
            if len(body) > MAX_JSON_BYTES:
                raise UserError(f"Account {account.locator} answered more than {MAX_JSON_BYTES} bytes, more than "
                                "this account reads of an answer; nothing was used.", code=390102, sqlstate="08004")
            return json.loads(body)
    except urllib.error.HTTPError as exc:
        raise _refusal(account, exc) from None
    except (urllib.error.URLError, OSError) as exc:
        raise unreachable(account, getattr(exc, "reason", exc)) from None
    except http.client.HTTPException as exc:  # the answer stopped half-way (IncompleteRead) or made no sense
        raise unreachable(account, f"the answer was cut short: {type(exc).__name__}") from None
    except ValueError:
        raise UserError(f"Account {account.locator} answered something that is not JSON.", code=390102,
                        sqlstate="08004") from None


def download(account: Account, path: str, target: Path, *, sha256: str, size: int) -> Path:
    """The file at `path` into `target`, written whole or not at all: it must have `size` bytes and the
    SHA-256 the other side's manifest gave, else the error says which and `target` is untouched."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, written, announced = hashlib.sha256(), 0, None
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(_request(account, path), timeout=TIMEOUT_SECONDS) as response:
                    announced = response.headers.get("Content-Length")
                    while chunk := response.read(CHUNK):
                        written += len(chunk)
                        if written > size:
                            break
                        digest.update(chunk)
                        out.write(chunk)
            except urllib.error.HTTPError as exc:
                raise _refusal(account, exc) from None
            except (urllib.error.URLError, OSError) as exc:
                raise unreachable(account, getattr(exc, "reason", exc)) from None
            except http.client.HTTPException as exc:
                raise unreachable(account, f"the transfer of {target.name} was cut short after {written} of "
                                           f"{size} bytes: {type(exc).__name__}") from None
        if written < size and announced == str(size):  # the sender meant the right file; it did not all arrive
            raise unreachable(account, f"the transfer of {target.name} was cut short after {written} of {size} bytes")
        if written != size or digest.hexdigest() != sha256:
            raise UserError(f"The file {target.name} from account {account.locator} does not match its checksum "
                            f"(expected {size} bytes with SHA-256 {sha256[:12]}…, got {written} bytes with "
                            f"{digest.hexdigest()[:12]}…); it was not used.", code=390103, sqlstate="08004")
        os.replace(partial, target)
        return target
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
