import gzip
import hashlib
import json

import duckdb
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from access.bootstrap import bootstrap
from catalog import accountdata
from errors import UserError
from sqlengine.executor import Executor
from tests.support.cortex import admin_session

PEOPLE_CSV = "id,name,score\n1,Ada,1.5\n2,Alan,2.5\n3,\"Hopper, Grace\",3.5\n"
BAD_CSV = "id,name,score\n1,a,1.5\n2,b,notanumber\nx,c,3\n4,d,4\n5,e\n"


@pytest.fixture
def account(db, tmp_path, settings):
    settings.STAGE_DIR = tmp_path / "stages"
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password="pw-for-tests", demo=False)
    accountdata.create_database("LOADDB")
    con = duckdb.connect(str(accountdata.database_file("LOADDB")))
    con.execute('CREATE TABLE "PUBLIC"."PEOPLE" ("ID" INTEGER, "NAME" VARCHAR, "SCORE" DOUBLE)')
    con.execute('CREATE TABLE "PUBLIC"."EXAMPLES" ("PROMPT" VARCHAR, "COMPLETION" VARCHAR)')
    con.close()
    return tmp_path


def sql(text, **kw):
    session = admin_session(database="LOADDB", schema="PUBLIC")
    executor = Executor(session, local_files=kw.pop("local_files", True))  # as manage.py sql runs it
    for key, value in kw.items():
        setattr(executor, key, value)
    return executor.execute(text)[-1]


def table_rows(table, order="1"):
    con = duckdb.connect(str(accountdata.database_file("LOADDB")), read_only=True)
    try:
        return con.execute(f'SELECT * FROM "PUBLIC"."{table}" ORDER BY {order}').fetchall()
    finally:
        con.close()


def write(path, text):
    path.write_text(text)
    return path


def test_put_compresses_into_the_user_stage_and_list_shows_it(account):
    source = write(account / "people.csv", PEOPLE_CSV)
    result = sql(f"PUT file://{source} @~/staged")
    assert result.columns == ["source", "target", "source_size", "target_size", "source_compression",
                              "target_compression", "status", "message"]
    (row,) = result.rows
    assert row[:3] == ("people.csv", "people.csv.gz", len(PEOPLE_CSV))
    assert row[4:7] == ("NONE", "GZIP", "UPLOADED")

    listed = sql("LIST @~")
    assert listed.columns == ["name", "size", "md5", "last_modified"]
    ((name, size, md5, modified),) = listed.rows
    admin = get_user_model().objects.get(username="admin")
    stored = account / "stages" / "user" / f"id-{admin.pk}" / "files" / "staged" / "people.csv.gz"
    assert (name, size) == ("staged/people.csv.gz", stored.stat().st_size)
    assert md5 == hashlib.md5(stored.read_bytes()).hexdigest()
    assert gzip.decompress(stored.read_bytes()).decode() == PEOPLE_CSV
    assert modified.endswith(" GMT")


def test_put_skips_an_existing_file_unless_overwrite(account):
    source = write(account / "people.csv", PEOPLE_CSV)
    sql(f"PUT file://{source} @~ AUTO_COMPRESS=FALSE")
    assert sql(f"PUT file://{source} @~ AUTO_COMPRESS=FALSE").rows[0][6] == "SKIPPED"
    assert sql(f"PUT file://{source} @~ AUTO_COMPRESS=FALSE OVERWRITE=TRUE").rows[0][6] == "UPLOADED"
    assert [r[0] for r in sql("LIST @~").rows] == ["people.csv"]


def test_put_of_a_missing_file_names_it(account):
    with pytest.raises(UserError, match=r"File doesn't exist: \['/nope/x.csv'\]"):
        sql("PUT file:///nope/x.csv @~")


def test_put_through_the_api_points_at_the_upload_endpoint(account):
    source = write(account / "people.csv", PEOPLE_CSV)
    with pytest.raises(UserError) as caught:
        sql(f"PUT file://{source} @~", local_files=False)
    assert "POST /api/v2/stages/<stage>/files" in caught.value.message
    assert sql("LIST @~").rows == []


def test_named_stages_are_created_shown_and_dropped(account):
    assert sql("CREATE STAGE raw_files COMMENT = 'incoming'").rows == [("Stage area RAW_FILES successfully created.",)]
    with pytest.raises(UserError, match="Object 'RAW_FILES' already exists"):
        sql("CREATE STAGE raw_files")
    assert sql("CREATE STAGE IF NOT EXISTS raw_files").rows == [("RAW_FILES already exists, statement succeeded.",)]
    shown = sql("SHOW STAGES IN SCHEMA loaddb.public")
    assert [(r[1], r[2], r[3], r[8], r[10]) for r in shown.rows] == [("RAW_FILES", "LOADDB", "PUBLIC", "incoming",
                                                                       "INTERNAL")]
    assert sql("DROP STAGE raw_files").rows == [("RAW_FILES successfully dropped.",)]
    assert sql("SHOW STAGES").rows == []
    with pytest.raises(UserError, match=r"Stage 'LOADDB.PUBLIC.RAW_FILES' does not exist or not authorized"):
        sql("LIST @raw_files")


