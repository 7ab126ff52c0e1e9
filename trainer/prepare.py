"""Turn (prompt, completion) rows into token ids and loss masks.

Everything here is cheap and deterministic, and every failure is a DataError whose message can be
shown to the user as is, so the caller can validate a data set before it queues any training.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Sequence

Row = tuple[str, str]  # (prompt, completion)

IGNORE_INDEX = -100  # label value torch's cross entropy skips: prompt and padding tokens

# Used when the base tokenizer ships no chat template. It is also saved as the adapter's chat template,
# so serving formats prompts exactly the way training did.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '### Prompt:\n' + message['content'] + '\n' }}"
    "{% else %}{{ '### Response:\n' + message['content'] + (eos_token or '') + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '### Response:\n' }}{% endif %}"
)

# Row numbers quoted in an error message; a data set with 10k bad rows should not produce a 50 kB message.
_MAX_ROWS_QUOTED = 5


class DataError(Exception):
    """The training data cannot be used; str(error) is a complete sentence meant for the user."""


@dataclass
class Example:
    input_ids: list[int]  # rendered prompt + completion tokens
    labels: list[int]  # input_ids with the prompt tokens replaced by IGNORE_INDEX
    template: str  # "model" (the tokenizer's own chat template) or "fallback" (FALLBACK_CHAT_TEMPLATE)


def auto_epochs(n_train_rows: int) -> int:
    """Epochs to train when the user did not choose: min(10, max(1, ceil(100 / n))).

    Aims at roughly 100 row visits in total so tiny data sets are seen often enough to be learnt,
    never more than 10 passes (beyond that it only memorises), and at least one pass for big sets.
    """
    return min(10, max(1, math.ceil(100 / max(1, n_train_rows))))


def epochs_to_train(max_epochs: int | None, n_train_rows: int) -> int:
    """The epochs a run trains: max_epochs when the user chose it, else auto_epochs."""
    return max_epochs or auto_epochs(n_train_rows)


def held_out_rows(n_rows: int, fraction: float, seed: int) -> set[int]:
    """The 0-based positions split_validation holds out of n_rows rows: round(n_rows * fraction), clamped
    to 1..1000 and leaving >= 1 training row. Only the count is needed, so a data set streamed in batches
    can be split as it is read."""
    if fraction <= 0:
        return set()
    if n_rows < 2:
        raise DataError(
            f"At least 2 rows are needed to hold out a validation row; the training data has {n_rows}."
        )
    n_val = min(max(1, round(n_rows * fraction)), 1000, n_rows - 1)
    return set(random.Random(seed).sample(range(n_rows), n_val))


def split_validation(rows: Sequence[Row], fraction: float, seed: int) -> tuple[list[Row], list[Row]]:
    """Hold out held_out_rows(len(rows), …) rows. Deterministic for a given seed; both halves keep the
    original row order."""
    held_out = held_out_rows(len(rows), fraction, seed)
    train = [row for i, row in enumerate(rows) if i not in held_out]
    val = [row for i, row in enumerate(rows) if i in held_out]
    return train, val


def _quote_rows(row_numbers: Sequence[int], n: int) -> str:
    shown = ", ".join(str(int(number)) for number in row_numbers[:_MAX_ROWS_QUOTED])
    more = ", …" if n > _MAX_ROWS_QUOTED else ""
    word = "row" if n == 1 else "rows"
    return f"({word} {shown}{more})"


def _count_rows(row_numbers: Sequence[int], what: str, n: int | None = None) -> str:
    """'3 rows have an empty completion (rows 2, 5, 9)'. n: how many rows there are in all, when
    row_numbers holds only the first few of them."""
    n = len(row_numbers) if n is None else n
    subject = "1 row has" if n == 1 else f"{n} rows have"
    return f"{subject} {what} {_quote_rows(row_numbers, n)}"


def _format_bytes(n: int) -> str:
    """'1,200 bytes (1.2 KB)': exact for comparing with the limit, rounded for reading."""
    exact = f"{n:,} bytes"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{exact} ({n / scale:.1f} {unit})"
    return exact


def training_bytes(rows: Sequence[Row]) -> int:
    """UTF-8 size of all prompts and completions: the size max_training_bytes limits."""
    return sum(len((p or "").encode()) + len((c or "").encode()) for p, c in rows)


class RowCheck:
    """check_rows over a data set read in batches: memory bounded by the batch, whatever the data's size.

    add() each batch in order; once usable is False the rest need only be added for the counts in the
    message (nothing need be tokenised). Row numbers are 1-based positions across all batches.
    """

    def __init__(self, max_training_bytes: int | None = None) -> None:
        self.max_training_bytes = max_training_bytes
        self.rows = 0
        self.size = 0
        self.empty_prompt: list[int] = []  # the first _MAX_ROWS_QUOTED row numbers, quoted in the message
        self.empty_completion: list[int] = []
        self.n_empty_prompt = self.n_empty_completion = 0

    def add(self, rows: Sequence[Row]) -> None:
        for number, (prompt, completion) in enumerate(rows, self.rows + 1):
            # Whitespace-only text counts as empty: it trains nothing but the template.
            if prompt is None or not str(prompt).strip():
                self.n_empty_prompt += 1
                if len(self.empty_prompt) < _MAX_ROWS_QUOTED:
                    self.empty_prompt.append(number)
            if completion is None or not str(completion).strip():
                self.n_empty_completion += 1
                if len(self.empty_completion) < _MAX_ROWS_QUOTED:
                    self.empty_completion.append(number)
        self.rows += len(rows)
        self.size += training_bytes(rows)

    @property
    def usable(self) -> bool:
        """No problem found so far."""
        over = self.max_training_bytes is not None and self.size > self.max_training_bytes
        return not (self.n_empty_prompt or self.n_empty_completion or over)

    def raise_if_unusable(self) -> None:
        """Once every batch was added: the DataError check_rows raises for the same rows, if any."""
        if not self.rows:
            raise DataError("The training data has no rows.")
        problems = []
        if self.n_empty_prompt:
            problems.append(_count_rows(self.empty_prompt, "an empty prompt", self.n_empty_prompt))
        if self.n_empty_completion:
            problems.append(_count_rows(self.empty_completion, "an empty completion", self.n_empty_completion))
        if problems:
            raise DataError("; ".join(problems) + ".")
        if self.max_training_bytes is not None and self.size > self.max_training_bytes:
            raise DataError(
                f"The training data is {_format_bytes(self.size)}, over this base model's limit of "
                f"{_format_bytes(self.max_training_bytes)}."
            )


def check_rows(rows: Sequence[Row], max_training_bytes: int | None = None) -> None:
    """Reject data no training could use. Row numbers in messages are 1-based positions in `rows`."""
    check = RowCheck(max_training_bytes)
    check.add(rows)
    check.raise_if_unusable()


def template_kind(tokenizer: Any) -> str:
    """'model' when the tokenizer carries a chat template, else 'fallback'."""
    return "model" if getattr(tokenizer, "chat_template", None) else "fallback"


def _render(tokenizer: Any, messages: list[dict[str, str]], template: str | None, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=generation_prompt
    )


def encode_rows(
    tokenizer: Any,
    rows: Sequence[Row],
    max_prompt_tokens: int | None = None,
    max_completion_tokens: int | None = None,
) -> list[Example]:
    """Render each row with the chat template and mask the prompt out of the loss (see encode_batch);
    rows over the token allotments raise DataError."""
    ids, prompt_lengths, kind = encode_batch(tokenizer, rows)
    examples = [Example(input_ids=f_ids, labels=[IGNORE_INDEX] * n + f_ids[n:], template=kind)
                for f_ids, n in zip(ids, prompt_lengths)]
    message = limits_message(examples, max_prompt_tokens, max_completion_tokens)
    if message:
        raise DataError(message)
    return examples


def encode_batch(tokenizer: Any, rows: Sequence[Row]) -> tuple[list[list[int]], list[int], str]:
    """Each row's token ids, how many of them are the prompt's, and the template kind ("model" or
    "fallback"). The labels are the ids with the prompt's masked out.

    full   = template([user: prompt, assistant: completion])
    prompt = template([user: prompt], add_generation_prompt=True)
    The prompt rendering is a token prefix of the full one, so labels are the full ids with the prompt
    part masked: the model is trained on the completion and on the end-of-turn token after it (that
    is what teaches it to stop). The prompt count includes the template and any default system
    prompt, since those occupy context too; the completion count includes the end-of-turn token.
    """
    kind = template_kind(tokenizer)
    template = None if kind == "model" else FALLBACK_CHAT_TEMPLATE
    prompt_texts, full_texts = [], []
    for prompt, completion in rows:
        user = {"role": "user", "content": prompt}
        prompt_texts.append(_render(tokenizer, [user], template, generation_prompt=True))
        full_texts.append(
            _render(tokenizer, [user, {"role": "assistant", "content": completion}], template, generation_prompt=False)
        )
    # One batched call each: the fast tokenizer parallelises and it is most of the cost on big sets.
    prompt_ids = tokenizer(prompt_texts, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(full_texts, add_special_tokens=False)["input_ids"]

    ids: list[list[int]] = []
    prompt_lengths: list[int] = []
    for p_ids, f_ids, p_text, f_text, (_, completion) in zip(prompt_ids, full_ids, prompt_texts, full_texts, rows):
        if not (f_text.startswith(p_text) and f_ids[: len(p_ids)] == p_ids):
            # A template that renders the last user turn differently once an answer follows, or a BPE
            # merge across the boundary: train on prompt rendering + completion + eos instead, which
            # is exactly what generation will see after the prompt.
            eos = tokenizer.eos_token or ""
            f_ids = p_ids + tokenizer(completion + eos, add_special_tokens=False)["input_ids"]
        ids.append(list(f_ids))
        prompt_lengths.append(len(p_ids))
    return ids, prompt_lengths, kind


def token_counts(example: Example) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of an encoded row, counted as the limits count them."""
    n_prompt = sum(1 for label in example.labels if label == IGNORE_INDEX)
    return n_prompt, len(example.input_ids) - n_prompt


