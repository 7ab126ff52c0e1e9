from __future__ import annotations

import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog import base_models
from errors import UserError
from inference.models import InferenceServer
from inference_server.auth import TOKEN_ENV
from models_registry.registry import adapters_dir


def max_new_tokens_limit() -> int:
    """COMPLETE's max_tokens limit (inference/limits.py), so the server never refuses what COMPLETE lets
    through. Off (0), the server is bounded by the model's context alone: its own limit must not be
    smaller than anything COMPLETE may send."""
    return settings.GATEWAY_MAX_TOKENS if settings.GATEWAY_MAX_TOKENS > 0 else 2**31 - 1


class Command(BaseCommand):
    help = ("Run the embedded TGI-compatible inference server for one base model and its fine-tuned "
            "adapters, and register it so COMPLETE routes to it.")

    def add_arguments(self, parser):
        from django.conf import settings

        parser.add_argument("--base-model", default=settings.DEFAULT_BASE_MODEL)
        parser.add_argument("--host", default=settings.INFERENCE_HOST)
        parser.add_argument("--port", type=int, default=settings.INFERENCE_PORT)
        parser.add_argument("--name", help="server name in the registry (default: embedded-<base model>)")

    def handle(self, *args, base_model, host, port, name=None, **opts):
        try:
            base = base_models.get_installed(base_model)
        except UserError as exc:
            raise CommandError(exc.message) from exc
        url = f"http://{host}:{port}"
        InferenceServer.objects.update_or_create(
            name=name or f"embedded-{base.name}",
            defaults={"url": url, "base_model": base.name, "backend": InferenceServer.Backend.EMBEDDED},
        )
        adapters = adapters_dir()
        adapters.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "inference_server", "--base-model-dir", str(base.weights_dir),
                "--base-model-name", base.name, "--host", host, "--port", str(port),
                "--adapters-dir", str(adapters), "--max-new-tokens-limit", str(max_new_tokens_limit())]
        self.stdout.write(f"Serving {base.name} at {url}")
        self.stdout.flush()
        # The token goes in the environment, which only this user can read, not on the command line.
        env = {k: v for k, v in os.environ.items() if k != f"{TOKEN_ENV}_FILE"} | {TOKEN_ENV: settings.INFERENCE_TOKEN}
        # Replace this process: signals sent to `manage.py serve` reach the server itself.
        os.execve(sys.executable, argv, env)
