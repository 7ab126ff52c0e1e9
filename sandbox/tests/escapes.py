"""Escape attempts: SQL a role without any privilege on database ACC sends to read ACC.S.T anyway, written
by someone who has read DuckDB's function list and Snowflake's and DuckDB's name resolution rules.

Each is (SQL as LOW sends it, the start of the error it must get). The session is PUB.S unless the
statement names more. The tests run every one through each entry point it applies to.
"""
from __future__ import annotations

UNKNOWN_TABLE_FUNCTION = "SQL compilation error: Unknown table function "
UNKNOWN_FUNCTION = "SQL compilation error: Unknown function "
NO_ACC = "Database 'ACC' does not exist or not authorized."
NOT_SUPPORTED = "SQL compilation error: "

# SELECTs: also used as FINETUNE training queries, COMPLETE's rows, CREATE TABLE AS and INSERT … SELECT.
QUERIES: list[tuple[str, str]] = [
    # DuckDB table functions that run SQL or name tables inside strings
    ("SELECT * FROM query('SELECT * FROM acc.s.t')", UNKNOWN_TABLE_FUNCTION + "QUERY"),
    ("SELECT * FROM query_table('acc.s.t')", UNKNOWN_TABLE_FUNCTION + "QUERY_TABLE"),
    ("SELECT * FROM query_table(['acc.s.t'], true)", UNKNOWN_TABLE_FUNCTION + "QUERY_TABLE"),
    ("SELECT * FROM TABLE(query_table('acc.s.t'))", UNKNOWN_TABLE_FUNCTION + "QUERY_TABLE"),
    ("SELECT (SELECT COUNT(*) FROM query_table('acc.s.t'))", UNKNOWN_TABLE_FUNCTION + "QUERY_TABLE"),
    ("SELECT * FROM pub.s.x WHERE id IN (SELECT id FROM query('SELECT id FROM acc.s.t'))",
     UNKNOWN_TABLE_FUNCTION + "QUERY"),
    # files, the server's own included
    ("SELECT * FROM read_csv('/etc/passwd')", UNKNOWN_TABLE_FUNCTION + "READ_CSV"),
    ("SELECT * FROM read_csv_auto('var/duckdb/ACC.duckdb')", UNKNOWN_TABLE_FUNCTION + "READ_CSV_AUTO"),
    ("SELECT * FROM read_parquet('var/stages/table/ACC/S/T/files/x.parquet')", UNKNOWN_TABLE_FUNCTION + "READ_PARQUET"),
    ("SELECT * FROM read_json_auto('/etc/hostname')", UNKNOWN_TABLE_FUNCTION + "READ_JSON_AUTO"),
    ("SELECT * FROM read_text('/etc/passwd')", UNKNOWN_TABLE_FUNCTION + "READ_TEXT"),
    ("SELECT * FROM read_blob('var/duckdb/ACC.duckdb')", UNKNOWN_TABLE_FUNCTION + "READ_BLOB"),
    ("SELECT * FROM glob('var/*')", "SQL compilation error: syntax error"),
    ("SELECT * FROM 'var/duckdb/ACC.duckdb'", NOT_SUPPORTED + "Reading a file"),
    ("SELECT * FROM '/etc/passwd'", NOT_SUPPORTED + "Reading a file"),
    ("SELECT * FROM @ACC.S.SECRETSTAGE", NOT_SUPPORTED + "Querying staged files"),
    ("SELECT $1 FROM @ACC.S.%T", NOT_SUPPORTED),
    # DuckDB's catalog functions and settings
    ("SELECT * FROM duckdb_tables()", UNKNOWN_TABLE_FUNCTION + "DUCKDB_TABLES"),
    ("SELECT * FROM duckdb_columns()", UNKNOWN_TABLE_FUNCTION + "DUCKDB_COLUMNS"),
    ("SELECT * FROM duckdb_databases()", UNKNOWN_TABLE_FUNCTION + "DUCKDB_DATABASES"),
    ("SELECT * FROM duckdb_settings()", UNKNOWN_TABLE_FUNCTION + "DUCKDB_SETTINGS"),
    ("SELECT * FROM duckdb_views()", UNKNOWN_TABLE_FUNCTION + "DUCKDB_VIEWS"),
    ("SELECT * FROM duckdb_functions()", UNKNOWN_TABLE_FUNCTION + "DUCKDB_FUNCTIONS"),
    ("SELECT * FROM duckdb_secrets()", UNKNOWN_TABLE_FUNCTION + "DUCKDB_SECRETS"),
    ("SELECT * FROM duckdb_extensions()", UNKNOWN_TABLE_FUNCTION + "DUCKDB_EXTENSIONS"),
    ("SELECT * FROM pragma_table_info('acc.s.t')", UNKNOWN_TABLE_FUNCTION + "PRAGMA_TABLE_INFO"),
    ("SELECT * FROM pragma_storage_info('acc.s.t')", UNKNOWN_TABLE_FUNCTION + "PRAGMA_STORAGE_INFO"),
    ("SELECT * FROM pragma_database_list()", UNKNOWN_TABLE_FUNCTION + "PRAGMA_DATABASE_LIST"),
    ("SELECT * FROM range(3)", UNKNOWN_TABLE_FUNCTION + "RANGE"),
    ("SELECT * FROM generate_series(1, 3)", UNKNOWN_TABLE_FUNCTION),
    ("SELECT * FROM unnest([1, 2])", NOT_SUPPORTED),
    ("SELECT current_setting('temp_directory')", UNKNOWN_FUNCTION + "CURRENT_SETTING"),
    ("SELECT getvariable('secret')", UNKNOWN_FUNCTION + "GETVARIABLE"),
    ("SELECT version()", UNKNOWN_FUNCTION + "VERSION"),
    ("SELECT typeof(x) FROM (SELECT current_setting('threads') x)", UNKNOWN_FUNCTION + "CURRENT_SETTING"),
    ("SELECT \"query\"('SELECT 1')", UNKNOWN_FUNCTION + "QUERY"),
    ("SELECT pub.s.query_table('acc.s.t')", UNKNOWN_FUNCTION + "PUB.S.QUERY_TABLE"),
    ("SELECT * FROM TABLE(RESULT_SCAN(LAST_QUERY_ID()))", UNKNOWN_TABLE_FUNCTION + "RESULT_SCAN"),
    ("SELECT * FROM TABLE(FLATTEN(input => PARSE_JSON('[1]')))", UNKNOWN_TABLE_FUNCTION + "FLATTEN"),
    ("SELECT * FROM TABLE(GENERATOR(TIMELIMIT => 1))", NOT_SUPPORTED + "GENERATOR without ROWCOUNT"),
    ("SELECT * FROM TABLE(GENERATOR(ROWCOUNT => (SELECT COUNT(*) FROM acc.s.t)))",
     NOT_SUPPORTED + "GENERATOR's ROWCOUNT must be a constant."),
    # DuckDB's dot-call syntax ('x'.upper() is upper('x')) and Snowflake's hierarchical queries
    ("SELECT 'abc'.upper()", UNKNOWN_FUNCTION + "'ABC'.UPPER"),
    ("SELECT name.query_table() FROM acc.s.t", UNKNOWN_FUNCTION + "NAME.QUERY_TABLE"),
    ("SELECT * FROM acc.s.t START WITH id = 1 CONNECT BY PRIOR id = id", NOT_SUPPORTED),
    # names computed from strings: Snowflake's IDENTIFIER() and TABLE('name'), which sqlglot writes for
    # DuckDB as the plain name inside the string
    ("SELECT * FROM IDENTIFIER('acc.s.t')", UNKNOWN_TABLE_FUNCTION + "IDENTIFIER"),
    ("SELECT * FROM IDENTIFIER('\"ACC\".\"S\".\"T\"')", UNKNOWN_TABLE_FUNCTION + "IDENTIFIER"),
    ("SELECT IDENTIFIER('name') FROM pub.s.x", UNKNOWN_FUNCTION + "IDENTIFIER"),
    ("SELECT * FROM TABLE('acc.s.t')", UNKNOWN_TABLE_FUNCTION),
    ("SELECT * FROM pub.s.x, TABLE(acc.s.t)", UNKNOWN_TABLE_FUNCTION),
    ("SELECT * FROM TABLE($x)", UNKNOWN_TABLE_FUNCTION),
    # DuckDB's catalogs and default views by name
    ("SELECT * FROM information_schema.tables WHERE table_catalog = 'ACC'", None),
    ("SELECT * FROM system.main.duckdb_tables", "Database 'SYSTEM' does not exist"),
    ("SELECT * FROM temp.main.studio_virtual_1", "Database 'TEMP' does not exist"),
    ("SELECT * FROM memory.main.x", "Database 'MEMORY' does not exist"),
    ("SELECT * FROM pg_catalog.pg_tables", "Schema 'PUB.PG_CATALOG' does not exist"),
    ("SELECT * FROM main.duckdb_tables", "Schema 'PUB.MAIN' does not exist"),
    ("SELECT * FROM duckdb_tables", "SQL compilation error: Object 'PUB.S.DUCKDB_TABLES' does not exist"),
    ("SELECT * FROM sqlite_master", "SQL compilation error: Object 'PUB.S.SQLITE_MASTER' does not exist"),
    ("SELECT * FROM duckdb_databases", "SQL compilation error: Object 'PUB.S.DUCKDB_DATABASES' does not exist"),
    ("SELECT * FROM pg_settings", "SQL compilation error: Object 'PUB.S.PG_SETTINGS' does not exist"),
    ("SELECT * FROM pg_views", "SQL compilation error: Object 'PUB.S.PG_VIEWS' does not exist"),
    ("SELECT * FROM acc.information_schema.tables", NO_ACC),
    ("SELECT * FROM acc.information_schema.columns", NO_ACC),
    # the name itself, in every quoting and case
    ("SELECT * FROM acc.s.t", NO_ACC),
    ('SELECT * FROM "acc".s.t', "Database '\"acc\"' does not exist or not authorized."),
    ('SELECT * FROM "Acc"."S"."T"', "Database '\"Acc\"' does not exist or not authorized."),
    ('SELECT * FROM "ACC"."S"."T"', NO_ACC),
    ('SELECT * FROM acc.s."t"', NO_ACC),
    ("SELECT * FROM Acc . S . T", NO_ACC),
    ("SELECT * FROM acc.s.t AS t2", NO_ACC),
    ("SELECT * FROM acc.s.t SAMPLE (100)", NO_ACC),
    ("SELECT * FROM acc.s.t AT(OFFSET => -1)", NOT_SUPPORTED + "WHEN on a table reference"),
    ("SELECT * FROM acc.s.nonexistent", NO_ACC),
    ("SELECT * FROM acc.s.t.extra", "SQL compilation error: invalid object name"),
    ('SELECT * FROM "acc.s.t"', "SQL compilation error: Object 'PUB.S.\"acc.s.t\"' does not exist"),
    ('SELECT * FROM "АСС".s.t', "Database '\"АСС\"' does not exist"),  # Cyrillic
    ("SELECT COUNT(*) FROM acc.s.t", NO_ACC),
    ("SELECT * FROM acc.s.TOPSECRET_NAMES", NO_ACC),
    # hidden in expressions, joins and set operations
    ("SELECT (SELECT name FROM acc.s.t LIMIT 1)", NO_ACC),
    ("SELECT * FROM pub.s.x WHERE EXISTS (SELECT 1 FROM acc.s.t)", NO_ACC),
    ("SELECT * FROM pub.s.x WHERE note = (SELECT name FROM \"ACC\".\"S\".\"T\" LIMIT 1)", NO_ACC),
    ("SELECT * FROM pub.s.x UNION ALL SELECT id, name FROM acc.s.t", NO_ACC),
    ("SELECT id FROM pub.s.x INTERSECT SELECT id FROM acc.s.t", NO_ACC),
    ("SELECT id FROM pub.s.x EXCEPT SELECT id FROM acc.s.t", NO_ACC),
    ("SELECT * FROM pub.s.x JOIN acc.s.t USING (id)", NO_ACC),
    ("SELECT * FROM pub.s.x a, LATERAL (SELECT * FROM acc.s.t b WHERE b.id = a.id) c", NO_ACC),
    ("SELECT * FROM (pub.s.x JOIN acc.s.t ON TRUE)", NO_ACC),
    ("SELECT * FROM (SELECT * FROM (SELECT * FROM acc.s.t))", NO_ACC),
    ("SELECT to_json(t) FROM acc.s.t t", NO_ACC),
    ("SELECT ARRAY_AGG(name) FROM acc.s.t", NO_ACC),
    ("SELECT id, (SELECT ARRAY_AGG(detail) FROM acc.s.t) FROM pub.s.x", NO_ACC),
    ("SELECT * FROM pub.s.x QUALIFY ROW_NUMBER() OVER (ORDER BY (SELECT MAX(id) FROM acc.s.t)) = 1", NO_ACC),
    ("SELECT CASE WHEN (SELECT COUNT(*) FROM acc.s.t) > 1 THEN 'many' END", NO_ACC),
    # CTEs: names that shadow, CTEs that read forbidden tables, recursion
    ("WITH t AS (SELECT * FROM acc.s.t) SELECT * FROM t", NO_ACC),
    ("WITH x AS (SELECT * FROM acc.s.t) SELECT * FROM pub.s.x", NO_ACC),
    ("WITH acc AS (SELECT 1 AS id) SELECT * FROM acc.s.t", NO_ACC),
    ("WITH x AS (SELECT 1 AS id) SELECT * FROM x, (WITH x AS (SELECT * FROM acc.s.t) SELECT * FROM x)", NO_ACC),
    ("WITH RECURSIVE r AS (SELECT id FROM acc.s.t UNION ALL SELECT id + 1 FROM r WHERE id < 3) SELECT * FROM r",
     NO_ACC),
    ("WITH a AS (SELECT * FROM b), b AS (SELECT * FROM acc.s.t) SELECT * FROM a",
     "SQL compilation error: Object 'PUB.S.B' does not exist"),
    # a CTE defined in one subquery does not hide DuckDB's catalog views by name in another
    ("SELECT * FROM pub.s.x AS duckdb_tables, LATERAL (SELECT table_name FROM duckdb_tables) l, "
     "(WITH duckdb_tables AS (SELECT 1) SELECT 1) z",
     "SQL compilation error: Object 'PUB.S.DUCKDB_TABLES' does not exist"),
    ("(WITH duckdb_tables AS (SELECT 1) SELECT 1) UNION ALL SELECT COUNT(*) FROM duckdb_tables",
     "SQL compilation error: Object 'PUB.S.DUCKDB_TABLES' does not exist"),
    # Snowflake's own views the role may not read
    ("SELECT * FROM snowflake.account_usage.cortex_access_history",
     "Insufficient privileges to operate on view 'SNOWFLAKE.ACCOUNT_USAGE.CORTEX_ACCESS_HISTORY'"),
    ("SELECT * FROM snowflake.account_usage.query_history",
     "SQL compilation error: Object 'SNOWFLAKE.ACCOUNT_USAGE.QUERY_HISTORY' does not exist"),
    # Cortex calls carrying forbidden rows
    ("SELECT SNOWFLAKE.CORTEX.COMPLETE('smollm2-135m', (SELECT name FROM acc.s.t LIMIT 1))", NO_ACC),
    ("SELECT SNOWFLAKE.CORTEX.COMPLETE('smollm2-135m', name) FROM acc.s.t", NO_ACC),
    ("SELECT pub.s.complete('m', 'p')", UNKNOWN_FUNCTION + "PUB.S.COMPLETE"),
]

