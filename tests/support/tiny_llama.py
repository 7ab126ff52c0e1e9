"""A small, fast Llama for tests: SmolLM2-135M cut down to its first two decoder layers.

It keeps SmolLM2's trained embeddings, tokenizer and chat template, so the data preparation, serving
and chat formatting it exercises are the real ones, and an adapter learns a reply in about twenty
steps. A randomly initialised model of this size cannot: its tied output layer starts with logits
within about +-1.3 of each other and no LoRA update on the projections lets it make the end-of-turn
token likely, so it never learns to stop.
"""
from __future__ import annotations

import shutil
from pathlib import Path

LAYERS = 2


def build_tiny_llama(smollm2_dir: Path, out_dir: Path) -> Path:
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    config = AutoConfig.from_pretrained(str(smollm2_dir))
    state = {}
    for path in sorted(Path(smollm2_dir).glob("*.safetensors")):
        for name, tensor in load_file(str(path)).items():
            parts = name.split(".")
            if name.startswith("model.layers.") and int(parts[2]) >= LAYERS:
                continue
            state[name] = tensor
    config.num_hidden_layers = LAYERS
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # lm_head is tied to the embeddings, so it may be absent from the checkpoint.
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.tie_weights()

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    AutoTokenizer.from_pretrained(str(smollm2_dir)).save_pretrained(str(tmp))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir
