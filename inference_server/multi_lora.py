"""Forward passes over rows that ask for different LoRA adapters (or none): each adapter's rows are one
contiguous range of the batch, and each LoRA layer adds each adapter's update to its range of rows, the
arithmetic of PEFT's mixed-adapter batches (``adapter_names``) without their per-layer gathers
(:class:`RowGroupLoRA`)."""
from __future__ import annotations

from dataclasses import dataclass

import torch  # the package __init__ (always imported first) has set OMP_WAIT_POLICY
import torch.nn.functional as F

from inference_server.errors import AdapterNotFound
from inference_server.kv_cache import BatchCache


def forward_rows(model, peft, lora: RowGroupLoRA, names: list[str | None], inputs: dict):
    """One forward pass of ``model`` (or of ``peft``, the PeftModel wrapping it once an adapter is loaded), row i
    with adapter ``names[i]`` (None: the base model). The rows of each adapter must be contiguous."""
    if peft is None:
        return model(**inputs)
    adapters = {name for name in names if name is not None}
    missing = adapters - set(peft.peft_config)
    if missing:  # unloaded behind the scheduler's back: these rows cannot go on
        raise AdapterNotFound(f"Adapter(s) unloaded while generating: {', '.join(sorted(missing))}")
    groups: list[list] = []  # runs of rows with the same adapter: [name, start, end]
    for row, name in enumerate(names):
        if groups and groups[-1][0] == name:
            groups[-1][2] = row + 1
        else:
            groups.append([name, row, row + 1])
    lora.refresh(peft)
    if all(lora.supports(peft, name) for name in adapters):
        return lora.forward(peft, [(name, start, end) for name, start, end in groups if name is not None], inputs)
    # an adapter only PEFT's single-adapter path computes: each adapter's rows in a forward of their own, on
    # views of the batch's cache
    if len(groups) == 1:
        return _single_adapter_forward(peft, names[0], inputs)
    logits = [_single_adapter_forward(peft, name, {key: _rows(value, start, end) for key, value in inputs.items()})
              .logits for name, start, end in groups]
    return _Output(torch.cat(logits), inputs.get("past_key_values"))


class RowGroupLoRA:
    """PEFT's mixed-adapter batches, lean: the batch's rows are ordered by adapter, so each adapter's rows are
    one contiguous range, and every LoRA linear adds ``B(A(x[rows])) * scaling`` to ``output[rows]`` in place.

    That is the arithmetic of PEFT's ``_mixed_batch_forward``, which however gathers and scatters each adapter's
    rows through Python index lists in every one of the model's LoRA layers, and registers a hook on each of them,
    at every step: 2.6x the single-adapter overhead per step here (8 rows, 2 adapters, SmolLM2-135M, 210 LoRA
    layers). Here every LoRA layer has PEFT's own adapters switched off (it then returns its base layer's
    output), and a forward hook registered once adds the adapters.
    A batch holding an adapter it cannot compute this way (DoRA and other LoRA variants, non-Linear LoRA layers,
    modules_to_save, trainable tokens: :meth:`supports`) runs one forward per adapter instead, through PEFT's
    ordinary single-adapter path (PEFT's mixed batches refuse DoRA as well).
    """

    def __init__(self) -> None:
        self.groups: list[tuple[str, int, int]] | None = None  # (peft name, first row, end row) for the forward
        self._layers: list = []  # every LoRA linear, hooked
        self._hooked: set[int] = set()
        self._supported: dict[str, bool] = {}
        self._adapters_seen: frozenset = frozenset()

    def refresh(self, peft) -> None:
        """Hook LoRA linears that appeared with newly loaded adapters."""
        adapters = frozenset(peft.peft_config)
        if adapters == self._adapters_seen:
            return
        from peft.tuners.lora.layer import Linear as LoraLinear

        for module in peft.modules():
            if isinstance(module, LoraLinear) and id(module) not in self._hooked:
                module.register_forward_hook(self._add_adapters)
                self._hooked.add(id(module))
                self._layers.append(module)
        self._supported = {name: ok for name, ok in self._supported.items() if name in adapters}
        self._adapters_seen = adapters

    def forward(self, peft, groups: list[tuple[str, int, int]], inputs: dict):
        """The model's forward pass, adapter ``name`` on rows ``start:end`` for each of ``groups``."""
        for layer in self._layers:
            layer._disable_adapters = True  # what PEFT's disable_adapter() sets, without its two module walks
        self.groups = groups
        try:
            return peft.get_base_model()(**inputs)
        finally:
            self.groups = None
            for layer in self._layers:
                layer._disable_adapters = False

    def supports(self, peft, name: str) -> bool:
        ok = self._supported.get(name)
        if ok is None:
            ok = self._supported[name] = self._check(peft, name)
        return ok

    @staticmethod
    def _check(peft, name: str) -> bool:
        from peft.tuners.lora.layer import Linear as LoraLinear
        from peft.tuners.lora.layer import LoraLayer

        config = peft.peft_config[name]
        if (getattr(config, "use_dora", False) or getattr(config, "modules_to_save", None)
                or getattr(config, "trainable_token_indices", None)):
            return False
        for module in peft.modules():
            if not isinstance(module, LoraLayer):
                continue
            if name in module.lora_embedding_A or name in module.lora_variant:
                return False
            if name in module.lora_A and (not isinstance(module, LoraLinear) or module.merged):
                return False
        return True

    def _add_adapters(self, module, args, output):
        groups = self.groups
        if not groups:
            return None
        x = args[0]
        for name, start, end in groups:
            lora_a = module.lora_A._modules.get(name)
            if lora_a is None:
                continue  # this adapter does not target this layer
            lora_b = module.lora_B._modules[name]
            # dropout is the identity in eval mode; the same operations, in the same order, as PEFT's
            delta = F.linear(F.linear(x[start:end], lora_a.weight, lora_a.bias), lora_b.weight, lora_b.bias)
            output[start:end] += delta * module.scaling[name]
        return None


@dataclass
class _Output:
    logits: torch.Tensor
    past_key_values: object


def _single_adapter_forward(peft, name: str | None, inputs: dict):
    if name is None:
        with peft.disable_adapter():
            return peft(**inputs)
    peft.set_adapter(name)
    return peft(**inputs)


def _rows(value, start: int, end: int):
    """Rows ``start:end`` of a forward pass's input (the cache: a view that writes through to the batch's)."""
    if isinstance(value, BatchCache):
        return BatchCache([k[start:end] for k in value.key_store], [v[start:end] for v in value.value_store],
                          value.mask[start:end], value.length)
    if isinstance(value, torch.Tensor):
        return value[start:end]
    return value
