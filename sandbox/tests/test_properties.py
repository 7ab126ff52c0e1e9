"""Property: whatever query LOW writes (tables it may read and tables it may not, in any quoting and case,
CTEs that shadow names, subqueries, unions, lateral joins, table functions), no secret row is ever
returned, a query naming ACC is always refused, and every refusal is a clean Snowflake error."""
from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from errors import UserError
from tests.support.security import leaks

ALLOWED = ["pub.s.x", "PUB.S.X", '"PUB"."S"."X"', "Pub.s.X", 'pub."S".x', "x", "X", '"X"']
FORBIDDEN = ["acc.s.t", "ACC.S.T", '"ACC"."S"."T"', '"acc".s.t', 'Acc."S"."T"', '"Acc"."S"."T"', 'acc.s."T"',
             "acc.s.TOPSECRET_NAMES", "acc.information_schema.tables", "acc.information_schema.columns"]
TABLE_FUNCTIONS = [("TABLE(GENERATOR(ROWCOUNT => 2))", False), ("query_table('acc.s.t')", True),
                   ("query('SELECT * FROM acc.s.t')", True), ("read_csv('/etc/passwd')", True),
                   ("duckdb_tables()", True), ("pragma_table_info('acc.s.t')", True)]
CTE_NAMES = ["t", "x", "q", "acc"]


@dataclass(frozen=True)
class Query:
    sql: str
    forbidden: bool  # names ACC (qualified, so no CTE can shadow it) or a table function we refuse


def _combine(sql: str, *parts: Query) -> Query:
    return Query(sql, any(p.forbidden for p in parts))


table = st.one_of(
    st.sampled_from(ALLOWED).map(lambda name: Query(name, False)),
    st.sampled_from(FORBIDDEN).map(lambda name: Query(name, True)),
    st.sampled_from(TABLE_FUNCTIONS).map(lambda item: Query(item[0], item[1])),
    st.sampled_from(CTE_NAMES).map(lambda name: Query(name, False)),
)


def _extend(queries):
    source = st.one_of(table, queries.map(lambda q: _combine(f"({q.sql})", q)))
    aliased = st.tuples(source, st.sampled_from(["a", "b", "c"])).map(lambda p: _combine(f"{p[0].sql} AS {p[1]}", p[0]))
    select = st.tuples(st.sampled_from(["*", "COUNT(*)", "1 AS one"]), aliased).map(
        lambda p: _combine(f"SELECT {p[0]} FROM {p[1].sql}", p[1]))
    return st.one_of(
        select,
        st.tuples(select, aliased).map(lambda p: _combine(f"{p[0].sql} JOIN {p[1].sql} ON TRUE", *p)),
        st.tuples(select, queries).map(lambda p: _combine(f"{p[0].sql} WHERE EXISTS ({p[1].sql})", *p)),
        st.tuples(queries, queries).map(lambda p: _combine(f"{p[0].sql} UNION ALL {p[1].sql}", *p)),
        st.tuples(select, queries).map(lambda p: _combine(f"{p[0].sql}, LATERAL ({p[1].sql}) AS l", *p)),
        st.tuples(st.sampled_from(CTE_NAMES), queries, queries).map(
            lambda p: _combine(f"WITH {p[0]} AS ({p[1].sql}) {p[2].sql}", p[1], p[2])),
        st.tuples(queries, queries).map(lambda p: _combine(f"SELECT ({p[0].sql}) AS v FROM ({p[1].sql}) AS s", *p)),
    )


queries = st.recursive(
    st.tuples(st.sampled_from(["*", "COUNT(*)"]), table).map(lambda p: _combine(f"SELECT {p[0]} FROM {p[1].sql}", p[1])),
    _extend, max_leaves=6)


def clean(error: UserError) -> bool:
    return (isinstance(error.code, int) and len(error.sqlstate) == 5
            and error.message.startswith(("SQL compilation error: ", "Insufficient privileges to operate on ",
                                          "Database '", "Schema '"))
            and not leaks(error.message))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=queries, in_acc=st.booleans())
def test_no_query_returns_a_secret_row_and_every_refusal_is_clean(low_account, query, in_acc):
    # In ACC.S, unqualified names are ACC's too (a session pointed there by hand: sessions opened through
    # the SQL API or USE refuse it).
    session = {"database": "ACC", "schema": "S"} if in_acc else {"database": "PUB", "schema": "S"}
    try:
        result = low_account.sql(query.sql, **session)[-1]
    except UserError as error:
        assert clean(error), (query.sql, error.code, error.sqlstate, error.message)
        return
    assert not query.forbidden, f"ran although it names ACC: {query.sql}"
    assert not leaks(result.rows) and not leaks(result.columns), (query.sql, result.rows)
