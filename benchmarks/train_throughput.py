"""Training throughput: LoRA fine-tuning of smollm2-135m the naive way and the way the studio trains, in one run.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/train_throughput.py      # 6-8 min on 2 CPU cores
    .venv/bin/python benchmarks/train_throughput.py --rows 16 --val-rows 8       # quick check, ~2.5 min
    python3 benchmarks/train_throughput.py --device cuda --random-init --model DIR --rows 2048

Both modes train the same LoRA (r=16, alpha=32, dropout 0, the 7 Llama projections) on the same seeded
synthetic support-ticket rows (prompts of 20-200 words, 62-244 tokens with SmolLM2's chat template and
system prompt; completions of 9-64 tokens that name the ticket's category and repeat its opening),
batch 8, AdamW with the same peak LR, no weight decay, gradient clipping at 1.0, and the same LR
schedule (linear warmup over ceil(10% of the steps), then linear decay: trainer.train.lr_at, handed to
the Trainer as a LambdaLR, because the Trainer's own linear warmup starts at LR 0 and would waste the
first of the few steps a CPU run can afford). Labels mask the prompt (trainer.prepare.encode_rows).

  baseline  every row padded to the longest row of the whole data set; plain PEFT model +
            transformers.Trainer (random batch order, model's own loss over full logits, no saving)
  ours      trainer.train.train(TrainConfig(...)), exactly what a fine-tuning job runs: length-grouped
            batches padded to the longest row of the batch (rounded up to 64 tokens on CUDA), and
            trainer.loss: lm_head only on completion positions and, on the CPU, the prefix all rows of
            a batch share computed once

Each mode runs in its own process (with OMP_WAIT_POLICY=PASSIVE unless set: see measured-here.md).
tokens/s = real (non-padding) tokens of the training rows x epochs / training seconds, where training
seconds are: baseline, Trainer callbacks on_train_begin .. on_train_end; ours, the time train() spends in
its "training" phase (TrainingHooks.on_phase), so loading, tokenising, evaluating and saving are not
counted in either. tok/cpu-s is the same tokens per second of CPU time the
process used while training (all its threads): steadier than wall time on a host shared with other work.
Peak memory is the process's peak RSS (VmHWM) read right after training (on CUDA:
torch.cuda.max_memory_allocated), so the final evaluation does not count either.
Both adapters are then scored by the same code on the same validation rows: the token-weighted mean
next-token loss over the completion tokens, from full logits. Their ratio moves by several % from seed
to seed (batch order), whichever loss train() uses: both losses give the same adapter (test_loss.py).

The model directory needs config.json and the tokenizer; with --random-init the weights are built from the
config with random values (seeded) instead of read, for machines where the 540 MB checkpoint is missing
(the throughput is the same; the losses are those of an untrained model). To get the real weights:
`python manage.py basemodels install smollm2-135m` (into var/models/base/smollm2-135m), or run the test
suite once (it converts them into ~/.cache/finetune-studio-tests/smollm2-135m).

The last line is `speedup <ours/baseline tokens/s> memory_ratio <ours/baseline peak> val_loss_ratio <ours/baseline>`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_CANDIDATES = (Path.home() / ".cache" / "finetune-studio-tests" / "smollm2-135m",
                    ROOT / "var" / "models" / "base" / "smollm2-135m")
MODES = ("baseline", "ours")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
WARMUP_RATIO = 0.1

WORDS = ("order parcel refund invoice login password shipping delayed broken charged twice account address "
         "warranty screen battery update subscription cancel upgrade courier tracking discount payment card "
         "email profile settings crash error checkout delivery return exchange label missing damaged box "
         "support agent manager phone call week month yesterday today morning evening please help thanks "
         "again still never always reply answer price plan monthly yearly store app website browser").split()
CATEGORIES = {"refund": "BILLING", "invoice": "BILLING", "payment": "BILLING", "parcel": "SHIPPING",
              "courier": "SHIPPING", "tracking": "SHIPPING", "crash": "TECHNICAL", "error": "TECHNICAL",
              "browser": "TECHNICAL", "password": "ACCOUNT", "login": "ACCOUNT", "profile": "ACCOUNT"}


# -- data ----------------------------------------------------------------------------------------------

def make_rows(n: int, rng: random.Random) -> list[tuple[str, str]]:
    """Support tickets: the completion names the category of the ticket's keyword and repeats its opening."""
    rows = []
    for _ in range(n):
        keyword = rng.choice(sorted(CATEGORIES))
        words = rng.choices(WORDS, k=rng.randint(20, 200))
        words.insert(rng.randrange(len(words)), keyword)
        prompt = "Classify this support ticket and summarise it: " + " ".join(words)
        completion = f"{CATEGORIES[keyword]}. Customer wrote: " + " ".join(words[: rng.randint(1, 52)])
        rows.append((prompt, completion))
    return rows