# Statements that are not queries.
STATEMENTS: list[tuple[str, str]] = [
    ("ATTACH 'var/duckdb/ACC.duckdb' AS loot", "SQL compilation error: syntax error"),
    ("COPY (SELECT * FROM acc.s.t) TO '/tmp/loot.csv'", "COPY INTO"),
    ("INSTALL httpfs", "SQL compilation error: statement 'INSTALL"),
    ("LOAD httpfs", "SQL compilation error: statement 'LOAD httpfs' is not supported."),
    ("PRAGMA database_list", "SQL compilation error: statement 'PRAGMA database_list' is not supported."),
    ("SET enable_external_access = true", "SQL compilation error: statement 'SET enable_external_access"),
    ("EXPORT DATABASE '/tmp/loot'", "SQL compilation error: syntax error"),
    ("CALL pragma_table_info('acc.s.t')", "SQL compilation error: statement 'CALL pragma_table_info"),
    ("SELECT 1; SELECT * FROM acc.s.t", NO_ACC),
    ("INSERT INTO pub.s.sink SELECT id, name FROM acc.s.t", NO_ACC),
    ("INSERT INTO pub.s.sink SELECT * FROM query_table('acc.s.t')", UNKNOWN_TABLE_FUNCTION + "QUERY_TABLE"),
    ("UPDATE pub.s.sink SET name = (SELECT name FROM acc.s.t LIMIT 1)", NO_ACC),
    ("DELETE FROM pub.s.sink WHERE id IN (SELECT id FROM acc.s.t)", NO_ACC),
    ("DELETE FROM pub.s.sink USING acc.s.t u WHERE sink.id = u.id", NO_ACC),
]
