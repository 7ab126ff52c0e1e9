from __future__ import annotations

import signal
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from access.bootstrap import password_file
from supervision import processes
from warehouses.models import Warehouse


class Command(BaseCommand):
    help = ("Start the whole stack on this machine: Redis (unless REDIS_URL is set), `concurrency` workers "
            "per warehouse, the inference server for the default base model and the web app.")

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="web app address (0.0.0.0 to listen everywhere)")
        parser.add_argument("--port", type=int, default=settings.WEB_PORT)

    def handle(self, *args, host, port, **opts):
        children: list[tuple[str, object]] = []

        def shutdown(*_):
            for name, process in reversed(children):
                processes.stop(process)
            sys.exit(0)

        signal.signal(signal.SIGTERM, shutdown)
        signal.signal(signal.SIGINT, shutdown)
        try:
            if settings.REDIS_URL_IS_EMBEDDED:
                if processes.port_open(settings.EMBEDDED_REDIS_PORT):
                    # Fails here, not in every worker, if that Redis does not take this deployment's password.
                    processes.redis_command(settings.EMBEDDED_REDIS_PORT, "PING", password=settings.REDIS_PASSWORD)
                    self.stdout.write(f"Redis already listening on port {settings.EMBEDDED_REDIS_PORT}; using it")
                else:
                    children.append(("redis", processes.start_redis(settings.EMBEDDED_REDIS_PORT, settings.DATA_DIR / "redis",
                                                                    password=settings.REDIS_PASSWORD)))
            call_command("basemodels", "install", settings.DEFAULT_BASE_MODEL, "--if-missing")
            warehouses = list(Warehouse.objects.all())
            for warehouse in warehouses:
                if warehouse.concurrency < 1:
                    self.stderr.write(f"Warehouse {warehouse.name} has concurrency 0: no worker trains its jobs, "
                                      "they stay PENDING")
            for label, command in processes.worker_commands(warehouses):
                children.append((label, processes.manage(*command)))
            inference_url = f"http://{settings.INFERENCE_HOST}:{settings.INFERENCE_PORT}"
            children.append(("inference", processes.manage("serve", "--base-model", settings.DEFAULT_BASE_MODEL)))
            children.append(("web", processes.subprocess.Popen(
                processes.web_command(host, port, tls_cert=settings.TLS_CERT, tls_key=settings.TLS_KEY),
                cwd=processes.BASE_DIR)))
            processes.wait_until(lambda: processes.port_open(port), 60, "web app", children[-1][1])
            processes.wait_until(lambda: processes.http_ok(f"{inference_url}/health"), 180, "inference server",
                                 children[-2][1])
        except Exception as exc:
            self.stderr.write(f"Could not start the stack: {exc}")
            shutdown()
        password = password_file().read_text().strip() if password_file().exists() else "(see STUDIO_ADMIN_PASSWORD)"
        self.stdout.write(self.style.SUCCESS(
            f"\nThe studio is running at {'https' if settings.TLS_CERT else 'http'}://"
            f"{host if host != '0.0.0.0' else '127.0.0.1'}:{port}/\n"
            f"Log in as admin / {password}\n"
            f"Inference server (TGI protocol): {inference_url}\nPress Ctrl+C to stop.\n"
        ))
        while True:
            for name, process in children:
                if process.poll() is not None:
                    self.stderr.write(f"{name} exited with code {process.returncode}; stopping the stack")
                    shutdown()
            time.sleep(1)
