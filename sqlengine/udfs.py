"""SNOWFLAKE.CORTEX.COMPLETE and FINETUNE anywhere a scalar may stand, as Python UDFs on DuckDB.

The query tree is rewritten so each Cortex call becomes a call of a function registered on the DuckDB
connection; every other SQL feature (WHERE, CTEs, subqueries, ORDER BY, aggregates) stays DuckDB's.

DuckDB calls a Python UDF one row at a time (its vectorised 'arrow' UDFs need pyarrow, which the
studio does not ship), and on whichever of its threads runs the pipeline. So a query with Cortex calls
runs twice:

1. a collecting pass, in which each call records its arguments and answers a placeholder ('' or {}
   for COMPLETE, NULL for FINETUNE);
2. the distinct COMPLETE requests are sent concurrently (WORKERS at a time; the embedded server batches
   concurrent requests), FINETUNE SHOW / DESCRIBE made one by one on the statement's own thread, and
   every answer cached (FINETUNE CREATE / CANCEL act, so they wait for the real pass);
3. the real pass, in which the calls answer from the cache. A call the first pass could not foresee
   (one whose argument is another call's answer, for instance) is made there and then.

Results are therefore those of one-by-one calls, in row order; the first pass only decides what to
ask ahead. Within one statement a call is made once per distinct argument list: two rows asking
FINETUNE('CREATE', …) with the same arguments start one job, not two.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
from django.db import connections
from sqlglot import exp

from access.session import Session
from errors import compilation_error
from inference import complete as complete_service
from sandbox.expressions import constant, cortex_call, is_constant
from sqlengine import cortex

WORKERS = 8  # concurrent COMPLETE requests per statement
COMPLETE_TEXT = "studio_cortex_complete"  # (model, prompt) -> VARCHAR
COMPLETE_OBJECT = "studio_cortex_complete_object"  # (model, messages JSON, options JSON) -> JSON
FINETUNE = "studio_cortex_finetune_{}"  # n VARCHAR arguments -> JSON
FINETUNE_ARITIES = range(1, 7)

_OK, _FAILED = "ok", "failed"


def run_concurrently(fn: Callable[[Any], Any], items: Sequence[Any], workers: int = WORKERS) -> list[tuple[str, Any]]:
    """fn over items on at most `workers` threads; (status, value or exception) per item, in order."""
    outcomes: list[tuple[str, Any]] = [(_FAILED, None)] * len(items)
    lock = threading.Lock()
    position = iter(range(len(items)))

    def one(i: int) -> None:
        try:
            outcomes[i] = (_OK, fn(items[i]))
        except Exception as exc:  # kept per item: raised when (and only if) the statement needs it
            outcomes[i] = (_FAILED, exc)

    def worker() -> None:
        try:
            while True:
                with lock:
                    i = next(position, None)
                if i is None:
                    return
                one(i)
        finally:
            # The ORM opened a connection for this thread (model lookups); it must not outlive it.
            connections.close_all()

    if len(items) <= 1:
        for i in range(len(items)):  # on the caller's thread: no extra database connection
            one(i)
        return outcomes
    threads = [threading.Thread(target=worker, name=f"cortex-complete-{n}", daemon=True)
               for n in range(min(workers, len(items)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


class CortexCalls:
    """The Cortex calls of one statement: rewriting them, answering them, and their answer cache."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.found = False
        self.collecting = False
        self.error: BaseException | None = None  # the first error a UDF raised, re-raised as is
        self._cache: dict[tuple, tuple[str, Any]] = {}
        self._wanted: dict[tuple, None] = {}  # ordered set of keys seen while collecting
        self._lock = threading.Lock()
        self._thread = threading.get_ident()

    # Rewriting -------------------------------------------------------------------------------

    def rewrite(self, tree: exp.Expression) -> bool:
        """Replace each Cortex call in `tree` (in place) by its UDF; True when there was one."""
        # The FINETUNE of SNOWFLAKE.CORTEX.FINETUNE(…) is itself a bare call; the whole Dot is the call.
        calls = [node for node in tree.walk() if cortex_call(node)
                 and not (isinstance(node.parent, exp.Dot) and node.arg_key == "expression" and cortex_call(node.parent))]
        # Innermost first, so an outer call is rebuilt around already rewritten arguments.
        for node in reversed(calls):
            name, args = cortex_call(node)
            node.replace(self._udf_call(name, args))
        self.found = bool(calls)
        return self.found

    def _udf_call(self, name: str, args: list[exp.Expression]) -> exp.Expression:
        if name == "COMPLETE":
            if len(args) == 2:
                return exp.Anonymous(this=COMPLETE_TEXT, expressions=[_text(a) for a in args])
            if len(args) == 3:
                return exp.Anonymous(this=COMPLETE_OBJECT, expressions=[_text(args[0]), _json(args[1]), _json(args[2])])
            raise compilation_error("COMPLETE takes (model, prompt) or (model, messages, options).")
        if name == "FINETUNE":
            if len(args) not in FINETUNE_ARITIES:
                raise compilation_error("FINETUNE takes 1 to 6 arguments: FINETUNE('CREATE' | 'SHOW' | 'DESCRIBE' "
                                        "| 'CANCEL', …).")
            return exp.Anonymous(this=FINETUNE.format(len(args)), expressions=[_text(a) for a in args])
        raise compilation_error(f"Unknown function SNOWFLAKE.CORTEX.{name}.")

    # The functions DuckDB calls ---------------------------------------------------------------

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        text, json_type = "VARCHAR", "JSON"
        con.create_function(COMPLETE_TEXT, self._complete_text, [text, text], text, null_handling="special")
        con.create_function(COMPLETE_OBJECT, self._complete_object, [text, json_type, json_type], json_type,
                            null_handling="special")
        # DuckDB checks a UDF's arity against its Python signature, so one function per arity.
        by_arity = {
            1: lambda a: self._finetune(a),
            2: lambda a, b: self._finetune(a, b),
            3: lambda a, b, c: self._finetune(a, b, c),
            4: lambda a, b, c, d: self._finetune(a, b, c, d),
            5: lambda a, b, c, d, e: self._finetune(a, b, c, d, e),
            6: lambda a, b, c, d, e, f: self._finetune(a, b, c, d, e, f),
        }
        for n in FINETUNE_ARITIES:
            con.create_function(FINETUNE.format(n), by_arity[n], [text] * n, json_type,
                                null_handling="special", side_effects=True)

    def _complete_text(self, model: str | None, prompt: str | None) -> str | None:
        if model is None or prompt is None:
            return None
        return self._answer(("text", model, prompt), placeholder="")

    def _complete_object(self, model: str | None, messages: str | None, options: str | None) -> str | None:
        if model is None or messages is None:
            return None
        return self._answer(("object", model, messages, options or "{}"), placeholder="{}")

    def _finetune(self, *values: str | None) -> str | None:
        return self._answer(("finetune", *values), placeholder=None)

    def _answer(self, key: tuple, placeholder: str | None) -> str | None:
        if self.collecting:
            with self._lock:
                if key not in self._cache:
                    self._wanted[key] = None
            return placeholder
        with self._lock:
            outcome = self._cache.get(key)
        if outcome is None:  # not foreseen by the collecting pass: ask now
            try:
                outcome = (_OK, self._ask(key))
            except Exception as exc:
                outcome = (_FAILED, exc)
            finally:
                self._close_thread_connections()
            with self._lock:
                self._cache[key] = outcome
        status, value = outcome
        if status == _FAILED:
            self.error = self.error or value
            raise value
        return value

    def _ask(self, key: tuple) -> str:
        if key[0] == "finetune":
            return json.dumps(cortex.finetune_call(self.session, list(key[1:])), default=str)
        if key[0] == "text":
            _, model, prompt = key
            return complete_service.complete(self.session, model, prompt)
        _, model, messages, options = key
        response = complete_service.complete(self.session, model, json.loads(messages), json.loads(options))
        return json.dumps(response)

    def _close_thread_connections(self) -> None:
        # DuckDB may call a UDF on one of its own threads; the ORM connection it opened there is closed
        # at once. The statement's thread keeps its connection (it may be inside a transaction).
        if threading.get_ident() != self._thread:
            connections.close_all()

    # Asking ahead -----------------------------------------------------------------------------

    def prefetch(self) -> None:
        """Make every call the collecting pass saw and cache the answers: FINETUNE in order on this
        thread (it has side effects, and the ORM here sees this thread's transaction), COMPLETE
        concurrently."""
        with self._lock:
            keys = [k for k in self._wanted if k not in self._cache]
            self._wanted.clear()
        for key in keys:
            # CREATE and CANCEL act: they run only when the real pass needs them (a placeholder in the
            # collecting pass can send a CASE or COALESCE down a branch the real pass never takes).
            if key[0] == "finetune" and str(key[1]).strip().upper() in ("SHOW", "DESCRIBE"):
                try:
                    self._cache[key] = (_OK, self._ask(key))
                except Exception as exc:
                    self._cache[key] = (_FAILED, exc)
        completions = [k for k in keys if k[0] != "finetune"]
        for key, outcome in zip(completions, run_concurrently(self._ask, completions)):
            self._cache[key] = outcome


def _text(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Literal) and node.is_string or isinstance(node, exp.Null):
        return node
    return exp.cast(node, "VARCHAR")


def _json(node: exp.Expression) -> exp.Expression:
    """A JSON argument: constants (even `{}`, which DuckDB has no literal for) become JSON text."""
    if isinstance(node, exp.Null):
        return node
    if is_constant(node):
        return exp.cast(exp.Literal.string(json.dumps(constant(node))), "JSON")
    return exp.Anonymous(this="to_json", expressions=[node])