def rows_over_limits(
    examples: Sequence[Example], max_prompt_tokens: int | None, max_completion_tokens: int | None
) -> tuple[list[int], list[int]]:
    """1-based row numbers whose prompt, and whose completion, is longer than its allotment."""
    too_long_prompt: list[int] = []
    too_long_completion: list[int] = []
    for number, example in enumerate(examples, 1):
        n_prompt, n_completion = token_counts(example)
        if max_prompt_tokens is not None and n_prompt > max_prompt_tokens:
            too_long_prompt.append(number)
        if max_completion_tokens is not None and n_completion > max_completion_tokens:
            too_long_completion.append(number)
    return too_long_prompt, too_long_completion


def limits_message(
    examples: Sequence[Example], max_prompt_tokens: int | None, max_completion_tokens: int | None
) -> str | None:
    """The DataError text for rows over the token allotments, or None when every row fits."""
    too_long_prompt, too_long_completion = rows_over_limits(examples, max_prompt_tokens, max_completion_tokens)
    return over_limits_message(too_long_prompt, too_long_completion, max_prompt_tokens, max_completion_tokens)


def over_limits_message(too_long_prompt: Sequence[int], too_long_completion: Sequence[int],
                        max_prompt_tokens: int | None, max_completion_tokens: int | None) -> str | None:
    """limits_message from the 1-based numbers of the rows over each allotment."""
    problems = []
    if len(too_long_prompt):
        problems.append(_count_rows(too_long_prompt, f"a prompt longer than {max_prompt_tokens} tokens"))
    if len(too_long_completion):
        problems.append(_count_rows(too_long_completion, f"a completion longer than {max_completion_tokens} tokens"))
    return "; ".join(problems) + "." if problems else None
