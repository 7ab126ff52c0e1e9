"""The TGI backend: which adapters Hugging Face TGI can serve (servable.py), what it is launched with
(launch.py: LORA_ADAPTERS and the env file), and controlled restarts that deploy them (restarts.py).

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
from inference.tgi.launch import (
    ENV_FILE_HEADER,
    adapter_id,
    container_path,
    env_file_text,
    lora_adapters_setting,
    prepare_base_model,
    qualified_name_for,
    read_lora_adapters,
    register_server,
    write_env_file,
)
from inference.tgi.restarts import (
    DeployError,
    confirm_adapters,
    in_flight,
    redeploy,
    restart,
    restart_container,
    wait_for_drain,
    wait_healthy,
)
from inference.tgi.servable import KERNEL_RANKS, SUPPORTED_MODULES, NotServable, check_servable

__all__ = [
    "DeployError", "ENV_FILE_HEADER", "KERNEL_RANKS", "NotServable", "SUPPORTED_MODULES", "adapter_id",
    "check_servable", "confirm_adapters", "container_path", "env_file_text", "in_flight", "lora_adapters_setting",
    "prepare_base_model", "qualified_name_for", "read_lora_adapters", "redeploy", "register_server", "restart",
    "restart_container", "wait_for_drain", "wait_healthy", "write_env_file",
]
