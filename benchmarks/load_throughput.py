"""Load throughput: a CSV of prompt/completion pairs loaded the naive way and with PUT + COPY INTO, then
read back as a training query.

    .venv/bin/python benchmarks/load_throughput.py               # 1 GB CSV
    .venv/bin/python benchmarks/load_throughput.py --size-mb 50  # quick check

Everything (the CSV, a fresh metadata database, DuckDB files, stages) lives in a temporary folder that
is removed at the end. Each case runs in its own process so its peak RSS is its own. Cases:

  naive_insert   Python's csv module + executemany INSERT in batches of 10,000 rows into DuckDB
  put_copy       PUT file://… @~ (AUTO_COMPRESS=FALSE) + COPY INTO … FROM @~
  read_fetchall  SELECT prompt, completion … fetchall() on a DuckDB connection
  read_rows      jobs.training_data.read_rows(…), what a fine-tuning job calls

The last line is `load_speedup <put_copy rows/s ÷ naive rows/s> read_rows_per_s <n>`.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "BENCH"
BATCH = 10_000
WORDS = ("order parcel refund invoice login password shipping delayed broken charged twice account address "
         "warranty screen battery update subscription cancel upgrade, \"quoted\" words").split()
CATEGORIES = ("BILLING", "SHIPPING", "TECHNICAL", "ACCOUNT")


def django_setup(data_dir: Path) -> None:
    os.environ["STUDIO_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def generate(path: Path, size_mb: int) -> int:
    """Prompt/completion rows (~300 bytes each, commas and quotes included) until the file has size_mb."""
    rng = random.Random(0)
    limit, rows = size_mb * 1024 * 1024, 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt", "completion"])
        while f.tell() < limit:
            for _ in range(1000):
                prompt = "Classify this support ticket: " + " ".join(rng.choices(WORDS, k=rng.randint(20, 60)))
                completion = rng.choice(CATEGORIES) + ". " + " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))
                writer.writerow([prompt, completion])
            rows += 1000
    return rows


def prepare(data_dir: Path) -> None:
    django_setup(data_dir)
    from django.core.management import call_command

    from access.bootstrap import bootstrap
    from catalog import accountdata
    from catalog.stages import open_database

    call_command("migrate", verbosity=0)
    bootstrap(password="benchmark", demo=False)
    accountdata.create_database(DATABASE)
    con = open_database(DATABASE)
    for table in ("NAIVE", "EXAMPLES"):
        con.execute(f'CREATE TABLE "PUBLIC"."{table}" ("PROMPT" VARCHAR, "COMPLETION" VARCHAR)')
    con.close()


# -- the cases, each run in a child process --------------------------------------------------------

def case_naive_insert(source: Path) -> int:
    from catalog.stages import open_database

    con = open_database(DATABASE)
    rows = 0
    with open(source, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        batch = []
        con.execute("BEGIN")
        for record in reader:
            batch.append(record)
            if len(batch) == BATCH:
                con.executemany('INSERT INTO "PUBLIC"."NAIVE" VALUES (?, ?)', batch)
                rows += len(batch)
                batch = []
        if batch:
            con.executemany('INSERT INTO "PUBLIC"."NAIVE" VALUES (?, ?)', batch)
            rows += len(batch)
        con.execute("COMMIT")
    con.close()
    return rows


def case_put_copy(source: Path) -> int:
    from django.contrib.auth import get_user_model

    from access.session import Session
    from sqlengine.executor import Executor

    admin = get_user_model().objects.get(username="admin")
    executor = Executor(Session(user=admin, database=DATABASE, schema="PUBLIC"), local_files=True)
    executor.execute(f"PUT 'file://{source}' @~ AUTO_COMPRESS=FALSE OVERWRITE=TRUE")
    result = executor.execute(f"COPY INTO examples FROM @~/{source.name} "
                              "FILE_FORMAT=(TYPE=CSV SKIP_HEADER=1 FIELD_OPTIONALLY_ENCLOSED_BY='\"')")[-1]
    (row,) = result.rows
    assert row[1] == "LOADED", row
    return int(row[3])


QUERY = "SELECT prompt, completion FROM bench.public.examples"


def case_read_fetchall(source: Path) -> int:
    from catalog import accountdata

    with accountdata.connect(DATABASE, "PUBLIC") as con:
        return len(con.execute('SELECT "PROMPT", "COMPLETION" FROM "PUBLIC"."EXAMPLES"').fetchall())


def case_read_rows(source: Path) -> int:
    from access.session import Session
    from jobs.training_data import read_rows

    rows = read_rows(Session(user=None, role="ACCOUNTADMIN", database=DATABASE, schema="PUBLIC"), QUERY)
    return sum(1 for _ in rows)


CASES = {"naive_insert": case_naive_insert, "put_copy": case_put_copy, "read_fetchall": case_read_fetchall,
         "read_rows": case_read_rows}


def run_case(name: str, source: Path, data_dir: Path) -> dict:
    django_setup(data_dir)
    start = time.perf_counter()
    rows = CASES[name](source)
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"case": name, "rows": rows, "seconds": seconds, "peak_rss_mb": peak_kb / 1024}


def child(name: str, source: Path, data_dir: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--case", name, "--csv", str(source), "--data-dir", str(data_dir)],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"case {name} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="size of the generated CSV (default 1024)")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.csv, args.data_dir)))
        return

    workdir = Path(tempfile.mkdtemp(prefix="load-bench-"))
    try:
        source = workdir / "examples.csv"
        started = time.perf_counter()
        generated = generate(source, args.size_mb)
        print(f"generated {source.stat().st_size / 2**20:.0f} MB, {generated:,} rows in "
              f"{time.perf_counter() - started:.1f} s")
        data_dir = workdir / "data"
        prepare_out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                                      f"from benchmarks.load_throughput import prepare; from pathlib import Path; "
                                      f"prepare(Path({str(data_dir)!r}))"], capture_output=True, text=True, cwd=ROOT)
        if prepare_out.returncode != 0:
            raise SystemExit(prepare_out.stderr)
        results = [child(name, source, data_dir) for name in CASES]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"{'case':<15} {'rows':>12} {'seconds':>9} {'rows/s':>12} {'peak RSS MB':>12}")
    for r in results:
        print(f"{r['case']:<15} {r['rows']:>12,} {r['seconds']:>9.2f} {r['rows'] / r['seconds']:>12,.0f} "
              f"{r['peak_rss_mb']:>12.0f}")
    by_case = {r["case"]: r for r in results}
    speedup = (by_case["put_copy"]["rows"] / by_case["put_copy"]["seconds"]) / (
        by_case["naive_insert"]["rows"] / by_case["naive_insert"]["seconds"])
    read_rate = by_case["read_rows"]["rows"] / by_case["read_rows"]["seconds"]
    print(f"load_speedup {speedup:.1f} read_rows_per_s {read_rate:.0f}")


if __name__ == "__main__":
    main()
