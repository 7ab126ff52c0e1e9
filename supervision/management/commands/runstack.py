from __future__ import annotations

import signal
import subprocess
import sys
import uuid

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from access.bootstrap import password_file
from supervision import processes
from supervision.supervisor import GaveUp, Policy, Role, Supervisor, log_name
from warehouses.models import Warehouse

# Ctrl+C, `kill`, and the terminal closing: the children have sessions of their own, so only this process
# hears them, and it stops the children in order.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


# Loading the base model is most of it; a big one on a slow disk takes minutes.
READY_TIMEOUT_S = 300


def inference_url() -> str:
    return f"http://{settings.INFERENCE_HOST}:{settings.INFERENCE_PORT}"


class Stopping(Exception):
    pass


def _stopping(signum, frame):
    raise Stopping(signal.Signals(signum).name)


def worker_start(args: list[str]):
    """Starts `manage.py worker` under a fresh RQ name each time: RQ refuses a second live worker with a
    name it knows, and the one just killed stays "live" in Redis for a minute or two."""
    first = [True]

    def start(**popen) -> subprocess.Popen:
        name = args[-1] if first[0] else f"{args[-1].rsplit('.', 1)[0]}.{uuid.uuid4().hex[:6]}"
        first[0] = False
        return processes.manage(*args[:-1], name, stdin=subprocess.DEVNULL, **popen)

    return start


class Command(BaseCommand):
    help = ("Start the whole stack on this machine: Redis (unless REDIS_URL is set), `concurrency` workers "
            "per warehouse, the inference server for the default base model and the web app; restart any "
            "of them that dies, and stop on Ctrl+C or SIGTERM.")

    def add_arguments(self, parser):
        policy = Policy()
        parser.add_argument("--host", default="127.0.0.1", help="web app address (0.0.0.0 to listen everywhere)")
        parser.add_argument("--port", type=int, default=settings.WEB_PORT)
        parser.add_argument("--give-up-after", type=int, default=policy.give_up_after, metavar="N",
                            help="stop the stack when a process dies this many times in a row at start (before it "
                                 "is ready, or within --start-window)")
        parser.add_argument("--start-window", type=float, default=policy.start_window_s, metavar="SECONDS",
                            help="a death this soon after starting counts towards --give-up-after")
        parser.add_argument("--max-restart-delay", type=float, default=policy.max_delay_s, metavar="SECONDS",
                            help="the cap of the delay (1 s, doubling) before restarting a process that died")

    def handle(self, *args, host, port, give_up_after, start_window, max_restart_delay, **opts):
        for signum in STOP_SIGNALS:
            signal.signal(signum, _stopping)
        policy = Policy(max_delay_s=max_restart_delay, start_window_s=start_window, give_up_after=give_up_after)
        supervisor = Supervisor([], policy, say=self._say, echo=self._echo)
        code, running = 1, False
        try:
            supervisor.roles = self.roles(host, port)
            supervisor.start_all()
            supervisor.wait_ready(READY_TIMEOUT_S)
            with supervisor.lock:  # not split by the children's lines
                self.banner(host, port)
            running = True
            supervisor.run()
        except Stopping as stop:
            self._say(f"Stopping the stack ({stop})")
            code = 0
        except GaveUp as exc:
            self._say(str(exc))
        except Exception as exc:
            self._say(f"{'The stack stopped on an error' if running else 'Could not start the stack'}: {exc}")
        finally:
            for signum in STOP_SIGNALS:  # a second Ctrl+C must not leave half the stack running
                signal.signal(signum, signal.SIG_IGN)
            supervisor.stop_all(processes.stop)
        sys.exit(code)

    def roles(self, host: str, port: int) -> list[Role]:
        """What to start, in order: Redis, the workers, the inference server, the web app."""
        logs = settings.DATA_DIR / "logs"
        roles = []
        if settings.REDIS_URL_IS_EMBEDDED:
            if processes.port_open(settings.EMBEDDED_REDIS_PORT):
                # Fails here, not in every worker, if that Redis does not take this deployment's password.
                processes.redis_command(settings.EMBEDDED_REDIS_PORT, "PING", password=settings.REDIS_PASSWORD)
                self._say(f"Redis already listening on port {settings.EMBEDDED_REDIS_PORT}; using it (not supervised)")
            else:
                # Restarted like the rest: it keeps its data in an append-only file, so the queues survive.
                roles.append(Role("redis", lambda **popen: processes.start_redis(
                    settings.EMBEDDED_REDIS_PORT, settings.DATA_DIR / "redis", password=settings.REDIS_PASSWORD,
                    **popen), logs / "redis.log"))
        call_command("basemodels", "install", settings.DEFAULT_BASE_MODEL, "--if-missing")
        warehouses = list(Warehouse.objects.all())
        for warehouse in warehouses:
            if warehouse.concurrency < 1:
                self.stderr.write(f"Warehouse {warehouse.name} has concurrency 0: no worker trains its jobs, "
                                  "they stay PENDING")
        for label, command in processes.worker_commands(warehouses):
            roles.append(Role(label, worker_start(command), logs / f"{log_name(label)}.log"))
        roles.append(Role("inference", lambda **popen: processes.manage(
            "serve", "--base-model", settings.DEFAULT_BASE_MODEL, stdin=subprocess.DEVNULL, **popen),
            logs / "inference.log", ready=lambda: processes.http_ok(f"{inference_url()}/health")))
        web = processes.web_command(host, port, tls_cert=settings.TLS_CERT, tls_key=settings.TLS_KEY)
        roles.append(Role("web", lambda **popen: subprocess.Popen(web, cwd=processes.BASE_DIR, stdin=subprocess.DEVNULL,
                                                                  **popen), logs / "web.log",
                          ready=lambda: processes.port_open(port)))
        return roles

    def banner(self, host: str, port: int) -> None:
        password = password_file().read_text().strip() if password_file().exists() else "(see STUDIO_ADMIN_PASSWORD)"
        self.stdout.write(self.style.SUCCESS(
            f"\nThe studio is running at {'https' if settings.TLS_CERT else 'http'}://"
            f"{host if host != '0.0.0.0' else '127.0.0.1'}:{port}/\n"
            f"Log in as admin / {password}\n"
            f"Inference server (TGI protocol): {inference_url()}\n"
            f"Logs: {settings.DATA_DIR / 'logs'}/\nPress Ctrl+C to stop.\n"
        ))
        self.stdout.flush()

    def _say(self, message: str) -> None:
        self.stderr.write(message)
        self.stderr.flush()

    def _echo(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()