def test_show_stages_like_reads_the_pattern_as_every_show_does(account):
    """One LIKE for every SHOW (sqlengine.show.like_matches): case-insensitive, _ one character, and an
    escaped backslash ('\\\\_' in SQL, the pattern \\_) makes _ literal."""
    for name in ("RAW_FILES", "RAWXFILES"):
        sql(f"CREATE STAGE {name}")
    assert sorted(r[1] for r in sql("SHOW STAGES LIKE 'raw_files'").rows) == ["RAWXFILES", "RAW_FILES"]
    assert [r[1] for r in sql("SHOW STAGES LIKE 'raw\\\\_files'").rows] == ["RAW_FILES"]
    assert [r[1] for r in sql("SHOW STAGES LIKE 'raw\\\\_files' IN DATABASE loaddb").rows] == ["RAW_FILES"]


def test_create_or_replace_stage_empties_it(account):
    source = write(account / "people.csv", PEOPLE_CSV)
    sql("CREATE STAGE st")
    sql(f"PUT file://{source} @st")
    assert [r[0] for r in sql("LIST @loaddb.public.st").rows] == ["st/people.csv.gz"]
    sql("CREATE OR REPLACE STAGE st")
    assert sql("LIST @st").rows == []


def test_copy_into_loads_a_staged_csv(account):
    source = write(account / "people.csv", PEOPLE_CSV)
    sql("CREATE STAGE st")
    sql(f"PUT file://{source} @st/in")
    result = sql("COPY INTO people FROM @st/in FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1 "
                 "FIELD_OPTIONALLY_ENCLOSED_BY = '\"')")
    assert result.columns == ["file", "status", "rows_parsed", "rows_loaded", "error_limit", "errors_seen",
                              "first_error", "first_error_line", "first_error_character", "first_error_column_name"]
    assert result.rows == [("st/in/people.csv.gz", "LOADED", 3, 3, 1, 0, None, None, None, None)]
    assert table_rows("PEOPLE") == [(1, "Ada", 1.5), (2, "Alan", 2.5), (3, "Hopper, Grace", 3.5)]


def test_on_error_continue_skips_bad_rows_and_reports_the_first(account):
    source = write(account / "bad.csv", BAD_CSV)
    sql(f"PUT file://{source} @~ AUTO_COMPRESS=FALSE")
    result = sql("COPY INTO people FROM @~/bad.csv FILE_FORMAT=(TYPE=CSV SKIP_HEADER=1) ON_ERROR=CONTINUE")
    assert result.rows == [("bad.csv", "PARTIALLY_LOADED", 5, 2, 5, 3, "Numeric value 'notanumber' is not recognized",
                            3, 5, '"PEOPLE"["SCORE":3]')]
    assert table_rows("PEOPLE") == [(1, "a", 1.5), (4, "d", 4.0)]


def test_a_bad_row_aborts_the_whole_copy_by_default(account):
    write(account / "good.csv", "id,name,score\n7,g,7\n")
    write(account / "bad.csv", BAD_CSV)
    sql(f"PUT 'file://{account}/*.csv' @~ AUTO_COMPRESS=FALSE")
    with pytest.raises(UserError) as caught:
        sql("COPY INTO people FROM @~ FILE_FORMAT=(TYPE=CSV SKIP_HEADER=1)")
    assert caught.value.message == (
        "Numeric value 'notanumber' is not recognized\n"
        "  File 'bad.csv', line 3, character 5\n"
        "  Row 2, column \"PEOPLE\"[\"SCORE\":3]\n"
        "  If you would like to continue loading when an error is encountered, use other values such as "
        "'SKIP_FILE' or 'CONTINUE' for the ON_ERROR option.")
    assert table_rows("PEOPLE") == []  # good.csv was not loaded either


def test_a_wrong_column_count_is_reported_in_snowflake_words(account):
    write(account / "short.csv", "1,a\n")
    sql(f"PUT file://{account}/short.csv @~ AUTO_COMPRESS=FALSE")
    with pytest.raises(UserError, match=r"^Number of columns in file \(2\) does not match that of the corresponding "
                                          r"table \(3\), use file format option error_on_column_count_mismatch=false"):
        sql("COPY INTO people FROM @~/short.csv")


def test_skip_file_loads_the_clean_files_only(account):
    write(account / "good.csv", "id,name,score\n7,g,7\n")
    write(account / "bad.csv", BAD_CSV)
    sql(f"PUT 'file://{account}/*.csv' @~ AUTO_COMPRESS=FALSE")
    result = sql("COPY INTO people FROM @~ FILE_FORMAT=(TYPE=CSV SKIP_HEADER=1) ON_ERROR=SKIP_FILE")
    assert [(r[0], r[1], r[2], r[3], r[5]) for r in result.rows] == [("bad.csv", "LOAD_FAILED", 5, 0, 3),
                                                                     ("good.csv", "LOADED", 1, 1, 0)]
    assert table_rows("PEOPLE") == [(7, "g", 7.0)]


