"""Running out of memory ends training with a message that says what to change. The allocation failure
is real: the training runs in a child process whose address space is capped just above what it uses."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import resource, sys
    sys.path.insert(0, sys.argv[1])
    import torch, transformers, peft  # loaded before the cap: the cap is for training's own memory
    from trainer import TrainConfig, train
    from trainer.out_of_memory import TrainingOutOfMemory

    in_use = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
    cap = in_use + 1500 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    rows = [("word " * 300 + str(i), "answer " * 300) for i in range(32)]
    try:
        train(TrainConfig(base_model_path=sys.argv[2], output_dir=sys.argv[3], max_epochs=1, batch_size=32,
                          adapter_check_prompts=0), rows, rows[:2])
    except TrainingOutOfMemory as exc:
        print("MESSAGE:", exc)
        print("CAUSE:", type(exc.__cause__).__name__, exc.__cause__)
""")


def test_running_out_of_memory_says_what_to_change(tiny_model_dir, tmp_path):
    out = tmp_path / "adapter"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT), str(tiny_model_dir), str(out)],
                          capture_output=True, text=True, timeout=300)
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if line.startswith(("MESSAGE", "CAUSE")))
    assert "MESSAGE" in lines, done.stdout + done.stderr[-3000:]
    assert "can't allocate memory" in lines["CAUSE"]  # the allocator's own failure, not a simulation
    assert lines["MESSAGE"].startswith("Training ran out of memory on the worker's machine (cpu) while training: "
                                       "a step of 32 rows, the longest ")
    assert "Try '{\"batch_size\": 16}' in the options" in lines["MESSAGE"]
    assert not out.exists()
