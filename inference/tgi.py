"""The TGI backend: which adapters Hugging Face TGI can serve, its LORA_ADAPTERS list, and redeploys.

TGI loads LoRA adapters only at launch, from ``LORA_ADAPTERS=id=/path,...``. Deploying therefore means:
check every adapter against what TGI really does with it, write the list into the env file that the
``tgi`` service of docker/compose.yaml reads at each start, drain the server, restart it, wait for
``/health`` and confirm each adapter answers. What TGI does, read from its source (v3.3.x):

- ``server/text_generation_server/utils/adapter.py`` ``parse_lora_adapters``: entries split on ``,``,
  stripped, each ``^([^=@]+)(?:=([^@]+))?(?:@(.+))?$``. Dots in an id are fine (``DB.SCHEMA.NAME``);
  ``,``, ``=`` and ``@`` are not, in the id or the path, so :func:`adapter_id` percent-encodes them.
- ``load_module_map`` reads only top-level ``*.safetensors`` files from a local path (the launcher
  converts ``.bin`` weights only for hub ids it downloads); none found stops the whole server.
- ``models/__init__.py`` ``get_model_with_lora_adapters`` applies LoRA to q/k/v/o/gate/up/down_proj,
  qkv_proj, c_fc and c_proj only, and only where the architecture's layers take adapters
  (``custom_modeling/flash_*_modeling.py``). Other weights (lm_head, embeddings, DoRA magnitudes,
  modules_to_save, biases) are logged as "unused adapter weights" and ignored; a module missing from
  any layer is dropped for all layers (``adapters/lora.py`` ``prepare_weights``).
- ``adapters/lora.py`` scales every module by the config's ``lora_alpha / r`` and pads ranks for the
  punica kernels (``kernels-community/punica-sgmv``): up to 8 pads to 8, above that to a multiple of 16.
  The decode kernel (BGMV) exists for ranks 8, 16, 32, 64 and 128 only; above 128 TGI falls back to an
  unbatched loop.
- ``models/flash_causal_lm.py``: ``ADAPTER_TO_INDEX.get(adapter_id, 0)``: an unknown adapter id is
  answered by the base model with HTTP 200. ``/info`` lists no adapters. So a deploy is confirmed by
  comparing each adapter's greedy first tokens and log-probabilities with the base model's.
- The router renders chat requests with the base model's chat template, never the adapter's.
"""
from __future__ import annotations

import contextlib
import fcntl
import http.client
import json
import logging
import os
import re
import shlex
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from django.conf import settings

from studio.errors import StudioError

if TYPE_CHECKING:
    from inference.models import InferenceServer
    from models_registry.models import FineTunedModel

log = logging.getLogger(__name__)

# Modules TGI applies LoRA to, per architecture (config.json model_type). Read from
# server/text_generation_server/models/custom_modeling/flash_*_modeling.py: a module counts only where its
# layer is a TensorParallel*AdapterLinear whose layer name is the bare module name. Qwen2 and Starcoder2
# pass full prefixes ("model.layers.0.self_attn.q_proj") for q/k/v, gate/up and c_fc, so TGI never finds
# their adapter weights; mixtral, gemma (1), phi, falcon and the rest have no adapter layers at all.
_PROJECTIONS = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
SUPPORTED_MODULES: dict[str, frozenset[str]] = {
    "llama": _PROJECTIONS,
    "granite": _PROJECTIONS,
    "mistral": _PROJECTIONS,
    "gemma2": _PROJECTIONS,
    "gemma3_text": _PROJECTIONS,
    "phi3": frozenset({"qkv_proj", "o_proj", "down_proj"}),
    "qwen2": frozenset({"o_proj", "down_proj"}),
    "starcoder2": frozenset({"o_proj", "c_proj", "down_proj"}),
}
# Padded ranks the punica BGMV decode kernel is built for (bgmv_config.h: FOR_BGMV_WIDE_NARROW).
KERNEL_RANKS = (8, 16, 32, 64, 128)
# TGI skips weight files whose names contain these (utils/hub.py _weight_files_from_dir).
_SKIPPED_WEIGHT_NAMES = ("arguments", "args", "training")
# PEFT's key for a LoRA matrix, and the decoder-layer prefix TGI looks it up under (utils/adapter.py).
_LORA_KEY = re.compile(r"base_model\.model\.(?:(.+)\.)?(\w+)\.lora_([AB])\.weight")
_LAYER_PREFIX = re.compile(r"model\.layers\.(\d+)\.(?:self_attn|mlp)")
# Characters TGI's LORA_ADAPTERS parsing or the env file would take for syntax.
_ID_SPECIAL = frozenset(",=@%'\\")
_PATH_FORBIDDEN = frozenset(",=@'\\")
# Greedy probe that confirms an adapter is served: its tokens and log-probabilities must differ from the
# base model's by more than this.
PROBE_INPUTS = "Hello! Please introduce yourself."
PROBE_TOKENS = 4
PROBE_TOP_N = 5
SAME_AS_BASE_TOLERANCE = 1e-3


