"""Preparing a job's training data: peak memory and rows/s, today's way against the token store.

    .venv/bin/python benchmarks/prepare_memory.py                       # 100 MB and 1 GB tables
    .venv/bin/python benchmarks/prepare_memory.py --sizes 20 --train-steps 3   # quick check

For each size a CSV of prompt/completion rows (~400 bytes each) is generated and loaded through the
product's own path (PUT + COPY INTO, as benchmarks/load_throughput.py does) into a fresh studio in a
temporary folder, removed at the end. Each case runs in its own process, so its peak RSS is its own:

  model       smollm2-135m's tokenizer and weights loaded (fp32, as on a CPU): the model's own footprint
  in_memory   how a job prepared its data before the token store: jobs.training_data.read_rows (every row
              as Python tuples), check_rows, split_validation, then encode_rows over all of it (what
              train() did in its "preparing" phase). Killed once its RSS passes --cap-gb.
  stream      the token store's reading and checking alone: read_batches + RowCheck over every row
  token_store jobs.training_data.prepare_tokens: Arrow batches, checked and tokenised batch by batch into
              a token store on disk (what a job does now)
  train       train() from that store for --train-steps optimizer steps (batch 8), then cancelled

Both preparations check the same limits (smollm2-135m's token allotments, and the guide's 1 GB of data
a job rather than its own 100 MiB) and tokenise with the same chat template. The
last line is `prepare_peak_rss_mb <token_store at the largest size> model_rss_mb <model>`.
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
import threading
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load_throughput import CATEGORIES, DATABASE, WORDS, django_setup  # noqa: E402

QUERY = "SELECT prompt, completion FROM bench.public.examples"
GUIDE_LIMIT_BYTES = 1_000_000_000
BASE_MODEL = "smollm2-135m"
DEFAULT_MODEL_DIR = Path(os.environ.get("STUDIO_TEST_CACHE", Path.home() / ".cache" / "finetune-studio-tests")) / BASE_MODEL


def generate(path: Path, size_mb: int) -> int:
    """Rows until the file has size_mb * 10^6 bytes: under the guide's 1 GB limit at 1000 MB, quotes included."""
    rng = random.Random(0)
    limit, rows = size_mb * 1_000_000, 0
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["prompt", "completion"])
        while f.tell() < limit - 500_000:
            for _ in range(1000):
                prompt = "Classify this support ticket: " + " ".join(rng.choices(WORDS, k=rng.randint(30, 70)))
                completion = rng.choice(CATEGORIES) + ". " + " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))
                writer.writerow([prompt, completion])
            rows += 1000
    return rows


def setup(data_dir: Path, source: Path) -> None:
    """A fresh studio with BENCH.PUBLIC.EXAMPLES loaded from the CSV by PUT + COPY INTO."""
    from benchmarks.load_throughput import case_put_copy, prepare

    prepare(data_dir)
    case_put_copy(source)


def _limits() -> dict:
    from catalog.models import BaseModel

    base = BaseModel.objects.get(name=BASE_MODEL)
    # The guide's 1 GB a job: smollm2-135m's own limit (100 MiB) would refuse the 1 GB table at once.
    return {"max_training_bytes": max(GUIDE_LIMIT_BYTES, base.training_data_limit_bytes),
            "max_prompt_tokens": base.max_prompt_tokens,
            "max_completion_tokens": base.max_completion_tokens}


def _admin_session():
    from django.contrib.auth import get_user_model

    from access.session import Session

    admin = get_user_model().objects.get(username="admin")
    return Session(user=admin, role="ACCOUNTADMIN", warehouse="COMPUTE_WH", database=DATABASE, schema="PUBLIC")


# -- the cases, each run in a child process --------------------------------------------------------

def case_model(model_dir: Path, workdir: Path, train_steps: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoTokenizer.from_pretrained(str(model_dir))
    AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)  # as train() loads it on a CPU
    return {"rows": 0}


