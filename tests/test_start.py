"""The README's first command, `bin/start`, on a fresh data directory: it bootstraps the account,
starts Redis, a worker, the inference server and the web app, prints the URL and the admin login,
and Ctrl+C stops everything it started."""
from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from supervision import processes

pytestmark = pytest.mark.slow

ROOT = processes.BASE_DIR


def read_until(process: subprocess.Popen, pattern: str, timeout: float, lines: list[str]) -> re.Match:
    """Lines of `process`'s output until one matches; the reader keeps collecting after that."""
    found: list[re.Match] = []

    def reader():
        for line in process.stdout:
            lines.append(line)
            if not found and (m := re.search(pattern, "".join(lines[-5:]))):
                found.append(m)

    threading.Thread(target=reader, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not found:
        assert process.poll() is None, "bin/start exited:\n" + "".join(lines[-40:])
        assert time.monotonic() < deadline, "bin/start printed no URL:\n" + "".join(lines[-40:])
        time.sleep(0.2)
    return found[0]


def test_bin_start_runs_the_whole_stack_and_prints_url_and_login(tmp_path, smollm2_dir):
    data = tmp_path / "var"  # does not exist yet, as in a fresh clone
    # The base model is already converted in this test run; link it so start skips the 30 s conversion.
    store = tmp_path / "models"
    base = store / "base" / "smollm2-135m"
    base.mkdir(parents=True)
    for f in Path(smollm2_dir).iterdir():
        os.link(f, base / f.name)
    web_port, inference_port, redis_port = processes.free_port(), processes.free_port(), processes.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIO_", "DJANGO_", "REDIS_URL", "DATABASE_URL"))}
    env |= {"STUDIO_DATA_DIR": str(data), "STUDIO_MODEL_STORE": str(store),
            "STUDIO_PORT": str(web_port), "STUDIO_REDIS_PORT": str(redis_port),
            "STUDIO_INFERENCE_PORT": str(inference_port), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([str(ROOT / "bin" / "start")], cwd=ROOT, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[str] = []
    try:
        m = read_until(process, r"running at (http://\S+/)\s+Log in as (\w+) / (\S+)", 300, lines)
        url, username, password = m.groups()
        assert url == f"http://127.0.0.1:{web_port}/"
        assert username == "admin" and len(password) >= 16
        assert (data / "admin-password.txt").read_text().strip() == password

        # Every component answers: Redis, the inference server (TGI's /info) and the web app.
        assert processes.port_open(redis_port)
        info_url = f"http://127.0.0.1:{inference_port}/info"
        with pytest.raises(urllib.error.HTTPError) as refused:  # only with the deployment's token
            urllib.request.urlopen(info_url, timeout=10)
        assert refused.value.code == 401
        token = (data / "inference-token.txt").read_text().strip()
        info = urllib.request.urlopen(urllib.request.Request(info_url, headers={"Authorization": f"Bearer {token}"}),
                                      timeout=10).read().decode()
        assert "smollm2-135m" in info and str(tmp_path) not in info

        # What it generated and keeps is its user's alone.
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for name in ("admin-password.txt", "secret-key.txt", "inference-token.txt", "redis-password.txt",
                     "studio.sqlite3"):
            assert stat.S_IMODE((data / name).stat().st_mode) == 0o600, name

        # The printed login works, and the home page shows the bootstrapped account.
        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        login_page = browser.open(url + "accounts/login/", timeout=10).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page).group(1)
        form = urllib.parse.urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
        request = urllib.request.Request(url + "accounts/login/", data=form.encode(), headers={"Referer": url})
        home = browser.open(request, timeout=10).read().decode()
        assert "No fine-tuning jobs yet" in home
        assert re.search(r"smollm2-135m</td>\s*<td><span class=\"status success\">installed", home)
    finally:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl+C in the terminal does
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    for port in (web_port, inference_port, redis_port):
        assert not processes.port_open(port), f"port {port} still open after Ctrl+C"