class NotServable(StudioError):
    """An adapter TGI would refuse, or load and then silently ignore in part or in whole."""


class DeployError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- adapter ids and paths -------------------------------------------------------------------------------------

def adapter_id(qualified_name: str) -> str:
    """The LORA_ADAPTERS id (and request ``adapter_id`` / ``model``) for a model's qualified name.

    The identity for ordinary names such as ``DB.SCHEMA.NAME``; ``,`` ``=`` ``@`` ``%`` ``'`` ``\\``,
    control characters and edge whitespace (possible in quoted identifiers) are percent-encoded, which
    :func:`qualified_name_for` reverses.
    """
    out = []
    last = len(qualified_name) - 1
    for i, ch in enumerate(qualified_name):
        if (ch in _ID_SPECIAL or ord(ch) < 0x20 or ord(ch) == 0x7F
                or (ch.isspace() and i in (0, last))):
            out.append(urllib.parse.quote(ch, safe=""))
        else:
            out.append(ch)
    return "".join(out)


def qualified_name_for(tgi_adapter_id: str) -> str:
    return urllib.parse.unquote(tgi_adapter_id)


def container_path(host_path: str | Path) -> PurePosixPath:
    """Where TGI sees ``host_path``: MODEL_STORE is mounted at TGI_MODEL_STORE in its container."""
    store = Path(settings.MODEL_STORE).resolve()
    try:
        relative = Path(host_path).resolve().relative_to(store)
    except ValueError:
        raise NotServable(f"{host_path} is outside the model store {store}, the only directory mounted into "
                          f"the TGI container; keep adapters under {store / 'adapters'}.") from None
    return PurePosixPath(settings.TGI_MODEL_STORE, *relative.parts)


def _entry(model: FineTunedModel) -> str:
    path = str(container_path(model.adapter_path))
    bad = sorted({ch for ch in path if ch in _PATH_FORBIDDEN or ord(ch) < 0x20})
    if bad:
        raise NotServable(f"Model {model.qualified_name}: its adapter path {path} contains {' '.join(bad)}, which "
                          f"TGI's LORA_ADAPTERS syntax (id=path,...) cannot carry; move the adapter directory.")
    return f"{adapter_id(model.qualified_name)}={path}"


def lora_adapters_setting(models: Iterable[FineTunedModel]) -> str:
    """TGI's LORA_ADAPTERS value for these models, in qualified-name order; "" for none."""
    return ",".join(_entry(m) for m in sorted(models, key=lambda m: m.qualified_name))


# -- what TGI can serve ----------------------------------------------------------------------------------------