def case_in_memory(model_dir: Path, workdir: Path, train_steps: int) -> dict:
    from transformers import AutoTokenizer

    from jobs.training_data import read_rows
    from trainer import TrainConfig
    from trainer.prepare import check_rows, encode_rows, split_validation

    limits = _limits()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    rows = read_rows(_admin_session(), QUERY)
    check_rows(rows, max_training_bytes=limits["max_training_bytes"])
    train_rows, val_rows = split_validation(rows, fraction=TrainConfig.validation_fraction, seed=0)
    examples = encode_rows(tokenizer, list(train_rows) + list(val_rows), limits["max_prompt_tokens"],
                           limits["max_completion_tokens"])
    return {"rows": len(examples)}


def case_token_store(model_dir: Path, workdir: Path, train_steps: int) -> dict:
    from transformers import AutoTokenizer

    from jobs.training_data import prepare_tokens
    from trainer import TrainConfig

    limits = _limits()
    session = _admin_session()
    job = SimpleNamespace(user=session.user, role="ACCOUNTADMIN", warehouse="COMPUTE_WH", query_database=DATABASE,
                          query_schema="PUBLIC", training_data=QUERY, validation_data="")
    store = prepare_tokens(job, workdir / "tokens", AutoTokenizer.from_pretrained(str(model_dir)),
                           validation_fraction=TrainConfig.validation_fraction, should_cancel=lambda: False, **limits)
    size = sum(f.stat().st_size for f in store.directory.iterdir())
    return {"rows": len(store.train) + len(store.validation), "store_mb": size / 1e6}


def case_stream(model_dir: Path, workdir: Path, train_steps: int) -> dict:
    """The token store's reading and checking alone (no tokenising): every row of the table, in batches."""
    from jobs.training_data import read_batches
    from trainer.prepare import RowCheck

    check = RowCheck(_limits()["max_training_bytes"])
    for rows in read_batches(_admin_session(), QUERY):
        check.add(rows)
    check.raise_if_unusable()
    return {"rows": check.rows}


def case_train(model_dir: Path, workdir: Path, train_steps: int) -> dict:
    from trainer import TrainConfig, TrainingCancelled, TrainingHooks, train

    class Steps(TrainingHooks):
        def __init__(self) -> None:
            self.steps, self.first = 0, None

        def on_step(self, m) -> None:
            self.steps += 1
            self.first = self.first or time.perf_counter()

        def should_cancel(self) -> bool:
            return self.steps >= train_steps

    hooks = Steps()
    config = TrainConfig(base_model_path=str(model_dir), output_dir=str(workdir / "adapter"), max_epochs=1,
                         batch_size=8, adapter_check_prompts=0, token_store=str(workdir / "tokens"))
    try:
        train(config, (), (), hooks)
    except TrainingCancelled:
        pass
    per_step = (time.perf_counter() - hooks.first) / max(1, hooks.steps - 1) if hooks.first else float("nan")
    return {"rows": hooks.steps * 8, "steps": hooks.steps, "seconds_per_step": per_step}


CASES = {"model": case_model, "in_memory": case_in_memory, "token_store": case_token_store, "stream": case_stream,
         "train": case_train}


