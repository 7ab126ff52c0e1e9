"""deploy/systemd's units are what systemd accepts (`systemd-analyze verify`, with their paths pointed at
this checkout), and each restarts its process on a crash and gives up on a crash loop, as runstack does.
There is no systemd running here to start them: the roles' commands themselves are tested through runstack."""
from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path

import pytest

from supervision import processes

UNITS = processes.BASE_DIR / "deploy" / "systemd"
INSTANCES = {"studio-web.service": "studio-web.service", "studio-redis.service": "studio-redis.service",
             "studio-worker@.service": "studio-worker@COMPUTE_WH.2.service",
             "studio-inference@.service": "studio-inference@smollm2-135m.service", "studio.target": "studio.target"}


def here(unit: Path) -> str:
    """The unit as it would be installed from this checkout, by this user."""
    user = getpass.getuser()
    return (unit.read_text().replace("/opt/studio", str(processes.BASE_DIR))
            .replace("/etc/studio/studio.env", str(UNITS / "studio.env.example"))
            .replace("/usr/bin/redis-server", processes.redis_server_binary())
            .replace("User=studio", f"User={user}").replace("Group=studio", f"Group={user}"))


def test_every_unit_is_shipped():
    assert sorted(p.name for p in UNITS.iterdir() if p.suffix in (".service", ".target")) == sorted(INSTANCES)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
@pytest.mark.parametrize("unit", sorted(INSTANCES))
def test_systemd_accepts_the_unit(unit, tmp_path):
    installed = tmp_path / unit
    installed.write_text(here(UNITS / unit))
    name = INSTANCES[unit]
    if name != unit:
        (tmp_path / name).symlink_to(installed)
    checked = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / name)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), checked


@pytest.mark.parametrize("unit", [u for u in sorted(INSTANCES) if u.endswith(".service")])
def test_each_service_restarts_on_a_crash_and_gives_up_on_a_crash_loop(unit):
    text = (UNITS / unit).read_text()
    for line in ("Restart=on-failure", "RestartSec=2", "StartLimitIntervalSec=120", "StartLimitBurst=5",
                 "WantedBy=studio.target"):
        assert f"\n{line}\n" in text, (unit, line)


def test_the_worker_unit_stops_the_worker_alone_and_survives_its_training_running_out_of_memory():
    text = (UNITS / "studio-worker@.service").read_text()
    assert "\nKillMode=mixed\n" in text and "\nOOMPolicy=continue\n" in text
    assert "--name" not in text.split("ExecStart=")[1].splitlines()[0]
    # The warehouse is the instance up to its last dot, as /bin/sh expands what systemd passes it.
    command = text.split("ExecStart=")[1].splitlines()[0].replace("$$", "$").replace("%%", "%")
    script = command.split("-c '")[1].split("'")[0].replace("exec ", "exec echo ", 1)
    assert subprocess.run(["sh", "-c", script, "worker", "COMPUTE_WH.2"], capture_output=True, text=True,
                          check=True).stdout.split()[-2:] == ["--warehouse", "COMPUTE_WH"]
