import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from catalog.models import BaseModel
from sqlengine.executor import Executor
from tests.support.cortex import admin_session


def test_basemodels_list_says_which_models_are_installed(db, smollm2_dir, capsys):
    call_command("basemodels", "list")
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:] if line and line[0].isalnum()
             and not line.startswith("Not")}
    assert lines["smollm2-135m"] == "yes"
    assert lines["mistral-7b"] == "no"
    assert "Install one with: python manage.py basemodels install NAME" in out


def test_the_catalog_has_the_user_guides_limits(db):
    llama31 = BaseModel.objects.get(name="llama3.1-70b")
    assert (llama31.context_window, llama31.max_prompt_tokens, llama31.max_completion_tokens) == (16384, 12288, 4096)
    assert BaseModel.objects.get(name="mixtral-8x7b").training_data_limit_bytes == 250 * 1024 * 1024
    assert BaseModel.objects.get(name="llama3-8b").training_data_limit_bytes == 1024 ** 3
    assert set(BaseModel.objects.values_list("name", flat=True)) >= {
        "llama3-8b", "llama3-70b", "llama3.1-8b", "llama3.1-70b", "mistral-7b", "mixtral-8x7b", "smollm2-135m"}


def test_basemodels_import_catalogs_a_local_checkpoint(db, tiny_llama_dir, capsys):
    call_command("basemodels", "import", "my-local", "--from", str(tiny_llama_dir), "--context-window", "1024")
    imported = BaseModel.objects.get(name="my-local")
    assert imported.is_installed and imported.context_window == 1024
    assert (imported.weights_dir / "tokenizer.json").exists()


def test_basemodels_install_refuses_an_unknown_name(db):
    with pytest.raises(CommandError, match="Unknown base model 'gpt-9'"):
        call_command("basemodels", "install", "gpt-9")


def test_load_table_creates_a_queryable_table_from_jsonl_and_csv(db, tmp_path, capsys):
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text("".join(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}) + "\n" for i in range(5)))
    call_command("load_table", "loaddb.public.examples", str(jsonl), "--create", "--replace")
    assert "Loaded 5 rows into LOADDB.PUBLIC.EXAMPLES" in capsys.readouterr().out
    csv = tmp_path / "more.csv"
    csv.write_text("prompt,completion\nhello,world\n")
    call_command("load_table", "loaddb.staging.more", str(csv), "--create", "--replace")
    admin = Executor(admin_session(database="LOADDB", schema="PUBLIC"))
    assert admin.execute("SELECT completion FROM loaddb.staging.more")[-1].rows == [("world",)]
    assert admin.execute("SELECT count(*) AS n FROM examples")[-1].rows == [(5,)]


def test_load_table_refuses_to_overwrite_without_replace(db, tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("prompt,completion\na,b\n")
    call_command("load_table", "loaddb.public.t", str(csv), "--create", "--replace")
    with pytest.raises(CommandError, match="already exists. Use --replace"):
        call_command("load_table", "loaddb.public.t", str(csv))


def test_load_table_names_an_unsupported_file_type(db, tmp_path):
    source = tmp_path / "t.xlsx"
    source.write_text("x")
    with pytest.raises(CommandError, match="supported file types are .csv, .json, .jsonl, .ndjson, .parquet"):
        call_command("load_table", "loaddb.public.t", str(source), "--create")