def _read_json(path: Path, what: str, name: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotServable(f"Adapter {name}: {path} is missing; TGI needs {what}. Retrain the model or restore "
                          f"the adapter directory.") from None
    except (OSError, ValueError) as exc:
        raise NotServable(f"Adapter {name}: cannot read {path} ({exc}). Retrain the model or restore the "
                          f"adapter directory.") from None
    if not isinstance(data, dict):
        raise NotServable(f"Adapter {name}: {path} is not a JSON object. Retrain the model.")
    return data


def _safetensors_header(path: Path) -> dict[str, Any]:
    """Tensor names and shapes from a safetensors file, without loading the weights."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length > 100 * 1024 * 1024:
            raise ValueError("header too large")
        header = json.loads(f.read(length))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    header.pop("__metadata__", None)
    return header


def _chat_template(directory: Path) -> str | None:
    """The chat template transformers would use for a checkpoint or adapter directory."""
    jinja = directory / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    for name in ("chat_template.json", "tokenizer_config.json"):
        with contextlib.suppress(OSError, ValueError):
            template = json.loads((directory / name).read_text(encoding="utf-8")).get("chat_template")
            if isinstance(template, str):
                return template
    return None


def _base_dir(base_model: str | None, adapter_config: dict) -> Path | None:
    if base_model:
        store_dir = Path(settings.MODEL_STORE) / "base" / base_model
        if (store_dir / "config.json").is_file():
            return store_dir
    recorded = adapter_config.get("base_model_name_or_path")
    if isinstance(recorded, str) and recorded and (Path(recorded) / "config.json").is_file():
        return Path(recorded)
    return None


def _ranks_hint() -> str:
    return "Retrain it with a LoRA rank of 8, 16, 32, 64 or 128 (the studio's default is 16)."


def _padded_rank(r: int) -> int:
    # punica_sgmv.pad_rank for one shard (NUM_SHARD=1 in docker/compose.yaml)
    return 8 if r <= 8 else (r + 15) // 16 * 16


def check_servable(adapter_dir: str | Path, *, name: str | None = None, server_base_model: str | None = None,
                   base_model_dir: str | Path | None = None) -> None:
    """Raise NotServable, naming the adapter, the problem and the fix, for an adapter TGI would refuse or
    load wrongly. ``server_base_model`` is the catalog name of the base model the TGI server runs;
    ``base_model_dir`` its checkpoint (default: MODEL_STORE/base/<base model>, else the path recorded
    in adapter_config.json)."""
    adapter_dir = Path(adapter_dir)
    meta_path = adapter_dir / "studio_adapter.json"
    meta = _read_json(meta_path, "the studio's metadata", name or str(adapter_dir)) if meta_path.exists() else {}
    name = name or meta.get("model") or str(adapter_dir)
    base_model = meta.get("base_model")

    if server_base_model is not None and base_model is not None and base_model != server_base_model:
        raise NotServable(f"Adapter {name} was trained on base model '{base_model}', but this TGI server runs "
                          f"'{server_base_model}'. Deploy it to a server for '{base_model}'.")

    config = _read_json(adapter_dir / "adapter_config.json", "adapter_config.json (a PEFT LoRA config)", name)
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise NotServable(f"Adapter {name} is a PEFT {peft_type or 'unknown'} adapter; TGI serves LoRA adapters "
                          f"only. Retrain it as LoRA.")
    if config.get("use_dora"):
        raise NotServable(f"Adapter {name} uses DoRA: TGI loads only its LoRA A/B matrices and ignores the DoRA "
                          f"magnitudes, so it would answer as a different model. Retrain it without DoRA "
                          f"(use_dora=False).")
    if config.get("modules_to_save"):
        raise NotServable(f"Adapter {name} saves full copies of {', '.join(config['modules_to_save'])} "
                          f"(modules_to_save), which TGI ignores. Retrain it without modules_to_save.")
    if config.get("bias", "none") != "none" or config.get("lora_bias"):
        raise NotServable(f"Adapter {name} trains biases, which TGI ignores. Retrain it with bias='none'.")
    if config.get("rank_pattern") or config.get("alpha_pattern"):
        raise NotServable(f"Adapter {name} uses per-module ranks or alphas (rank_pattern/alpha_pattern); TGI "
                          f"scales every module by one lora_alpha / r. Retrain it with a single r and lora_alpha.")

    weight_files = sorted(p for p in adapter_dir.glob("*.safetensors")
                          if not any(s in p.name for s in _SKIPPED_WEIGHT_NAMES))
    if not weight_files:
        found = [p.name for p in adapter_dir.glob("adapter_model.*")]
        what = f"its weights are {', '.join(found)}" if found else "it has no adapter weights"
        raise NotServable(f"Adapter {name}: {what}, and TGI loads only *.safetensors from a local adapter path. "
                          f"Save it with safe_serialization=True, e.g. PeftModel.from_pretrained(base, dir)"
                          f".save_pretrained(dir), or retrain it.")

    base_dir = Path(base_model_dir) if base_model_dir else _base_dir(base_model, config)
    if base_dir is None:
        raise NotServable(f"Adapter {name}: cannot find the config.json of its base model "
                          f"'{base_model or config.get('base_model_name_or_path')}' to check it against TGI; "
                          f"install the base model in the model store first.")
    base_config = _read_json(base_dir / "config.json", "the base model's config.json", name)
    model_type = base_config.get("model_type")
    supported = SUPPORTED_MODULES.get(model_type)
    if supported is None:
        raise NotServable(f"Adapter {name}: TGI has no LoRA support for '{model_type}' models, the architecture "
                          f"of its base model. Serve it with the embedded backend.")
    layers = base_config.get("num_hidden_layers")

    shapes: dict[str, list[int]] = {}
    for path in weight_files:
        try:
            header = _safetensors_header(path)
        except (OSError, ValueError, struct.error) as exc:
            raise NotServable(f"Adapter {name}: {path.name} is not a readable safetensors file ({exc}). "
                              f"Retrain the model or restore the adapter directory.") from None
        shapes.update({key: value.get("shape", []) for key, value in header.items() if isinstance(value, dict)})

    ignored, unsupported, layers_of, ranks = [], set(), {}, set()
    for key, shape in shapes.items():
        match = _LORA_KEY.fullmatch(key)
        if not match:
            ignored.append(key)
            continue
        prefix, module, side = match.groups()
        if module not in supported:
            unsupported.add(module)
            continue
        layer = _LAYER_PREFIX.fullmatch(prefix or "")
        if not layer:
            ignored.append(key)
            continue
        layers_of.setdefault((module, side), set()).add(int(layer[1]))
        if side == "A" and len(shape) == 2:
            ranks.add(shape[0])
    if unsupported:
        raise NotServable(f"Adapter {name} adapts {', '.join(repr(m) for m in sorted(unsupported))}, which TGI does "
                          f"not apply LoRA to on '{model_type}' models (it does to {', '.join(sorted(supported))}) "
                          f"and would silently ignore. Retrain it with target_modules among those.")
    if ignored:
        shown = ", ".join(sorted(ignored)[:3]) + (f" and {len(ignored) - 3} more" if len(ignored) > 3 else "")
        raise NotServable(f"Adapter {name} holds weights TGI would ignore ({shown}): TGI loads only the LoRA A/B "
                          f"matrices of {', '.join(sorted(supported))} in the decoder layers. Retrain it as a "
                          f"plain LoRA on those modules.")
    if not layers_of:
        raise NotServable(f"Adapter {name} has no LoRA weights. Retrain the model.")

    expected = set(range(layers)) if isinstance(layers, int) else set().union(*layers_of.values())
    for module in sorted({m for m, _ in layers_of}):
        for side in ("A", "B"):
            present = layers_of.get((module, side), set())
            if present != expected:
                missing = sorted(expected - present)
                raise NotServable(f"Adapter {name} adapts '{module}' in only some layers (lora_{side} missing in "
                                  f"layers {', '.join(map(str, missing[:8]))}{'…' if len(missing) > 8 else ''}); "
                                  f"TGI then drops '{module}' in every layer. Retrain it on all layers "
                                  f"(no layers_to_transform).")

    r = config.get("r")
    if not isinstance(r, int) or isinstance(r, bool):
        raise NotServable(f"Adapter {name}: adapter_config.json has no integer rank r ({r!r}). Retrain the model.")
    if ranks != {r}:
        raise NotServable(f"Adapter {name}: its weights have rank {', '.join(map(str, sorted(ranks)))} but its "
                          f"config says r={r}; TGI scales by the config's r. Retrain the model.")
    if r > KERNEL_RANKS[-1]:
        raise NotServable(f"Adapter {name} has LoRA rank {r}, above 128, the largest rank TGI's LoRA kernels "
                          f"handle (it would fall back to an unbatched loop). {_ranks_hint()}")
    if _padded_rank(r) not in KERNEL_RANKS:
        raise NotServable(f"Adapter {name} has LoRA rank {r}, which TGI pads to {_padded_rank(r)}, a rank its "
                          f"decode kernel (punica BGMV: 8, 16, 32, 64, 128) has no build for, so generation "
                          f"would fail. {_ranks_hint()}")

    adapter_template = _chat_template(adapter_dir)
    base_template = _chat_template(base_dir)
    if adapter_template is not None and base_template is not None and adapter_template != base_template:
        raise NotServable(f"Adapter {name} was trained with its own chat template, but TGI renders chat requests "
                          f"with the base model's, so its prompts would not match training. Retrain it with the "
                          f"base model's chat template, or serve it with the embedded backend.")


# -- the env file ----------------------------------------------------------------------------------------------

ENV_FILE_HEADER = ("# Generated by inference/tgi.py from the model registry: the LoRA adapters TGI loads at\n"
                   "# launch. Do not edit; every deploy rewrites it. Ids are the models' qualified names.\n")


def env_file_text(setting: str) -> str:
    # Single quotes: docker compose and sh both take the value literally (no $ interpolation, no # comment).
    # Without adapters the variable is left out: the launcher would try to download an adapter named "".
    return ENV_FILE_HEADER + (f"LORA_ADAPTERS='{setting}'\n" if setting else "")


def read_lora_adapters(path: str | Path) -> str:
    """The LORA_ADAPTERS value in an env file written by :func:`write_env_file` ("" when none)."""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.startswith("LORA_ADAPTERS="):
            return line.partition("=")[2].strip().strip("'")
    return ""


def write_env_file(setting: str, path: str | Path | None = None) -> Path:
    """Replace the env file atomically: TGI starting meanwhile reads the old list or the new, never half."""
    path = Path(path or settings.TGI_ENV_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(env_file_text(setting))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def _redeploy_lock() -> Iterator[None]:
    # Two deploys at once would interleave their restarts; the second waits and then deploys the full list.
    lock_path = Path(settings.DATA_DIR) / "tgi-redeploy.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# -- talking to the server -------------------------------------------------------------------------------------

def _get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


def _post_json(url: str, body: dict, timeout: float = 60.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, text = response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


_GAUGE = re.compile(r"^(tgi_queue_size|tgi_batch_current_size)(?:\{[^}]*\})?\s+(\S+)", re.MULTILINE)


def in_flight(metrics_text: str) -> float:
    """Requests queued or in the running batch, from TGI's /metrics (absent gauges count as 0)."""
    return sum(float(value) for _, value in _GAUGE.findall(metrics_text))


def wait_for_drain(url: str, timeout: float, interval: float = 0.5) -> bool:
    """Wait until the server has no request queued or running; False if some still are after ``timeout``.

    The caller has already stopped routing to the adapters being redeployed. A server that does not
    answer has nothing in flight."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, text = _get(url.rstrip("/") + "/metrics")
        except (OSError, http.client.HTTPException):
            return True
        if status != 200 or in_flight(text) == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def restart(command: str | None = None, timeout: float | None = None) -> None:
    command = command or settings.TGI_RESTART_COMMAND
    timeout = timeout if timeout is not None else settings.TGI_HEALTH_TIMEOUT
    try:
        proc = subprocess.run(shlex.split(command), cwd=settings.BASE_DIR, capture_output=True, text=True,
                              timeout=timeout)
    except FileNotFoundError as exc:
        raise DeployError(f"TGI was not restarted: the restart command `{command}` cannot run ({exc.strerror}: "
                          f"{exc.filename}). Set STUDIO_TGI_RESTART_COMMAND.") from None
    except subprocess.TimeoutExpired:
        raise DeployError(f"TGI was not restarted: the restart command `{command}` did not finish within "
                          f"{timeout:g} s.") from None
    if proc.returncode != 0:
        output = (proc.stderr.strip() or proc.stdout.strip())[-500:]
        raise DeployError(f"TGI was not restarted: the restart command `{command}` exited with status "
                          f"{proc.returncode}{': ' + output if output else ''}")


def wait_healthy(url: str, timeout: float, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            status, _ = _get(url.rstrip("/") + "/health", timeout=5)
            if status == 200:
                return
            last = f"HTTP {status}"
        except (OSError, http.client.HTTPException) as exc:
            last = str(getattr(exc, "reason", exc)) or type(exc).__name__
        if time.monotonic() >= deadline:
            raise DeployError(f"TGI at {url} did not answer /health with 200 within {timeout:g} s of its restart "
                              f"(last: {last}). An adapter it cannot load stops the whole server: see its log "
                              f"(docker compose -f docker/compose.yaml logs tgi).")
        time.sleep(interval)


def _probe(url: str, tgi_adapter_id: str | None) -> tuple[int, Any]:
    parameters: dict[str, Any] = {"max_new_tokens": PROBE_TOKENS, "do_sample": False, "details": True,
                                  "top_n_tokens": PROBE_TOP_N}
    if tgi_adapter_id is not None:
        parameters["adapter_id"] = tgi_adapter_id
    return _post_json(url.rstrip("/") + "/generate", {"inputs": PROBE_INPUTS, "parameters": parameters})


def _fingerprint(answer: Any) -> list[tuple[int, float]]:
    """Token ids with log-probabilities, of the generated tokens and of their top alternatives."""
    details = (answer.get("details") or {}) if isinstance(answer, dict) else {}
    out = [(t["id"], t["logprob"]) for t in details.get("tokens") or []]
    for tops in details.get("top_tokens") or []:
        out += [(t["id"], t["logprob"]) for t in tops]
    return out


def _same(a: list[tuple[int, float]], b: list[tuple[int, float]]) -> bool:
    return len(a) == len(b) and all(i == j and abs(x - y) <= SAME_AS_BASE_TOLERANCE for (i, x), (j, y) in zip(a, b))


def _error_text(answer: Any) -> str:
    if isinstance(answer, dict) and answer.get("error"):
        return str(answer["error"])
    return str(answer)[:300]


def confirm_adapters(url: str, adapter_ids: Iterable[str]) -> dict[str, str | None]:
    """For each TGI adapter id, None if the server answers with it, else why not."""
    adapter_ids = list(adapter_ids)
    if not adapter_ids:
        return {}
    status, base_answer = _probe(url, None)
    if status != 200:
        raise DeployError(f"TGI at {url} is up but /generate failed on the base model (HTTP {status}: "
                          f"{_error_text(base_answer)}).")
    base = _fingerprint(base_answer)
    if not base:
        raise DeployError(f"TGI at {url} answered /generate without token details; cannot confirm adapters.")
    results: dict[str, str | None] = {}
    for tgi_id in adapter_ids:
        status, answer = _probe(url, tgi_id)
        if status != 200:
            results[tgi_id] = (f"TGI at {url} does not serve adapter '{tgi_id}' after the restart (HTTP {status}: "
                               f"{_error_text(answer)}).")
        elif _same(_fingerprint(answer), base):
            results[tgi_id] = (f"TGI at {url} answers adapter '{tgi_id}' exactly like the base model, so it has not "
                               f"loaded it (TGI routes an adapter id it does not know to the base model). Check that "
                               f"the restart command starts TGI with the new LORA_ADAPTERS; an adapter that changes "
                               f"nothing (untrained) cannot be confirmed either.")
        else:
            results[tgi_id] = None
    return results


def restart_container(name: str, socket_path: str = "/var/run/docker.sock", stop_timeout: int = 90) -> int:
    """Restart a container through the Docker Engine API (no docker CLI needed): what the web and worker
    containers of docker/compose.yaml run as their restart command. The tgi service re-reads the env file
    at every start, so a plain restart picks up the new list. Returns a process exit status."""

    class UnixHTTPConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(socket_path)

    conn = UnixHTTPConnection("localhost", timeout=stop_timeout + 60)
    try:
        conn.request("POST", f"/containers/{urllib.parse.quote(name, safe='')}/restart?t={stop_timeout}")
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
    except OSError as exc:
        print(f"cannot reach the Docker Engine at {socket_path}: {exc}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    if response.status != 204:
        print(f"Docker Engine refused to restart {name}: HTTP {response.status} {body.strip()}", file=sys.stderr)
        return 1
    return 0


def prepare_base_model(base_model: str | Path) -> bool:
    """Give a base model checkpoint the chat template file TGI reads; True if one was written.

    TGI's router (router/src/server.rs) takes the chat template from tokenizer_config.json or
    chat_template.json, not from the chat_template.jinja that transformers 5 saves; without it TGI
    would refuse every chat request. ``base_model`` is a catalog name (under MODEL_STORE/base) or a path."""
    base_dir = Path(base_model) if os.sep in str(base_model) else Path(settings.MODEL_STORE) / "base" / str(base_model)
    jinja = base_dir / "chat_template.jinja"
    if not jinja.is_file() or (base_dir / "chat_template.json").exists():
        return False
    with contextlib.suppress(OSError, ValueError):
        if isinstance(json.loads((base_dir / "tokenizer_config.json").read_text()).get("chat_template"), str):
            return False
    (base_dir / "chat_template.json").write_text(json.dumps({"chat_template": jinja.read_text(encoding="utf-8")}))
    return True


def register_server(name: str, url: str, base_model: str) -> InferenceServer:
    """Record a TGI server so COMPLETE and deploys find it (docker/compose.yaml's init does this)."""
    from inference.models import InferenceServer

    server, _ = InferenceServer.objects.update_or_create(
        name=name, defaults={"url": url, "base_model": base_model, "backend": InferenceServer.Backend.TGI})
    return server


# -- redeploy --------------------------------------------------------------------------------------------------

def _check_model(model: FineTunedModel, server: InferenceServer) -> str:
    if model.base_model != server.base_model:
        raise NotServable(f"Model {model.qualified_name} is a fine-tune of '{model.base_model}', but TGI server "
                          f"{server.name} runs '{server.base_model}'. Deploy it to a server for "
                          f"'{model.base_model}'.")
    check_servable(model.adapter_path, name=model.qualified_name, server_base_model=server.base_model)
    return _entry(model)


def redeploy(server: InferenceServer, models: Iterable[FineTunedModel]) -> dict[str, str | None]:
    """Make TGI serve exactly ``models`` (every adapter the server should serve after this call).

    Returns qualified name -> None when the server confirmed the adapter, else the reason it is not
    deployed. Refused adapters are left out of LORA_ADAPTERS and the others still deploy. The restart
    interrupts every adapter on the server, so the caller stops routing to all of them (deployments
    pending/loading) before calling. The restart command must return once the old server has stopped,
    or /health could be answered by it. Never raises."""
    models = list(models)
    results: dict[str, str | None] = {}
    entries: dict[str, FineTunedModel] = {}
    for model in models:
        try:
            entries[_check_model(model, server)] = model
        except NotServable as exc:
            results[model.qualified_name] = exc.message
        except Exception as exc:  # noqa: BLE001 - one unreadable adapter must not stop the others
            log.exception("checking %s for TGI", model.qualified_name)
            results[model.qualified_name] = f"Could not check adapter {model.qualified_name}: {exc}"
    setting = ",".join(sorted(entries))
    url = server.url
    try:
        with _redeploy_lock():
            write_env_file(setting)
            if not wait_for_drain(url, settings.TGI_DRAIN_TIMEOUT):
                log.warning("TGI at %s still had requests in flight after %s s; restarting anyway (TGI finishes "
                            "them within its graceful termination timeout)", url, settings.TGI_DRAIN_TIMEOUT)
            restart()
            wait_healthy(url, settings.TGI_HEALTH_TIMEOUT)
            by_id = {entry.partition("=")[0]: model for entry, model in entries.items()}
            for tgi_id, reason in confirm_adapters(url, by_id).items():
                results[by_id[tgi_id].qualified_name] = reason
    except DeployError as exc:
        for model in entries.values():
            results[model.qualified_name] = exc.message
    except Exception as exc:  # noqa: BLE001 - the caller records reasons; an exception would leave rows loading
        log.exception("redeploying TGI at %s", url)
        for model in entries.values():
            results[model.qualified_name] = f"Deploying to TGI at {url} failed: {type(exc).__name__}: {exc}"
    return results


if __name__ == "__main__":  # python -m inference.tgi restart-container NAME
    if len(sys.argv) == 3 and sys.argv[1] == "restart-container":
        sys.exit(restart_container(sys.argv[2]))
    print("usage: python -m inference.tgi restart-container NAME", file=sys.stderr)
    sys.exit(2)
