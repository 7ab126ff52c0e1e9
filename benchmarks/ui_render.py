"""Server render time of the studio's pages for an account with 1,000 jobs and 1,000 models.

    .venv/bin/python benchmarks/ui_render.py            # 1,000 jobs and models, 20 renders per page
    .venv/bin/python benchmarks/ui_render.py -n 5       # quicker
    .venv/bin/python benchmarks/ui_render.py --jobs 200 --models 200

A fresh metadata database and DuckDB files in a temporary folder (removed at the end): the bootstrap
admin, database BENCH with a table, N finished jobs (each with a 200-step loss history) and N models
(each with two deployments, one of them failed, a USAGE grant on every tenth), two inference servers
and 20,000 COMPLETE usage rows over the last 30 days, a tenth of them on one model. Each page is
rendered once to warm up, then --repeat times with Django's test client as the admin, in this process
(the server's time: no HTTP, no browser). Printed per page: median and p95 milliseconds and the SQL
queries of one render; the last line is `slowest_page <name> <median ms>`. The goal (issue 8) is under
100 ms per page.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "BENCH"
PASSWORD = "benchmark-password"
HISTORY_STEPS = 200
USAGE_ROWS = 20_000


def django_setup(data_dir: Path) -> None:
    os.environ["STUDIO_DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    os.environ["ALLOWED_HOSTS"] = "testserver"  # the test client's host
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def populate(data_dir: Path, jobs: int, models: int) -> tuple[str, str]:
    """The account; returns (a job id, the busiest model's qualified name)."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from access.bootstrap import bootstrap
    from access.models import Grant
    from catalog import accountdata
    from inference.models import CompletionUsage, InferenceServer
    from jobs.models import FineTuneJob
    from models_registry.models import Deployment, FineTunedModel
    from warehouses.models import Warehouse

    call_command("migrate", verbosity=0)
    (data_dir / "staticfiles").mkdir(exist_ok=True)  # WhiteNoise warns on every request without it
    bootstrap(password=PASSWORD, demo=False)
    admin = get_user_model().objects.get(username="admin")
    Warehouse.objects.get_or_create(name="COMPUTE_WH")
    accountdata.create_database(DATABASE)
    examples = data_dir / "examples.jsonl"
    examples.write_text("".join(json.dumps({"prompt": f"ticket {i}", "completion": "BILLING"}) + "\n"
                                for i in range(500)))
    accountdata.load_table(DATABASE, accountdata.DEFAULT_SCHEMA, "EXAMPLES", examples, replace=True)
    schema = accountdata.get_schema(DATABASE, accountdata.DEFAULT_SCHEMA)

    rng = random.Random(0)
    now = timezone.now()
    job_rows = []
    for i in range(jobs):
        started = now - datetime.timedelta(hours=i, minutes=30)
        history = [{"step": s, "total_steps": HISTORY_STEPS, "epoch": s / 100, "loss": 2.0 / s ** 0.5,
                    "learning_rate": 1e-4, "tokens_per_second": 900.0} for s in range(1, HISTORY_STEPS + 1)]
        job_rows.append(FineTuneJob(
            status="SUCCESS", phase="done", progress=1.0, base_model="smollm2-135m", database=DATABASE,
            schema="PUBLIC", requested_name=f"MODEL_{i:04d}", final_model_name=f"{DATABASE}.PUBLIC.MODEL_{i:04d}",
            training_data=f"SELECT prompt, completion FROM {DATABASE}.PUBLIC.EXAMPLES", epochs=2,
            trained_tokens=100_000, training_loss=0.3, validation_loss=0.4, history=history,
            validation_history=[{"epoch": 1, "validation_loss": 0.5}, {"epoch": 2, "validation_loss": 0.4}],
            warehouse="COMPUTE_WH", role="ACCOUNTADMIN", user=admin, created_on=started,
            started_on=started, finished_on=started + datetime.timedelta(minutes=20)))
    FineTuneJob.objects.bulk_create(job_rows, batch_size=200)

    model_rows = [FineTunedModel(schema=schema, name=f"MODEL_{i:04d}", base_model="smollm2-135m",
                                 owner_role="ACCOUNTADMIN", job=job_rows[i] if i < jobs else None,
                                 adapter_path=str(data_dir / "adapters" / str(i)),
                                 metrics={"training_loss": 0.3, "validation_loss": 0.4, "trained_tokens": 100_000,
                                          "epochs": 2})
                  for i in range(models)]
    FineTunedModel.objects.bulk_create(model_rows, batch_size=200)
    model_rows = list(FineTunedModel.objects.select_related("schema__database").order_by("name"))
    servers = [InferenceServer.objects.create(name=f"smollm2-{n}", url=f"http://127.0.0.1:{9000 + n}",
                                              base_model="smollm2-135m") for n in (1, 2)]
    Deployment.objects.bulk_create(
        [Deployment(model=m, server=servers[0], state="ready") for m in model_rows]
        + [Deployment(model=m, server=servers[1], state="failed", reason="adapter rank 64 exceeds max_lora_rank 32")
           for m in model_rows], batch_size=500)
    Grant.objects.bulk_create([Grant(privilege="USAGE", object_type="MODEL", object_name=m.qualified_name,
                                     grantee_type="ROLE", grantee_name="SYSADMIN", granted_by="ACCOUNTADMIN")
                               for m in model_rows[::10]], batch_size=500)
    busiest = model_rows[0].qualified_name
    usage = []
    for i in range(USAGE_ROWS):
        name = busiest if i % 10 == 0 else rng.choice(model_rows).qualified_name
        usage.append(CompletionUsage(
            user=admin, user_name="admin", role="ACCOUNTADMIN", warehouse="COMPUTE_WH", model_name=name,
            base_model="smollm2-135m", entry_point="sql", input_tokens=rng.randint(20, 400),
            output_tokens=rng.randint(5, 200),
            started_on=now - datetime.timedelta(minutes=rng.randint(0, 30 * 24 * 60)),
            duration_ms=120, status="SUCCESS"))
    CompletionUsage.objects.bulk_create(usage, batch_size=1000)
    return job_rows[0].id, busiest


def pages(job_id: str, model: str) -> list[tuple[str, str]]:
    from django.urls import NoReverseMatch, reverse

    wanted = [("studio_home", "home", []), ("jobs_list", "jobs", []), ("job_page", "job_detail", [job_id]),
              ("models_list", "models", []), ("model_page", "model_detail", [model]), ("data", "data", []),
              ("worksheets", "worksheet", []), ("playground", "playground", []),
              ("admin_jobs", "admin:jobs_finetunejob_changelist", []),
              ("admin_models", "admin:models_registry_finetunedmodel_changelist", []),
              ("admin_usage", "admin:inference_completionusage_changelist", [])]
    found = []
    for name, url_name, args in wanted:
        try:
            found.append((name, reverse(url_name, args=args)))
        except NoReverseMatch:
            print(f"# {name}: no URL named {url_name!r} yet, skipped")
    return found


def profile(client, url: str) -> None:
    """--profile: where one render of `url` spends its time."""
    import cProfile
    import pstats

    from django.db import connection

    timed = []

    def timer(execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timed.append(((time.perf_counter() - start) * 1000, sql))

    profiler = cProfile.Profile()
    with connection.execute_wrapper(timer):
        profiler.runcall(client.get, url)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    for ms, sql in sorted(timed, reverse=True)[:8]:
        print(f"{ms:7.2f} ms  {sql[:300]}")


def measure(client, url: str, repeat: int) -> tuple[list[float], list[float], int, int]:
    """(wall-clock milliseconds per render, CPU milliseconds per render, SQL queries of one render, status).
    CPU time is this process's alone: the steadier figure on a busy machine."""
    from django.db import connection

    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        response = client.get(url)
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return times, cpu, len(queries), response.status_code


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("-n", "--repeat", type=int, default=20, help="renders per page (after one warm-up)")
    parser.add_argument("--pages", help="comma-separated page names to measure (default: all)")
    parser.add_argument("--profile", metavar="PAGE", help="print a cProfile of one render of this page and stop")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="ui-render-"))
    try:
        django_setup(data_dir)
        from django.test import Client

        started = time.perf_counter()
        job_id, model = populate(data_dir, args.jobs, args.models)
        print(f"# account: {args.jobs} jobs, {args.models} models, {USAGE_ROWS} usage rows "
              f"(built in {time.perf_counter() - started:.1f} s); {args.repeat} renders per page as admin")
        client = Client()
        assert client.login(username="admin", password=PASSWORD)
        if args.profile:
            client.get(dict(pages(job_id, model))[args.profile])
            profile(client, dict(pages(job_id, model))[args.profile])
            return
        print(f"{'page':<14} {'median_ms':>9} {'p95_ms':>8} {'cpu_ms':>7} {'queries':>7} {'status':>6}")
        results = []
        chosen = set(args.pages.split(",")) if args.pages else None
        for name, url in pages(job_id, model):
            if chosen is not None and name not in chosen:
                continue
            times, cpu, queries, status = measure(client, url, args.repeat)
            median = statistics.median(times)
            results.append((median, name))
            print(f"{name:<14} {median:9.1f} {p95(times):8.1f} {statistics.median(cpu):7.1f} {queries:7d} {status:6d}")
        slowest_ms, slowest = max(results)
        print(f"slowest_page {slowest} {slowest_ms:.1f}")
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
