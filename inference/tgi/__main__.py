"""python -m inference.tgi restart-container NAME: restart TGI's container through the Docker Engine API (the
web and worker containers' STUDIO_TGI_RESTART_COMMAND in docker/compose.yaml; their image has no docker CLI)."""
from __future__ import annotations

import sys

from inference.tgi.restarts import restart_container

if len(sys.argv) == 3 and sys.argv[1] == "restart-container":
    sys.exit(restart_container(sys.argv[2]))
print("usage: python -m inference.tgi restart-container NAME", file=sys.stderr)
sys.exit(2)
