"""The secrets a deployment makes for itself (SECRET_KEY, the inference servers' token, the embedded Redis's
password): generated once under the data directory (0600), the same in every process that starts with it,
replaced by the operator's own when set, and the development key this code once shipped refused."""
from __future__ import annotations

import json
import multiprocessing
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import constants
from django.contrib.messages.storage.base import Message
from django.contrib.messages.storage.cookie import CookieStorage
from django.core import signing
from django.http import HttpRequest
from django.test import override_settings

from project.private import generated_secret

BASE_DIR = Path(__file__).resolve().parents[2]
# What project/settings.py fell back to until every deployment generated its own.
OLD_DEVELOPMENT_KEY = "dev-only-secret-key-change-me-in-production-0123456789"
SETTINGS_VALUES = ("SECRET_KEY", "INFERENCE_TOKEN", "REDIS_PASSWORD", "REDIS_URL")


def settings_process(data_dir: Path, **env: str) -> subprocess.Popen:
    """A process that loads project.settings for `data_dir`, as manage.py, the workers or uvicorn do, and prints
    the secrets it ended up with as JSON."""
    code = ("import json; from django.conf import settings; "
            f"print(json.dumps({{n: getattr(settings, n) for n in {SETTINGS_VALUES!r}}}))")
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("STUDIO_", "DJANGO_", "SECRET_KEY", "REDIS_URL", "DATABASE_URL", "DEBUG"))}
    environ |= {"DJANGO_SETTINGS_MODULE": "project.settings", "STUDIO_DATA_DIR": str(data_dir), **env}
    return subprocess.Popen([sys.executable, "-c", code], cwd=BASE_DIR, env=environ, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def load_settings(data_dir: Path, **env: str) -> dict[str, str]:
    process = settings_process(data_dir, **env)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_deployment_generates_its_secrets_and_every_process_starting_with_it_agrees(tmp_path):
    data = tmp_path / "var"  # not there yet, as in a fresh clone
    started = [settings_process(data) for _ in range(4)]  # web, worker, inference server, CLI at once
    loaded = []
    for process in started:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        loaded.append(json.loads(out))
    assert all(values == loaded[0] for values in loaded)
    first = loaded[0]
    assert first["SECRET_KEY"] == (data / "secret-key.txt").read_text().strip()
    assert len(first["SECRET_KEY"]) >= 40 and not first["SECRET_KEY"].startswith("dev-only")
    assert first["INFERENCE_TOKEN"] == (data / "inference-token.txt").read_text().strip()
    assert first["REDIS_PASSWORD"] == (data / "redis-password.txt").read_text().strip()
    assert first["REDIS_URL"].startswith(f"redis://:{first['REDIS_PASSWORD']}@127.0.0.1:")
    assert len({first["SECRET_KEY"], first["INFERENCE_TOKEN"], first["REDIS_PASSWORD"]}) == 3
    assert mode(data) == 0o700
    for name in ("secret-key.txt", "inference-token.txt", "redis-password.txt"):
        assert mode(data / name) == 0o600, name
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(".")) == []  # no temporary file left
    assert load_settings(data) == first  # and the next start keeps them


def _race(path: str, barrier, results) -> None:
    barrier.wait()
    results.put(generated_secret(Path(path)))


def test_processes_racing_to_generate_a_secret_all_read_the_one_that_won(tmp_path):
    context = multiprocessing.get_context("fork")
    for attempt in range(5):
        path = tmp_path / f"secret-{attempt}.txt"
        barrier, results = context.Barrier(6), context.Queue()
        racers = [context.Process(target=_race, args=(str(path), barrier, results)) for _ in range(6)]
        for racer in racers:
            racer.start()
        values = [results.get(timeout=60) for _ in racers]
        for racer in racers:
            racer.join(30)
        assert len(set(values)) == 1 and values[0] == path.read_text().strip()
        assert mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"secret-{n}.txt" for n in range(5)]


