"""One module per family of statements. Each exposes

    handles(statement: sqlglot.exp.Expression) -> bool
    run(executor: sqlengine.executor.Executor, statement) -> sqlengine.results.Result

and the executor asks them in the order of executor.STATEMENT_MODULES.
"""