# -- shared by both modes (child processes) --------------------------------------------------------------

def peak_rss_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def peak_memory_bytes(device: str) -> int:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated()
    return peak_rss_bytes()


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def validation_loss(model, tokenizer, val_rows, device: str, batch_size: int) -> float:
    """Token-weighted mean next-token cross-entropy over the completion tokens, from the full logits."""
    import torch

    from trainer.prepare import IGNORE_INDEX, encode_rows
    from trainer.train import collate

    examples = encode_rows(tokenizer, val_rows)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            batch = collate(examples[i : i + batch_size], pad_id, device)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            targets = batch["labels"][:, 1:]
            total += torch.nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.size(-1)), targets.reshape(-1),
                ignore_index=IGNORE_INDEX, reduction="sum").item()
            count += int((targets != IGNORE_INDEX).sum())
    return total / max(1, count)


def load_model(model_dir: str, device: str):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, use_cache=False).to(device)


# -- the modes -----------------------------------------------------------------------------------------

def run_baseline(args, rows, val_rows) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, Trainer, TrainerCallback, TrainingArguments

    from trainer.prepare import IGNORE_INDEX, encode_rows
    from trainer.train import lr_at

    torch.manual_seed(args.seed)
    if args.device == "cpu":
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))  # what train() does
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = get_peft_model(load_model(args.model_dir, args.device), LoraConfig(
        task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=0.0, target_modules=list(LORA_TARGETS)))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    examples = encode_rows(tokenizer, rows)
    width = max(len(e.input_ids) for e in examples)  # the longest row of the whole data set
    dataset = []
    for e in examples:
        n, pad = len(e.input_ids), width - len(e.input_ids)
        dataset.append({"input_ids": torch.tensor(e.input_ids + [pad_id] * pad),
                        "attention_mask": torch.tensor([1] * n + [0] * pad),
                        "labels": torch.tensor(e.labels + [IGNORE_INDEX] * pad)})
    real = sum(len(e.input_ids) for e in examples)

    total_steps = math.ceil(len(dataset) / args.batch_size) * args.epochs
    warmup_steps = math.ceil(total_steps * WARMUP_RATIO)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, total_steps, 1.0, warmup_steps))

    timing = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, *a, **k):
            sync(args.device)
            timing["start"], timing["cpu_start"] = time.perf_counter(), time.process_time()

        def on_train_end(self, *a, **k):
            sync(args.device)
            timing["end"], timing["cpu_end"] = time.perf_counter(), time.process_time()
            timing["peak"] = peak_memory_bytes(args.device)

    out = tempfile.mkdtemp(prefix="train-bench-hf-")
    try:
        training_args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=args.batch_size, num_train_epochs=args.epochs,
            learning_rate=args.lr, lr_scheduler_type="linear", warmup_steps=WARMUP_RATIO, weight_decay=0.0,
            max_grad_norm=1.0, optim="adamw_torch", seed=args.seed, use_cpu=args.device == "cpu",
            bf16=False, save_strategy="no", eval_strategy="no", logging_strategy="no", report_to="none",
            disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0)
        trainer = Trainer(model=model, args=training_args, train_dataset=dataset, callbacks=[Clock()],
                          optimizers=(optimizer, schedule))
        output = trainer.train()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"train_seconds": timing["end"] - timing["start"],
            "train_cpu_seconds": timing["cpu_end"] - timing["cpu_start"], "trained_tokens": real * args.epochs,
            "positions": len(dataset) * width * args.epochs, "steps": output.global_step,
            "peak_memory": timing["peak"],
            "val_loss": validation_loss(model, tokenizer, val_rows, args.device, args.batch_size)}


