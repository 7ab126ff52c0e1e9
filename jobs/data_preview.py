"""What a training query's rows look like to the trainer, before any job exists: the first rows rendered
through the base model's chat template with the tokens trained on marked, the row count, token statistics
and the rows over the model's prompt and completion allotments.

Every rule is the trainer's or FINETUNE CREATE's own: the query is checked by jobs.training_data.
check_query, rows are encoded by trainer.prepare.encode_rows (the labels the trainer builds) and compared
with the limits by trainer.prepare.rows_over_limits. At most PREVIEW_ROWS rows are read and tokenized,
so a preview of a large table stays quick; the preview says when it covers only the first rows.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlglot import exp

from access.session import Session
from catalog import accountdata
from catalog.base_models import install_command
from catalog.models import BaseModel
from jobs.training_data import check_query, read_rows

PREVIEW_ROWS = 2000  # rows tokenized for the statistics; a web request must stay well under a second
EXAMPLES_SHOWN = 3  # rows rendered token by token
ROW_NUMBERS_SHOWN = 5  # row numbers listed for each limit


@dataclass(frozen=True)
class Piece:
    text: str
    trained: bool  # the trainer computes loss on this token (the completion and its end-of-turn token)
    special: bool = False


@dataclass
class RenderedExample:
    number: int  # 1-based row position in the query's result, as the job's messages number rows
    pieces: list[Piece]
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class Spread:
    min: int
    median: float
    max: int

    @classmethod
    def of(cls, values: list[int]) -> Spread | None:
        return cls(min(values), statistics.median(values), max(values)) if values else None


@dataclass
class DataPreview:
    base_model: BaseModel
    row_count: int  # rows the query returns
    rows_read: int = 0  # rows tokenized (at most PREVIEW_ROWS)
    examples: list[RenderedExample] = field(default_factory=list)
    prompt_tokens: Spread | None = None
    completion_tokens: Spread | None = None
    over_prompt: list[int] = field(default_factory=list)
    over_completion: list[int] = field(default_factory=list)
    problem: str | None = None  # why the job would refuse these rows (empty texts, over a limit)
    needs_install: str | None = None  # the base model is not installed: no tokenizer to render with
    template: str = ""  # "model" (the tokenizer's chat template) or "fallback"

    @property
    def partial(self) -> bool:
        return self.rows_read < self.row_count

    @property
    def rows_over(self) -> int:
        """Rows over either limit, each counted once."""
        return len(set(self.over_prompt) | set(self.over_completion))

    @property
    def over_prompt_shown(self) -> list[int]:
        return self.over_prompt[:ROW_NUMBERS_SHOWN]

    @property
    def over_completion_shown(self) -> list[int]:
        return self.over_completion[:ROW_NUMBERS_SHOWN]


def preview(session: Session, base: BaseModel, query: str, *, purpose: str = "training") -> DataPreview:
    """Check `query` as FINETUNE CREATE will (UserError when it refuses) and preview its rows."""
    statement = accountdata.check_read_only_query(query)
    count = check_query(session, query, purpose=purpose)
    result = DataPreview(base_model=base, row_count=count)
    if not base.is_installed:
        result.needs_install = (f"The preview renders rows with {base.name}'s tokenizer and chat template, so it "
                                f"needs the model installed: {install_command(base.name)}")
        return result
    from trainer import DataError, check_rows
    from trainer.prepare import encode_rows, rows_over_limits, limits_message, token_counts

    limited = exp.select("prompt", "completion").from_(statement.subquery("q")).limit(PREVIEW_ROWS)
    rows = read_rows(session, limited.sql(dialect="snowflake"))
    result.rows_read = len(rows)
    try:
        check_rows(rows, base.training_data_limit_bytes)
    except DataError as error:
        result.problem = str(error)
        # Empty texts cannot be encoded meaningfully; the statistics cover the rows that can.
        rows = [(p or "", c or "") for p, c in rows]
    tokenizer = tokenizer_for(base.weights_dir)
    examples = encode_rows(tokenizer, rows)
    counts = [token_counts(e) for e in examples]
    result.template = examples[0].template if examples else ""
    result.prompt_tokens = Spread.of([p for p, _ in counts])
    result.completion_tokens = Spread.of([c for _, c in counts])
    result.over_prompt, result.over_completion = rows_over_limits(
        examples, base.max_prompt_tokens, base.max_completion_tokens)
    over = limits_message(examples, base.max_prompt_tokens, base.max_completion_tokens)
    if over and not result.problem:
        result.problem = over
    result.examples = [RenderedExample(number, pieces(tokenizer, e.input_ids, e.labels), *counts[number - 1])
                       for number, e in enumerate(examples[:EXAMPLES_SHOWN], 1)]
    return result


@lru_cache(maxsize=4)
def _tokenizer(path: str, _stamp: int) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def tokenizer_for(weights_dir: Path) -> Any:
    """The base model's tokenizer from the model store, loaded once per process (and again if the
    model is reinstalled)."""
    config = weights_dir / "config.json"
    return _tokenizer(str(weights_dir), config.stat().st_mtime_ns)


def pieces(tokenizer: Any, input_ids: list[int], labels: list[int]) -> list[Piece]:
    """The text of each token, marked trained or not. A character split over several byte-level tokens
    decodes to U+FFFD alone, so such tokens are joined until their text is whole."""
    from trainer.prepare import IGNORE_INDEX

    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    out: list[Piece] = []
    group: list[int] = []
    for position, (token, label) in enumerate(zip(input_ids, labels)):
        group.append(token)
        text = tokenizer.decode(group, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if "\ufffd" in text and len(group) < 4 and position + 1 < len(input_ids):
            continue
        out.append(Piece(text, label != IGNORE_INDEX, special=len(group) == 1 and token in special_ids))
        group = []
    return out
