"""The running batch's key/value cache: one row per request, left-padded along the time axis, an attention
mask hiding each row's padding; grown in place, and rebuilt only when rows join or leave."""
from __future__ import annotations

import torch  # the package __init__ (always imported first) has set OMP_WAIT_POLICY
from transformers import DynamicCache

# Spare cache room allocated at a time along the time axis: the batch's cache grows in place, and is copied only
# when it runs out of room or rows join or leave.
CACHE_CHUNK = 64


class BatchCache(DynamicCache):
    """Keys and values of every row, ``[rows, kv heads, capacity, head dim]`` per layer, written in place.

    DynamicCache grows by concatenation, copying the whole cache every step (about 10 ms a step for 8 rows of
    the 135M model here); this one has room to grow into and is copied only when rows join or leave or the room
    runs out. ``length`` columns are filled; rows are left-padded and ``mask`` (True = a real token, the spare
    room included) hides the padding.
    """

    def __init__(self, key_store: list[torch.Tensor], value_store: list[torch.Tensor], mask: torch.Tensor,
                 length: int) -> None:
        super().__init__()
        self.key_store, self.value_store, self.mask, self.length = key_store, value_store, mask, length

    @property
    def capacity(self) -> int:
        return self.mask.shape[1]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        end = self.length + key_states.shape[-2]
        keys, values = self.key_store[layer_idx], self.value_store[layer_idx]
        keys[:, :, self.length:end] = key_states
        values[:, :, self.length:end] = value_states
        return keys[:, :, :end], values[:, :, :end]

    def get_seq_length(self, layer_idx: int | None = 0) -> int:
        return self.length

    def attention_mask(self) -> torch.Tensor:
        """The 4D mask for the next one-token step (transformers uses a 4D mask as given)."""
        return self.mask[:, None, None, :self.length + 1]

    def grow(self, room: int) -> None:
        """Make room for at least ``room`` more columns."""
        if self.length + room <= self.capacity:
            return
        capacity = self.length + max(room, CACHE_CHUNK)
        for store in (self.key_store, self.value_store):
            for layer, old in enumerate(store):
                new = old.new_zeros((*old.shape[:2], capacity, old.shape[3]))
                new[:, :, :self.length] = old[:, :, :self.length]
                store[layer] = new
        mask = self.mask.new_ones((self.mask.shape[0], capacity))
        mask[:, :self.length] = self.mask[:, :self.length]
        self.mask = mask


def rebuild_cache(cache: BatchCache | None, sources: list[int | DynamicCache], lengths: list[int],
                  room: int) -> BatchCache:
    """The cache of the next batch, one row per source: an int is that row of ``cache``, a DynamicCache a
    newcomer's prefill (one row). ``lengths`` are the rows' token counts; rows are left-padded to the longest,
    with ``room`` spare columns. Padding is zeros, never uninitialised memory: a masked position still
    multiplies its value by 0."""
    length = max(lengths)
    capacity = length + room
    kept = [(row, source) for row, source in enumerate(sources) if isinstance(source, int)]
    joining = [(row, source) for row, source in enumerate(sources) if not isinstance(source, int)]
    span = max((lengths[row] for row, _ in kept), default=0)  # kept rows all end at column cache.length
    if kept:
        device = cache.mask.device
        same_rows = [source for _, source in kept] == list(range(cache.mask.shape[0]))
        old_rows = torch.tensor([source for _, source in kept], device=device)
        new_rows = torch.tensor([row for row, _ in kept], device=device)
        in_place = same_rows and [row for row, _ in kept] == list(range(len(kept)))
    layers = len(cache.key_store) if cache is not None else len(joining[0][1].layers)
    stores: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
    for layer in range(layers):
        for which, out in enumerate(stores):
            if cache is not None:
                old = (cache.key_store, cache.value_store)[which][layer]
            else:
                old = _layer_tensor(joining[0][1], layer, which)
            new = old.new_zeros((len(sources), old.shape[1], capacity, old.shape[3]))
            if kept:
                filled = old[:, :, cache.length - span:cache.length]
                if in_place:
                    new[:len(kept), :, length - span:length] = filled
                else:
                    new[new_rows, :, length - span:length] = filled.index_select(0, old_rows)
            for row, prefilled in joining:
                new[row, :, length - lengths[row]:length] = _layer_tensor(prefilled, layer, which)[0]
            out.append(new)
    mask = torch.ones((len(sources), capacity), dtype=torch.bool, device=stores[0][0].device)
    for row, n in enumerate(lengths):
        mask[row, :length - n] = False
    return BatchCache(stores[0], stores[1], mask, length)


def _layer_tensor(cache: DynamicCache, layer: int, which: int) -> torch.Tensor:
    return cache.layers[layer].keys if which == 0 else cache.layers[layer].values
