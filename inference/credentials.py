"""What the web app and workers send an inference server to be let in: the deployment's shared token
(settings.INFERENCE_TOKEN), which the embedded server checks (inference_server/auth.py) and TGI takes as its
API_KEY (docker/compose.yaml)."""
from __future__ import annotations

from django.conf import settings


def auth_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.INFERENCE_TOKEN}"}
