"""Serving throughput: the embedded inference server under 1, 4, 8 and 16 concurrent clients, in one run.

    .venv/bin/python benchmarks/serve_throughput.py                   # about 3-4 min on 2 CPU cores
    .venv/bin/python benchmarks/serve_throughput.py --clients 1,8     # quicker: just the two the ratios need
    .venv/bin/python benchmarks/serve_throughput.py --decode-threads 0  # decode steps on all PyTorch threads

It starts the real server (`python -m inference_server`, a subprocess) on SmolLM2-135M with two LoRA adapters
made here (r=16, alpha=32, the 7 Llama projections, random non-zero weights: the speed of a trained adapter,
the text of none), then drives it with closed-loop clients: each client sends POST /generate, waits for the
answer, and sends its next request. Every request asks for --new-tokens tokens, greedy, on one of a few short
raw-text prompts (no chat template). TGI has no "ignore EOS" parameter, so lengths are kept equal another way:
the random adapters continue any prompt with text that does not reach the end-of-sequence token within a few
dozen tokens; each answer's `details.generated_tokens` is counted, and requests that stopped early (if any)
are reported in the `short` column.

  clients 1   the baseline: one request at a time, alternating between the two adapters
  clients N   N clients; client i asks for adapter (i + request number) % 2, so every batch mixes both
  single      8 clients all on the first adapter: mixed-adapter batches against single-adapter ones

Order of the runs: 1, 8, single, then the other counts, so the three the ratios need run close together
(the host's speed swings when other work shares it: compare numbers from one run only).
tok/s = generated tokens of all the level's requests / seconds from its first request to its last answer.
tok/cpu-s = the same tokens per second of CPU time the server process used (all its threads): steadier than
wall time on a shared host. p50/p95 = request latency, send to last byte. batch = the mean number of rows per
decode step, from the server's /metrics (inference_batch_decode_rows_total / tgi_batch_inference_count_total).

The model directory needs the real weights: `python manage.py basemodels install smollm2-135m` (into
var/models/base/smollm2-135m), or run the test suite once (it converts them into
~/.cache/finetune-studio-tests/smollm2-135m).

The last line is `speedup_at_8 <tok/s at 8 clients / tok/s at 1> mixed_vs_single <8 mixed / 8 single tok/s>`.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported (see measured-here.md)

ROOT = Path(__file__).resolve().parent.parent
BASE_NAME = "smollm2-135m"
MODEL_DIRS = (ROOT / "var/models/base/smollm2-135m", Path.home() / ".cache/finetune-studio-tests/smollm2-135m")
ADAPTERS = ("BENCH.PUBLIC.ADAPTER_A", "BENCH.PUBLIC.ADAPTER_B")
TOKEN = secrets.token_urlsafe(32)  # the server this run starts asks for it (inference_server/auth.py)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Raw-text prompts (9-15 tokens) that both adapters (seeds 1 and 2) continue greedily for 64 tokens or more.
PROMPTS = (
    "The customer called about a broken screen and said that",
    "Invoice 1234 was charged twice, and the customer wrote to us that",
    "To install the printer driver on a new laptop, first",
    "The history of the old harbour town begins in",
    "The parcel was delayed for three weeks because",
    "Release notes for version 2.3 of the mobile app:",
    "A recipe for a quick vegetable soup starts with",
    "Meeting summary: the team agreed to",
)


def make_adapter(base_dir: Path, out_dir: Path, seed: int) -> Path:
    """A LoRA adapter with random non-zero weights, like the tests' (no tokenizer: the server uses the base's)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base_dir))
    config = LoraConfig(r=16, lora_alpha=32, init_lora_weights=False, task_type="CAUSAL_LM",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    get_peft_model(model, config).save_pretrained(str(out_dir))
    return out_dir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(model_dir: Path, adapters: dict[str, Path], port: int, args, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "inference_server", "--base-model-dir", str(model_dir),
           "--base-model-name", BASE_NAME, "--port", str(port), "--log-level", "warning",
           "--max-batch-size", str(args.max_batch_size), "--max-concurrent-requests", str(max(32, args.max_clients)),
           "--max-new-tokens-limit", str(max(64, args.new_tokens))]
    if args.num_threads:
        cmd += ["--num-threads", str(args.num_threads)]
    if args.decode_threads is not None:
        cmd += ["--decode-threads", str(args.decode_threads)]
    for adapter_id, path in adapters.items():
        cmd += ["--adapter", f"{adapter_id}={path}"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               STUDIO_INFERENCE_TOKEN=TOKEN)
    env.pop("STUDIO_INFERENCE_TOKEN_FILE", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    return proc
        except OSError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise RuntimeError(f"server not healthy after 300 s:\n{log.read_text()}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers=AUTH),
                                timeout=30) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return samples


class Client(threading.Thread):
    """Sends `rounds` requests one after the other on one keep-alive connection."""

    def __init__(self, port: int, index: int, rounds: int, adapters: list[str], new_tokens: int,
                 start: threading.Barrier) -> None:
        super().__init__(daemon=True)
        self.port, self.index, self.rounds, self.adapters, self.new_tokens = port, index, rounds, adapters, new_tokens
        self.start_barrier = start
        self.latencies: list[float] = []
        self.tokens: list[int] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            self.start_barrier.wait()
            for request in range(self.rounds):
                adapter = self.adapters[(self.index + request) % len(self.adapters)]
                prompt = PROMPTS[(self.index * 3 + request) % len(PROMPTS)]
                body = json.dumps({"inputs": prompt, "parameters": {
                    "max_new_tokens": self.new_tokens, "adapter_id": adapter, "details": True}})
                started = time.perf_counter()
                connection.request("POST", "/generate", body, {"Content-Type": "application/json", **AUTH})
                response = connection.getresponse()
                payload = response.read()
                self.latencies.append(time.perf_counter() - started)
                if response.status != 200:
                    raise RuntimeError(f"HTTP {response.status}: {payload[:300]!r}")
                self.tokens.append(json.loads(payload)["details"]["generated_tokens"])
        except BaseException as exc:  # noqa: BLE001 - reported by the level
            self.error = exc
        finally:
            connection.close()


def run_level(port: int, pid: int, name: str, clients: int, adapters: list[str], args) -> dict:
    rounds = max(2, math.ceil(args.requests / clients))
    barrier = threading.Barrier(clients + 1)
    threads = [Client(port, i, rounds, adapters, args.new_tokens, barrier) for i in range(clients)]
    for thread in threads:
        thread.start()
    before, cpu_before = scrape(port), cpu_seconds(pid)
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_before
    after = scrape(port)
    errors = [t.error for t in threads if t.error is not None]
    if errors:
        raise RuntimeError(f"{name}: {errors[0]}")
    latencies = sorted(x for t in threads for x in t.latencies)
    tokens = [n for t in threads for n in t.tokens]
    decode = 'tgi_batch_inference_count_total{method=decode}'
    steps = after.get(decode, 0) - before.get(decode, 0)
    rows = after.get("inference_batch_decode_rows_total", 0) - before.get("inference_batch_decode_rows_total", 0)
    return {"name": name, "clients": clients, "requests": len(tokens), "tokens": sum(tokens),
            "short": sum(1 for n in tokens if n < args.new_tokens), "seconds": seconds,
            "tok_s": sum(tokens) / seconds, "tok_cpu_s": sum(tokens) / cpu if cpu > 0 else float("nan"),
            "p50": statistics.median(latencies), "p95": latencies[max(0, math.ceil(0.95 * len(latencies)) - 1)],
            "batch": rows / steps if steps else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="base model directory (default: var/models/base/smollm2-135m, "
                                                    "else the test cache's)")
    parser.add_argument("--clients", default="1,4,8,16", help="concurrent client counts (1 and 8 are always run)")
    parser.add_argument("--new-tokens", type=int, default=48, help="max_new_tokens of every request (default 48)")
    parser.add_argument("--requests", type=int, default=8,
                        help="requests per level at least (at least 2 per client; default 8)")
    parser.add_argument("--max-batch-size", type=int, default=16, help="the server's --max-batch-size")
    parser.add_argument("--num-threads", type=int, default=0, help="the server's --num-threads (default: its own)")
    parser.add_argument("--decode-threads", type=int, default=None,
                        help="the server's --decode-threads (default: its own: 1 on a 2-core CPU)")
    args = parser.parse_args()

    model_dir = args.model or next((d for d in MODEL_DIRS if (d / "config.json").is_file()), None)
    if model_dir is None or not any(model_dir.glob("*.safetensors")):
        sys.exit(f"no model weights in {model_dir or MODEL_DIRS[0]}: see this script's docstring")
    counts = sorted({int(c) for c in args.clients.split(",") if c.strip()} | {1, 8})
    args.max_clients = max(counts)

    workdir = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    proc = None
    try:
        started = time.perf_counter()
        adapters = {adapter_id: make_adapter(model_dir, workdir / f"adapter-{i}", seed=i + 1)
                    for i, adapter_id in enumerate(ADAPTERS)}
        port = free_port()
        proc = start_server(model_dir, adapters, port, args, workdir / "server.log")
        print(f"model {model_dir}, 2 random LoRA adapters (r=16), {args.new_tokens} new tokens a request, "
              f"server --max-batch-size {args.max_batch_size}"
              f"{f' --num-threads {args.num_threads}' if args.num_threads else ''}"
              f"{f' --decode-threads {args.decode_threads}' if args.decode_threads is not None else ''}, "
              f"ready in {time.perf_counter() - started:.0f} s", flush=True)
        warm = argparse.Namespace(**{**vars(args), "requests": 2, "new_tokens": 4})
        run_level(port, proc.pid, "warm-up", 2, list(ADAPTERS), warm)

        plan = [("1", 1, list(ADAPTERS)), ("8", 8, list(ADAPTERS)), ("8 single", 8, [ADAPTERS[0]])]
        plan += [(str(n), n, list(ADAPTERS)) for n in counts if n not in (1, 8)]
        results = {}
        for name, clients, names in plan:
            results[name] = run_level(port, proc.pid, name, clients, names, args)
            r = results[name]
            print(f"  {name}: {r['requests']} requests in {r['seconds']:.1f} s", flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)

    base = results["1"]["tok_s"]
    order = [str(n) for n in counts] + ["8 single"]
    print(f"{'clients':<9} {'adapters':<8} {'requests':>8} {'short':>5} {'tokens':>6} {'seconds':>7} {'tok/s':>6} "
          f"{'x base':>6} {'tok/cpu-s':>9} {'p50 s':>6} {'p95 s':>6} {'batch':>5}")
    for name in order:
        r = results[name]
        print(f"{r['clients']:<9} {'single' if 'single' in name else 'mixed':<8} {r['requests']:>8} {r['short']:>5} "
              f"{r['tokens']:>6} {r['seconds']:>7.1f} {r['tok_s']:>6.1f} {r['tok_s'] / base:>6.2f} "
              f"{r['tok_cpu_s']:>9.1f} {r['p50']:>6.2f} {r['p95']:>6.2f} {r['batch']:>5.1f}")
    print(f"speedup_at_8 {results['8']['tok_s'] / base:.2f} "
          f"mixed_vs_single {results['8']['tok_s'] / results['8 single']['tok_s']:.2f}")


if __name__ == "__main__":
    main()
