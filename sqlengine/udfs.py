"""SNOWFLAKE.CORTEX.COMPLETE, AI_COMPLETE and FINETUNE anywhere a scalar may stand, as Python UDFs on DuckDB.

The query tree is rewritten so each Cortex call becomes a call of a function registered on the DuckDB
connection; every other SQL feature (WHERE, CTEs, subqueries, ORDER BY, aggregates) stays DuckDB's.

DuckDB calls a Python UDF one row at a time (its vectorised 'arrow' UDFs need pyarrow, which the
studio does not ship), and on whichever of its threads runs the pipeline. So a query with Cortex calls
runs twice:

1. a collecting pass, in which each call records its arguments and answers a placeholder ('' or {}
   for COMPLETE and AI_COMPLETE, NULL for FINETUNE);
2. the distinct COMPLETE and AI_COMPLETE requests are sent concurrently (WORKERS at a time; the embedded
   server batches concurrent requests), FINETUNE SHOW / DESCRIBE made one by one on the statement's own
   thread, and every answer cached (FINETUNE CREATE / CANCEL act, so they wait for the real pass);
3. the real pass, in which the calls answer from the cache. A call the first pass could not foresee
   (one whose argument is another call's answer, for instance) is made there and then; a FINETUNE one
   on the statement's own thread still (CortexCalls.on_statement_thread).

Results are therefore those of one-by-one calls, in row order; the first pass only decides what to
ask ahead. Within one statement a call is made once per distinct argument list: two rows asking
FINETUNE('CREATE', …) with the same arguments start one job, not two.
"""
from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

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
AI_COMPLETE = "studio_cortex_ai_complete"  # (model, prompt, model_parameters JSON, response_format JSON) -> VARCHAR
FINETUNE = "studio_cortex_finetune_{}"  # n VARCHAR arguments -> JSON
# FINETUNE('CREATE' | 'CANCEL', …) written with a constant action: the id or message as text, not JSON.
FINETUNE_TEXT = "studio_cortex_finetune_text_{}"  # n VARCHAR arguments -> VARCHAR
FINETUNE_ARITIES = range(1, 7)

_OK, _FAILED = "ok", "failed"
T = TypeVar("T")


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
        self.finetune = False  # the statement calls FINETUNE: its real pass runs via on_statement_thread
        self._lock = threading.Lock()
        self._thread = threading.get_ident()
        self._requests: queue.Queue | None = None  # FINETUNE calls for the statement's thread to make

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
            self.finetune = self.finetune or name == "FINETUNE"
        self.found = bool(calls)
        return self.found

    def _udf_call(self, name: str, args: list[exp.Expression]) -> exp.Expression:
        if name == "AI_COMPLETE":
            return _ai_complete_call(args)
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
            text = cortex.result_type(name, args) == "TEXT"
            return exp.Anonymous(this=(FINETUNE_TEXT if text else FINETUNE).format(len(args)),
                                 expressions=[_text(a) for a in args])
        raise compilation_error(f"Unknown function SNOWFLAKE.CORTEX.{name}.")

    # The functions DuckDB calls ---------------------------------------------------------------

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        text, json_type = "VARCHAR", "JSON"
        con.create_function(COMPLETE_TEXT, self._complete_text, [text, text], text, null_handling="special")
        con.create_function(COMPLETE_OBJECT, self._complete_object, [text, json_type, json_type], json_type,
                            null_handling="special")
        con.create_function(AI_COMPLETE, self._ai_complete, [text, text, json_type, json_type], text,
                            null_handling="special")
        for n in FINETUNE_ARITIES:
            con.create_function(FINETUNE.format(n), _by_arity(self._finetune)[n], [text] * n, json_type,
                                null_handling="special", side_effects=True)
            con.create_function(FINETUNE_TEXT.format(n), _by_arity(self._finetune_text)[n], [text] * n, text,
                                null_handling="special", side_effects=True)

    def _complete_text(self, model: str | None, prompt: str | None) -> str | None:
        if model is None or prompt is None:
            return None
        return self._answer(("text", model, prompt), placeholder="")

    def _complete_object(self, model: str | None, messages: str | None, options: str | None) -> str | None:
        if model is None or messages is None:
            return None
        return self._answer(("object", model, messages, options or "{}"), placeholder="{}")

    def _ai_complete(self, model: str | None, prompt: str | None, parameters: str | None,
                     response_format: str | None) -> str | None:
        if model is None or prompt is None:
            return None
        return self._answer(("ai", model, prompt, parameters, response_format), placeholder="")

    def _finetune(self, *values: str | None) -> str | None:
        return self._answer(("finetune", *values), placeholder=None)

    def _finetune_text(self, *values: str | None) -> str | None:
        # The same call (and cache entry) as _finetune's: its answer is JSON text of a string.
        answer = self._finetune(*values)
        return None if answer is None else json.loads(answer)

    def _answer(self, key: tuple, placeholder: str | None) -> str | None:
        if self.collecting:
            with self._lock:
                if key not in self._cache:
                    self._wanted[key] = None
            return placeholder
        with self._lock:
            outcome = self._cache.get(key)
        if outcome is None:  # not foreseen by the collecting pass: ask now
            requests = self._requests
            if key[0] == "finetune" and requests is not None and threading.get_ident() != self._thread:
                reply: queue.Queue = queue.Queue(maxsize=1)
                requests.put((key, reply))
                outcome = reply.get()
            else:
                outcome = self._outcome(key)
        status, value = outcome
        if status == _FAILED:
            self.error = self.error or value
            raise value
        return value

    def _outcome(self, key: tuple) -> tuple[str, Any]:
        """The cached answer, or the call made now and cached."""
        with self._lock:
            outcome = self._cache.get(key)
        if outcome is not None:
            return outcome
        try:
            outcome = (_OK, self._ask(key))
        except Exception as exc:
            outcome = (_FAILED, exc)
        finally:
            self._close_thread_connections()
        with self._lock:
            self._cache[key] = outcome
        return outcome

    def on_statement_thread(self, work: Callable[[], T]) -> T:
        """`work` (the real pass) on a helper thread, while this thread, the statement's, makes the
        FINETUNE calls it asks for. DuckDB calls a UDF on whichever of its threads runs the pipeline, and
        FINETUNE CREATE / CANCEL write jobs: on another thread they would write through another database
        connection, outside the statement's transaction (SQLite: 'database is locked' while it is open),
        and two threads could both start the job one argument list asks for."""
        requests: queue.Queue = queue.Queue()
        finished = object()
        outcome: list[tuple[str, Any]] = []

        def real_pass() -> None:
            try:
                outcome.append((_OK, work()))
            except BaseException as exc:  # re-raised on the statement's thread
                outcome.append((_FAILED, exc))
            finally:
                connections.close_all()
                requests.put(finished)

        self._requests = requests
        thread = threading.Thread(target=real_pass, name="cortex-real-pass", daemon=True)
        thread.start()
        try:
            while (request := requests.get()) is not finished:
                key, reply = request
                reply.put(self._outcome(key))
        finally:
            thread.join()
            self._requests = None
        status, value = outcome[0]
        if status == _FAILED:
            raise value
        return value

    def _ask(self, key: tuple) -> str:
        if key[0] == "finetune":
            return json.dumps(cortex.finetune_call(self.session, list(key[1:])), default=str)
        if key[0] == "text":
            _, model, prompt = key
            return complete_service.complete(self.session, model, prompt)
        if key[0] == "ai":
            _, model, prompt, parameters, response_format = key
            return cortex.ai_complete(self.session, model, prompt, _loads(parameters), _loads(response_format))
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


