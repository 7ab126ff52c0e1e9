"""Another deployment's web app for the federation tests: its own process with its own account name."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from supervision import processes


@contextmanager
def other_web_app(account: str, organization: str = "STUDIO_ORG") -> Iterator[str]:
    """The web app as account `organization.account`, in its own process. It shares the test's metadata
    database (conftest's live_db; rows are told apart by account name), which is enough where every check
    that matters runs in that process under its own identity."""
    port = processes.free_port()
    env = {**os.environ, "STUDIO_ACCOUNT_NAME": account, "STUDIO_ORGANIZATION": organization}
    process = subprocess.Popen(processes.web_command("127.0.0.1", port, workers=1), cwd=processes.BASE_DIR, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        processes.wait_until(lambda: processes.port_open(port), 60, f"web app of {account}", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        processes.stop(process)