def test_files_already_loaded_are_skipped_unless_force(account):
    write(account / "people.csv", PEOPLE_CSV)
    sql(f"PUT file://{account}/people.csv @%people")
    copy = "COPY INTO people FROM @%people FILE_FORMAT=(TYPE=CSV SKIP_HEADER=1 FIELD_OPTIONALLY_ENCLOSED_BY='\"')"
    assert sql(copy).rows[0][1:4] == ("LOADED", 3, 3)
    assert sql(copy).rows == [("Copy executed with 0 files processed.",)]
    assert sql(copy + " FORCE = TRUE").rows[0][1:4] == ("LOADED", 3, 3)
    assert len(table_rows("PEOPLE")) == 6


def test_files_and_pattern_choose_what_is_loaded(account):
    for name in ("a.csv", "b.csv", "c.txt"):
        write(account / name, f"1,{name},1\n")
    sql(f"PUT 'file://{account}/*' @~/d AUTO_COMPRESS=FALSE")
    assert [r[0] for r in sql("COPY INTO people FROM @~/d FILES=('b.csv')").rows] == ["d/b.csv"]
    assert [r[0] for r in sql("COPY INTO people FROM @~ PATTERN='.*[.]txt'").rows] == ["d/c.txt"]
    with pytest.raises(UserError, match=r"Remote file '@~/d/zzz.csv' was not found"):
        sql("COPY INTO people FROM @~/d FILES=('zzz.csv')")


def test_json_lines_without_a_bad_line_all_load(account):
    write(account / "clean.jsonl", "".join(json.dumps({"prompt": f"p{i}", "completion": "c"}) + "\n" for i in range(3)))
    sql(f"PUT file://{account}/clean.jsonl @~")
    result = sql("COPY INTO examples FROM @~ FILE_FORMAT=(TYPE=JSON) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE")
    assert [r[:4] for r in result.rows] == [("clean.jsonl.gz", "LOADED", 3, 3)]
    assert len(table_rows("EXAMPLES")) == 3


def test_json_lines_load_by_column_name_and_report_bad_lines(account):
    lines = [json.dumps({"Prompt": "p1", "completion": "c1"}), "not json", json.dumps({"prompt": "p2", "extra": 1})]
    write(account / "examples.jsonl", "\n".join(lines) + "\n")
    sql(f"PUT file://{account}/examples.jsonl @~")
    result = sql("COPY INTO examples FROM @~ FILE_FORMAT=(TYPE=JSON) MATCH_BY_COLUMN_NAME=CASE_INSENSITIVE "
                 "ON_ERROR=CONTINUE")
    assert [r[:6] + r[7:8] for r in result.rows] == [("examples.jsonl.gz", "PARTIALLY_LOADED", 3, 2, 3, 1, 2)]
    assert table_rows("EXAMPLES") == [("p1", "c1"), ("p2", None)]


def test_json_into_several_columns_needs_match_by_column_name(account):
    write(account / "e.jsonl", '{"prompt": "p"}\n')
    sql(f"PUT file://{account}/e.jsonl @~")
    with pytest.raises(UserError, match="JSON file format can produce one and only one column"):
        sql("COPY INTO examples FROM @~ FILE_FORMAT=(TYPE=JSON)")


def test_remove_deletes_matching_files(account):
    for name in ("a.csv", "b.csv"):
        write(account / name, "1,a,1\n")
    sql(f"PUT 'file://{account}/*.csv' @~")
    assert sql("REMOVE @~/a").rows == [("a.csv.gz", "removed")]
    assert [r[0] for r in sql("LIST @~").rows] == ["b.csv.gz"]


def test_a_table_stage_needs_the_table(account):
    with pytest.raises(UserError, match=r"Table 'LOADDB.PUBLIC.NOPE' does not exist or not authorized"):
        sql("LIST @%nope")


def test_copy_into_a_missing_table_names_it(account):
    write(account / "a.csv", "1,a,1\n")
    sql(f"PUT file://{account}/a.csv @~")
    with pytest.raises(UserError, match=r"Table 'LOADDB.PUBLIC.NOPE' does not exist or not authorized"):
        sql("COPY INTO nope FROM @~")


def test_the_sql_command_can_put_and_copy(account, capsys):
    write(account / "people.csv", PEOPLE_CSV)
    call_command("sql", "--database", "loaddb", "-e",
                 f"PUT file://{account}/people.csv @~; COPY INTO people FROM @~ "
                 "FILE_FORMAT=(TYPE=CSV SKIP_HEADER=1 FIELD_OPTIONALLY_ENCLOSED_BY='\"')", "--format", "json")
    put_out, copy_out = capsys.readouterr().out.strip().split("\n")
    assert json.loads(put_out)["rows"][0][6] == "UPLOADED"
    assert json.loads(copy_out)["rows"][0][1:4] == ["LOADED", 3, 3]
    assert len(table_rows("PEOPLE")) == 3
    with pytest.raises(CommandError, match=r"^002003 \(02000\): SQL compilation error: Stage"):
        call_command("sql", "--database", "loaddb", "-e", "LIST @missing")