def run_case(name: str, model_dir: Path, workdir: Path, data_dir: Path, train_steps: int) -> dict:
    django_setup(data_dir)
    start = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    result = CASES[name](model_dir, workdir, train_steps)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds of every thread (the tokenizer's too): a fair measure of work on a machine others share.
    return {"case": name, "seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu_before,
            "peak_rss_mb": usage.ru_maxrss / 1024, **result}


def child(name: str, args: argparse.Namespace, workdir: Path, data_dir: Path, cap_gb: float | None = None) -> dict:
    """Run one case in a fresh process; with cap_gb, kill it once its RSS passes that many GB, and with
    --time-limit-s once it ran that long (its peak RSS so far is reported)."""
    command = [sys.executable, __file__, "--case", name, "--model", str(args.model), "--workdir", str(workdir),
               "--data-dir", str(data_dir), "--train-steps", str(args.train_steps)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    capped, timed_out = threading.Event(), threading.Event()
    limited = bool(args.time_limit_s) and name in ("token_store", "in_memory")  # the cases that tokenise
    seen = [0.0]

    def watch() -> None:
        while process.poll() is None:
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
                rss_gb = int(status.split("VmRSS:")[1].split()[0]) / 2**20
            except (OSError, IndexError):
                return
            seen[0] = max(seen[0], rss_gb)
            if cap_gb is not None and rss_gb > cap_gb:
                capped.set()
                process.kill()
                return
            if limited and time.perf_counter() - started > args.time_limit_s:
                timed_out.set()
                process.kill()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = process.communicate()
    watcher.join()
    if capped.is_set() or timed_out.is_set():
        return {"case": name, "killed": "cap" if capped.is_set() else "time", "seconds": time.perf_counter() - started,
                "peak_rss_mb": seen[0] * 1024, "rows": 0}
    if process.returncode != 0:
        raise SystemExit(f"case {name} failed:\n{out}\n{err[-4000:]}")
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000", help="table sizes in MB, comma separated (default 100,1000)")
    parser.add_argument("--train-steps", type=int, default=10, help="optimizer steps trained from the store (default 10)")
    parser.add_argument("--cap-gb", type=float, default=6.0, help="kill the in_memory case past this RSS (default 6)")
    parser.add_argument("--time-limit-s", type=float, default=None,
                        help="stop a preparation after this long, reporting its peak RSS so far (a slow machine's 1 GB)")
    parser.add_argument("--skip-in-memory-above", type=int, default=None, metavar="MB",
                        help="run the in_memory case only up to this table size")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR, help=f"{BASE_MODEL}'s converted checkpoint")
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(run_case(args.case, args.model, args.workdir, args.data_dir, args.train_steps)))
        return
    if not (args.model / "config.json").exists():
        raise SystemExit(f"no {BASE_MODEL} checkpoint at {args.model} (the test suite converts one there): pass --model")

    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        workdir = Path(tempfile.mkdtemp(prefix="prepare-bench-"))
        try:
            source = workdir / "examples.csv"
            rows = generate(source, size)
            data_dir = workdir / "data"
            out = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                                  "from benchmarks.prepare_memory import setup, django_setup; from pathlib import Path; "
                                  f"setup(Path({str(data_dir)!r}), Path({str(source)!r}))"],
                                 capture_output=True, text=True, cwd=ROOT)
            if out.returncode != 0:
                raise SystemExit(out.stderr[-4000:])
            print(f"{size} MB: {source.stat().st_size / 1e6:.0f} MB CSV, {rows:,} rows loaded", flush=True)
            source.unlink()
            cases = ["model", "stream", "token_store", "train", "in_memory"]  # the old way last: at 1 GB it is killed
            if args.skip_in_memory_above is not None and size > args.skip_in_memory_above:
                cases.remove("in_memory")
            if args.train_steps <= 0:
                cases.remove("train")
            for name in cases:
                result = child(name, args, workdir, data_dir, args.cap_gb if name == "in_memory" else None)
                results.append({"size_mb": size, **result})
                print("  " + json.dumps(results[-1]), flush=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"\n{'size':>6} {'case':<12} {'rows':>11} {'seconds':>9} {'rows/s':>9} {'rows/CPU-s':>10} {'peak RSS MB':>12}  note")
    for r in results:
        rate = f"{r['rows'] / r['seconds']:,.0f}" if r["rows"] and r["case"] != "train" else "-"
        cpu_rate = f"{r['rows'] / r['cpu_seconds']:,.0f}" if r["rows"] and r.get("cpu_seconds") and r["case"] != "train" else "-"
        note = (f"killed past {args.cap_gb:g} GB" if r.get("killed") == "cap" else
                f"stopped after {args.time_limit_s:g} s, unfinished" if r.get("killed") == "time" else
                f"store {r['store_mb']:,.0f} MB on disk" if "store_mb" in r else
                f"{r['steps']} steps, {r['seconds_per_step']:.2f} s/step" if "steps" in r else "")
        print(f"{r['size_mb']:>6} {r['case']:<12} {r['rows']:>11,} {r['seconds']:>9.1f} {rate:>9} {cpu_rate:>10} "
              f"{r['peak_rss_mb']:>12,.0f}  {note}")
    largest = max(r["size_mb"] for r in results)
    store_peak = next(r["peak_rss_mb"] for r in results if r["size_mb"] == largest and r["case"] == "token_store")
    model_peak = next(r["peak_rss_mb"] for r in results if r["size_mb"] == largest and r["case"] == "model")
    print(f"prepare_peak_rss_mb {store_peak:.0f} model_rss_mb {model_peak:.0f}")


if __name__ == "__main__":
    main()