def run_ours(args, rows, val_rows) -> dict:
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer

    from trainer import TrainConfig, TrainingHooks

    train_module = importlib.import_module("trainer.train")  # the package's `train` attribute is the function

    positions = {"real": 0, "all": 0}
    collate = train_module.collate

    def counting_collate(examples, pad_id, device, multiple=1):  # only training batches: no validation rows given
        batch = collate(examples, pad_id, device, multiple)
        positions["all"] += batch["input_ids"].numel()
        positions["real"] += int(batch["attention_mask"].sum())
        return batch

    train_module.collate = counting_collate

    class Clock(TrainingHooks):
        def __init__(self):
            self.phase, self.since, self.cpu_since, self.training, self.cpu, self.peak = None, 0.0, 0.0, 0.0, 0.0, 0

        def on_phase(self, phase):
            sync(args.device)
            now, cpu = time.perf_counter(), time.process_time()
            if self.phase == "training":
                self.training += now - self.since
                self.cpu += cpu - self.cpu_since
                self.peak = peak_memory_bytes(args.device)
            self.phase, self.since, self.cpu_since = phase, now, cpu

    out = Path(tempfile.mkdtemp(prefix="train-bench-ours-")) / "adapter"
    try:
        clock = Clock()
        config = TrainConfig(base_model_path=args.model_dir, output_dir=str(out), max_epochs=args.epochs,
                             learning_rate=args.lr, batch_size=args.batch_size, warmup_ratio=WARMUP_RATIO,
                             adapter_check_prompts=0, seed=args.seed, device=args.device)
        result = train_module.train(config, rows, [], clock)
        train_module.collate = collate
        tokenizer = AutoTokenizer.from_pretrained(str(out))
        model = PeftModel.from_pretrained(load_model(args.model_dir, args.device), str(out)).to(args.device)
        val_loss = validation_loss(model, tokenizer, val_rows, args.device, args.batch_size)
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    return {"train_seconds": clock.training, "train_cpu_seconds": clock.cpu, "trained_tokens": result.trained_tokens,
            "positions": positions["all"],
            "steps": result.steps, "peak_memory": clock.peak, "val_loss": val_loss}


def run_mode(args) -> dict:
    sys.path.insert(0, str(ROOT))
    data = json.loads(Path(args.data).read_text())
    rows = [tuple(r) for r in data["train"]]
    val_rows = [tuple(r) for r in data["val"]]
    result = {"baseline": run_baseline, "ours": run_ours}[args.mode](args, rows, val_rows)
    return {"mode": args.mode, **result}


# -- the parent ----------------------------------------------------------------------------------------

def find_model(requested: Path | None, random_init: bool) -> Path:
    candidates = [requested] if requested else [c for c in MODEL_CANDIDATES if (c / "config.json").exists()]
    if not candidates or not (candidates[0] / "config.json").exists():
        where = requested or " or ".join(str(c) for c in MODEL_CANDIDATES)
        raise SystemExit(f"No model directory with a config.json at {where}.\nInstall smollm2-135m with "
                         "`python manage.py basemodels install smollm2-135m` (it lands in var/models/base/"
                         "smollm2-135m), or point --model at a directory with config.json and the tokenizer "
                         "files (add --random-init when it has no weights).")
    model = candidates[0]
    if not random_init and not any(model.glob("*.safetensors")):
        raise SystemExit(f"{model} has no *.safetensors weights. Install them with `python manage.py basemodels "
                         "install smollm2-135m`, or pass --random-init to train a randomly initialised model "
                         "built from its config.json.")
    return model


