"""Keeping the studio's files to the user it runs as, and the secrets it generates for itself.

The data directory holds what other local users must not read: the SQLite file (session keys, API token
hashes), one DuckDB file per database (every table), stage files, adapters trained on account data, and the
generated secrets below. Django-free: the settings module calls it before Django is set up.
"""
from __future__ import annotations

import os
import secrets
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

# Files this process creates from now on are 0600 and directories 0700, whoever creates them: SQLite and
# DuckDB open their files with 0666 & ~umask, and so do Python's open() and every library under it.
PRIVATE_UMASK = 0o077


def make_private(directories: Iterable[Path]) -> None:
    """Set the private umask, create the directories (0700) and take group and other access away from any
    that already exist, such as a var/ made by an older version: then from everything in it too, once, since
    the directory stays private afterwards. Anything that belongs to someone else (a shared mount the operator
    set up) is left as it is: chmod would fail there, and its owner decides."""
    os.umask(PRIVATE_UMASK)
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        if _restrict(directory):
            for parent, dirs, files in os.walk(directory):  # symbolic links are not followed
                for name in dirs + files:
                    _restrict(Path(parent) / name)


def generated_secret(path: Path, nbytes: int = 32) -> str:
    """The secret kept in `path` (0600), generated on first use.

    The web app's processes, the workers and the inference server all load the settings when they start,
    often at the same moment, and must end up with the same secret. So a new one is written whole to a
    temporary file and hard-linked into place: link() fails if another process won the race, and every
    process then reads the one complete file; none ever sees it half written.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mkstemp: 0600 whatever the umask
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(nbytes) + "\n")
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    _restrict(path)
    value = path.read_text().strip()
    if not value:
        raise ValueError(f"{path} is empty: delete it and a new secret is generated at the next start")
    return value


def _restrict(path: Path) -> bool:
    """Take group and other access away from `path` if it is this user's; True if it had any."""
    try:
        st = path.lstat()
    except FileNotFoundError:  # removed since the directory was listed
        return False
    if stat.S_ISLNK(st.st_mode) or not stat.S_IMODE(st.st_mode) & 0o077 or st.st_uid != os.getuid():
        return False
    path.chmod(stat.S_IMODE(st.st_mode) & ~0o077)
    return True