def test_a_deployment_with_its_own_secrets_uses_them_and_generates_none(tmp_path):
    data = tmp_path / "var"
    token_file = tmp_path / "token"
    token_file.write_text("token-from-a-file\n")
    values = load_settings(data, SECRET_KEY="the-operators-own-key-" + "x" * 30,
                           STUDIO_INFERENCE_TOKEN_FILE=str(token_file), STUDIO_REDIS_PASSWORD="p@ss/word")
    assert values["SECRET_KEY"] == "the-operators-own-key-" + "x" * 30
    assert values["INFERENCE_TOKEN"] == "token-from-a-file"
    assert values["REDIS_URL"].startswith("redis://:p%40ss%2Fword@127.0.0.1:")  # quoted for the URL
    assert sorted(p.name for p in data.iterdir() if p.suffix == ".txt") == []

    key_file = tmp_path / "key"
    key_file.write_text("a-key-from-a-file\n")
    values = load_settings(data, SECRET_KEY_FILE=str(key_file), REDIS_URL="redis://:theirs@queue:6379/0")
    assert values["SECRET_KEY"] == "a-key-from-a-file"
    assert values["REDIS_URL"] == "redis://:theirs@queue:6379/0" and values["REDIS_PASSWORD"] == ""
    assert not (data / "redis-password.txt").exists() and not (data / "secret-key.txt").exists()


def test_the_development_key_this_code_once_shipped_is_refused(tmp_path):
    for debug in ("0", "1"):
        process = settings_process(tmp_path / "var", SECRET_KEY=OLD_DEVELOPMENT_KEY, DEBUG=debug)
        _, err = process.communicate(timeout=120)
        assert process.returncode != 0
        assert "ImproperlyConfigured: SECRET_KEY is the development key once published with this code" in err


def test_secret_files_from_before_are_kept_but_made_private(tmp_path):
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    (data / "secret-key.txt").write_text("a-key-an-older-version-wrote-" + "y" * 30 + "\n")
    (data / "secret-key.txt").chmod(0o644)
    assert load_settings(data)["SECRET_KEY"] == "a-key-an-older-version-wrote-" + "y" * 30
    assert mode(data / "secret-key.txt") == 0o600 and mode(data) == 0o700


# -- what the key protects ------------------------------------------------------------------------------------

def messages_cookie(key: str, text: str) -> str:
    """Django's messages cookie (the signed cookie every page reads), signed with `key`."""
    with override_settings(SECRET_KEY=key):
        return CookieStorage(HttpRequest())._encode([Message(constants.SUCCESS, text)])


@pytest.mark.django_db
def test_a_messages_cookie_signed_with_the_development_key_is_not_shown(client, settings):
    client.cookies["messages"] = messages_cookie(OLD_DEVELOPMENT_KEY, "Forged notice: call +1 555 0100")
    assert "Forged notice" not in client.get("/accounts/login/").content.decode()
    # The same cookie signed with this deployment's key is shown: the key is what tells them apart.
    client.cookies["messages"] = messages_cookie(settings.SECRET_KEY, "Genuine notice")
    assert "Genuine notice" in client.get("/accounts/login/").content.decode()


def session_cookie(key: str, user) -> str:
    """A signed-cookie session logging `user` in, as an attacker holding `key` would write it."""
    with override_settings(SECRET_KEY=key):
        data = {"_auth_user_id": str(user.pk), "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                "_auth_user_hash": user.get_session_auth_hash()}
        return signing.dumps(data, salt="django.contrib.sessions.backends.signed_cookies", compress=True)


@pytest.mark.django_db
def test_a_session_cookie_signed_with_the_development_key_is_not_logged_in(client, settings):
    admin = get_user_model().objects.create_superuser("forgery-target", password="pw-forgery-1234")
    # Even were sessions kept in signed cookies, only this deployment's key could sign one in.
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    client.cookies[settings.SESSION_COOKIE_NAME] = session_cookie(OLD_DEVELOPMENT_KEY, admin)
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session
    client.cookies[settings.SESSION_COOKIE_NAME] = session_cookie(settings.SECRET_KEY, admin)
    assert client.get("/accounts/login/").wsgi_request.user == admin  # the control: this key does log in