def build_random_model(model_dir: Path, target: Path, seed: int) -> None:
    """config.json + tokenizer of model_dir, random weights (seeded), saved as a checkpoint train() can load."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(str(target))
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(str(target))


def child(mode: str, args, model_dir: Path, data: Path) -> dict:
    command = [sys.executable, __file__, "--mode", mode, "--data", str(data), "--model-dir", str(model_dir),
               "--device", args.device, "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
               "--lr", str(args.lr), "--seed", str(args.seed)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # measured-here.md: 2.5x faster CPU training than spin-waiting
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    out = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env)
    if out.returncode != 0:
        raise SystemExit(f"mode {mode} failed:\n{out.stdout[-4000:]}\n{out.stderr[-8000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="model directory (default: the test cache's or "
                        "var/models/base/smollm2-135m)")
    parser.add_argument("--random-init", action="store_true", help="random weights from the model's config.json")
    parser.add_argument("--rows", type=int, default=160, help="training rows (default 160: 20 steps)")
    parser.add_argument("--val-rows", type=int, default=32, help="validation rows (default 32)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs (default 1)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak LR (default 1e-3, the catalog's for smollm2-135m)")
    parser.add_argument("--device", default="cpu", help="cpu (fp32) or cuda (bf16)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of baseline,ours")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args)))
        return

    model_dir = find_model(args.model, args.random_init)
    modes = [m for m in args.modes.split(",") if m]
    workdir = Path(tempfile.mkdtemp(prefix="train-bench-"))
    try:
        if args.random_init:
            sys.path.insert(0, str(ROOT))
            build_random_model(model_dir, workdir / "random-model", args.seed)
            model_dir = workdir / "random-model"
        rng = random.Random(args.seed)
        data = workdir / "rows.json"
        data.write_text(json.dumps({"train": make_rows(args.rows, rng), "val": make_rows(args.val_rows, rng)}))
        print(f"model {model_dir}{' (random weights)' if args.random_init else ''}, device {args.device}, "
              f"{args.rows} training rows x {args.epochs} epochs, {args.val_rows} validation rows, "
              f"batch {args.batch_size}, lr {args.lr:g}", flush=True)
        results = []
        for mode in modes:
            started = time.perf_counter()
            results.append(child(mode, args, model_dir, data))
            print(f"  {mode}: done in {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    memory = "peak CUDA MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    print(f"{'mode':<9} {'steps':>5} {'train s':>8} {'tokens/s':>9} {'tok/cpu-s':>9} {'padding %':>9} {memory:>13} "
          f"{'val loss':>9}")
    for r in results:
        r["tokens_per_s"] = r["trained_tokens"] / r["train_seconds"]
        padding = 100 * (1 - r["trained_tokens"] / r["positions"]) if r["positions"] else float("nan")
        print(f"{r['mode']:<9} {r['steps']:>5} {r['train_seconds']:>8.1f} {r['tokens_per_s']:>9.1f} "
              f"{r['trained_tokens'] / r['train_cpu_seconds']:>9.1f} {padding:>9.1f} "
              f"{r['peak_memory'] / 2**20:>13.0f} {r['val_loss']:>9.4f}")
    by_mode = {r["mode"]: r for r in results}
    if set(by_mode) >= set(MODES):
        ours, base = by_mode["ours"], by_mode["baseline"]
        print(f"speedup {ours['tokens_per_s'] / base['tokens_per_s']:.3f} "
              f"memory_ratio {ours['peak_memory'] / base['peak_memory']:.3f} "
              f"val_loss_ratio {ours['val_loss'] / base['val_loss']:.3f}")


if __name__ == "__main__":
    main()
