from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog import base_models
from errors import UserError
from inference import vllm


class Command(BaseCommand):
    help = ("Run vLLM's OpenAI-compatible server for one base model with LoRA adapters loaded at run time, and "
            "register it (with its --max-loras and --max-lora-rank) so deploys and COMPLETE use it. vLLM lives in "
            "its own environment (bin/install --vllm puts it in .venv-vllm/). Arguments after -- go to vLLM.")

    def add_arguments(self, parser):
        parser.add_argument("--base-model", default=settings.DEFAULT_BASE_MODEL)
        parser.add_argument("--host", default=settings.INFERENCE_HOST)
        parser.add_argument("--port", type=int, default=8090)
        parser.add_argument("--name", help="server name in the registry (default: vllm-<base model>)")
        parser.add_argument("--max-loras", type=int, default=4,
                            help="adapters one batch may mix, and the most the studio deploys on this server (4)")
        parser.add_argument("--max-lora-rank", type=int, default=16,
                            help=f"largest LoRA rank it accepts, one of {', '.join(map(str, vllm.MAX_LORA_RANKS))} "
                                 "(16, the studio's default rank)")
        parser.add_argument("--vllm-python", dest="vllm_python",
                            help="the Python that has vLLM installed (default: .venv-vllm/bin/python)")
        parser.add_argument("--url", help="the URL the studio reaches it at (default: http://HOST:PORT)")
        parser.add_argument("extra", nargs="*", help="more vLLM server arguments, after --")

    def handle(self, *args, base_model, host, port, name=None, max_loras, max_lora_rank, vllm_python=None, url=None,
               extra, **opts):
        try:
            base = base_models.get_installed(base_model)
            server = vllm.register_server(name or f"vllm-{base.name}", url or f"http://{host}:{port}", base.name,
                                          max_loras=max_loras, max_lora_rank=max_lora_rank)
        except UserError as exc:
            raise CommandError(exc.message) from exc
        executable = vllm_python or str(Path(settings.BASE_DIR) / ".venv-vllm" / "bin" / "python")
        argv = vllm.serve_argv(executable, base.weights_dir, base.name, host=host, port=port, max_loras=max_loras,
                               max_lora_rank=max_lora_rank, extra=extra)
        self.stdout.write(f"Serving {base.name} with vLLM at {server.url} as {server.name}")
        self.stdout.flush()
        # Replace this process: signals sent to `manage.py servevllm` reach vLLM itself.
        try:
            os.execve(executable, argv, vllm.serve_env(dict(os.environ)))
        except OSError as exc:
            raise CommandError(f"Cannot run vLLM ({executable}): {exc.strerror}. Install it with "
                               f"bin/install --vllm, or pass --vllm-python PATH.") from exc