def _by_arity(fn: Callable[..., Any]) -> dict[int, Callable[..., Any]]:
    # DuckDB checks a UDF's arity against its Python signature, so one function per arity.
    return {
        1: lambda a: fn(a),
        2: lambda a, b: fn(a, b),
        3: lambda a, b, c: fn(a, b, c),
        4: lambda a, b, c, d: fn(a, b, c, d),
        5: lambda a, b, c, d, e: fn(a, b, c, d, e),
        6: lambda a, b, c, d, e, f: fn(a, b, c, d, e, f),
    }


def _ai_complete_call(args: list[exp.Expression]) -> exp.Expression:
    """AI_COMPLETE(model, prompt) is COMPLETE(model, prompt); with model parameters (and a response format,
    refused while structured output is not served) it has a UDF of its own that answers text as well."""
    if any(isinstance(a, exp.Kwarg) for a in args):
        raise compilation_error(f"{cortex.AI_COMPLETE_SIGNATURE} takes its arguments by position here.")
    cortex.check_ai_complete_arity(len(args))
    if len(args) == 2:
        return exp.Anonymous(this=COMPLETE_TEXT, expressions=[_text(a) for a in args])
    options = args[2:] + [exp.Null()] * (4 - len(args))
    if all(is_constant(a) for a in options):  # refused before any row is asked
        cortex.ai_complete_options(*[constant(a) for a in options])
    return exp.Anonymous(this=AI_COMPLETE, expressions=[_text(args[0]), _text(args[1])] + [_json(a) for a in options])


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _text(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Literal) and node.is_string or isinstance(node, exp.Null):
        return node
    if is_constant(node) and isinstance(value := constant(node), (dict, list)):
        # FINETUNE's options as snowflake-ml writes them, OBJECT_CONSTRUCT(…): JSON text, which DuckDB's
        # VARCHAR cast of a struct is not.
        return exp.Literal.string(json.dumps(value))
    return exp.cast(node, "VARCHAR")


def _json(node: exp.Expression) -> exp.Expression:
    """A JSON argument: constants (even `{}`, which DuckDB has no literal for) become JSON text."""
    if isinstance(node, exp.Null):
        return node
    if is_constant(node):
        return exp.cast(exp.Literal.string(json.dumps(constant(node))), "JSON")
    return exp.Anonymous(this="to_json", expressions=[node])
