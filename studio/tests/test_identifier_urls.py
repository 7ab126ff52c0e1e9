"""Every page that links a database, schema, table or model by its name works for any name Snowflake
allows in double quotes: the page renders, shows the name HTML-escaped (no markup of the name's own
reaches the page), and following its link reaches that object, not a 404, a 500 or another object.
Through the web app served over real HTTP, since it is the server's percent-decoding of the path that
used to turn "a/b" into two path segments (web/converters.py)."""
from __future__ import annotations

import html
import re
import uuid

import httpx2
import pytest
from django.utils.html import escape

from access.bootstrap import bootstrap
from access.models import Grant
from catalog import accountdata
from catalog.identifiers import QualifiedName, quote
from jobs.models import FineTuneJob
from models_registry.models import FineTunedModel
from tests.support.cortex import admin_session, sql_literal, sql_value
from tests.support.web import serve_web_app

SUFFIX = uuid.uuid4().hex[:6]
DATABASE = f'd/b "<i>{SUFFIX}'
SCHEMA = "s.c ?#%"
# Quotes, markup, slashes, dot segments, the converter's own escape, percent escapes, query and fragment
# characters, a backslash (which browsers read as a slash), unicode and spaces.
TABLES = ['q"<b>x</b>\'', "a/b", ".", "..", "~7E", "100% ?#&=+;", "ünï ¢ødé 表", "%2e%2e", "back\\slash", " lead "]
# Two names that differ only in case, so a link that loses the case reaches the wrong model.
MODELS = ['m/<b>x</b>"', "..", "Aa", "aA"]
PASSWORD = "a long identifier password"
MARKUP = "<b>x</b>"


def qualified(name: str) -> str:
    return str(QualifiedName(DATABASE, SCHEMA, name))


def csrf(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def hrefs(page: str, text: str) -> list[str]:
    """The targets of the links whose text is `<code>text</code>` (escaped as the page escapes it)."""
    pattern = r'<a href="([^"]+)"[^>]*>\s*<code>' + re.escape(escape(text)) + r"</code>\s*</a>"
    return [html.unescape(href) for href in re.findall(pattern, page)]


@pytest.fixture(scope="module")
def odd_names(live_db, tiny_llama_dir):
    """A database, schema, tables and models with those names (committed: the web app answers on its own
    thread), a job that made one of the models, and an administrator and a role to grant to."""
    from conftest import register_tiny_llama

    bootstrap(password="admin-test-password", demo=False)
    register_tiny_llama()
    admin = admin_session()
    sql_value(admin, f"CREATE DATABASE {quote(DATABASE)}")
    sql_value(admin, f"CREATE SCHEMA {quote(DATABASE)}.{quote(SCHEMA)}")
    for table in TABLES:
        name = qualified(table)
        sql_value(admin, f"CREATE TABLE {name} (which VARCHAR)")
        sql_value(admin, f"INSERT INTO {name} VALUES ({sql_literal(table)})")
    schema = accountdata.get_schema(DATABASE, SCHEMA)
    job = FineTuneJob.objects.create(status="SUCCESS", base_model="tiny-llama", database=DATABASE, schema=SCHEMA,
                                     requested_name=MODELS[0], final_model_name=qualified(MODELS[0]),
                                     training_data=f"SELECT which FROM {qualified(TABLES[0])}", role="ACCOUNTADMIN")
    for name in MODELS:
        FineTunedModel.objects.create(schema=schema, name=name, base_model="tiny-llama", owner_role="ACCOUNTADMIN",
                                      job=job if name == MODELS[0] else None, adapter_path=f"/nonexistent/{name}")
    user = f"ids_{SUFFIX}"
    for statement in (f"CREATE USER {user} PASSWORD = '{PASSWORD}' DEFAULT_ROLE = ACCOUNTADMIN",
                      f"GRANT ROLE ACCOUNTADMIN TO USER {user}", f"CREATE ROLE ids_grantee_{SUFFIX}"):
        sql_value(admin, statement)
    return {"user": user, "job": job, "grantee": f"IDS_GRANTEE_{SUFFIX}".upper()}


@pytest.fixture(scope="module")
def browser(odd_names):
    """An HTTP client signed in through the login form of the web app served over HTTP."""
    with serve_web_app() as url, httpx2.Client(base_url=url, timeout=60) as client:
        login = client.get("/accounts/login/")
        signed_in = client.post("/accounts/login/", data={"username": odd_names["user"], "password": PASSWORD,
                                                          "csrfmiddlewaretoken": csrf(login.text)})
        assert signed_in.status_code == 302, signed_in.text
        yield client


def test_the_data_page_links_every_table_and_each_link_previews_that_table(browser):
    page = browser.get("/data/")

    assert page.status_code == 200
    assert MARKUP not in page.text and escape(MARKUP) in page.text
    for table in TABLES:
        links = hrefs(page.text, table)
        assert len(links) == 1, (table, links)
        preview = browser.get(links[0])
        assert preview.status_code == 200, (table, links[0])
        assert f"<h2><code>{escape(qualified(table))}</code></h2>" in preview.text
        assert f"<td>{escape(table)}</td>" in preview.text  # the one row of that table, not another's
        assert MARKUP not in preview.text
        # htmx asks the same URL for the preview alone.
        fragment = browser.get(links[0], headers={"HX-Request": "true"})
        assert fragment.status_code == 200 and "<html" not in fragment.text
        assert f"<h2><code>{escape(qualified(table))}</code></h2>" in fragment.text


def test_a_malformed_escape_in_a_table_url_is_a_404_not_another_table(browser):
    assert browser.get("/data/tables/A~ZZ/PUBLIC/T/").status_code == 404
    assert browser.get("/data/tables/A~/PUBLIC/T/").status_code == 404


def test_the_models_list_links_every_model_and_its_page_links_the_playground_with_it(browser):
    listing = browser.get("/models/")

    assert listing.status_code == 200
    assert MARKUP not in listing.text
    for name in MODELS:
        links = hrefs(listing.text, name)
        assert len(links) == 1, (name, links)
        page = browser.get(links[0])
        assert page.status_code == 200, (name, links[0])
        assert f"<h1><code>{escape(qualified(name))}</code></h1>" in page.text
        assert MARKUP not in page.text
        playground_link = html.unescape(re.search(r'<a class="button" href="([^"]+)">Open in playground', page.text)[1])
        playground = browser.get(playground_link)
        assert playground.status_code == 200
        picker = re.search(r'<select name="model" id="pg-model".*?</select>', playground.text, re.S)[0]
        chosen = re.findall(r'<option value="([^"]*)" selected>', picker)
        assert [html.unescape(v) for v in chosen] == [qualified(name)]  # "Aa" opens Aa, never aA
        assert MARKUP not in playground.text


def test_the_grant_form_on_a_model_page_grants_on_that_model(browser, odd_names):
    name = MODELS[0]
    page = browser.get(hrefs(browser.get("/models/").text, name)[0])
    action = html.unescape(re.search(r'<form method="post" action="([^"]+/grant)"', page.text)[1])

    granted = browser.post(action, data={"role": odd_names["grantee"], "csrfmiddlewaretoken": csrf(page.text)},
                           headers={"HX-Request": "true"})

    assert granted.status_code == 200, granted.text
    assert Grant.objects.filter(object_type="MODEL", object_name=qualified(name), grantee_name=odd_names["grantee"],
                                privilege="USAGE").exists()
    assert odd_names["grantee"] in granted.text and MARKUP not in granted.text


def test_the_jobs_list_and_a_job_page_show_the_model_escaped_and_link_its_page(browser, odd_names):
    jobs = browser.get("/jobs/")
    assert jobs.status_code == 200
    assert f"<code>{escape(qualified(MODELS[0]))}</code>" in jobs.text and MARKUP not in jobs.text

    job = browser.get(f"/jobs/{odd_names['job'].pk}/")
    assert job.status_code == 200 and MARKUP not in job.text
    model_page = browser.get(hrefs(job.text, qualified(MODELS[0]))[0])
    assert f"<h1><code>{escape(qualified(MODELS[0]))}</code></h1>" in model_page.text


def test_the_admin_consoles_models_list_links_each_models_page(browser):
    changelist = browser.get("/admin/models_registry/finetunedmodel/", params={"q": SUFFIX})
    assert changelist.status_code == 200 and MARKUP not in changelist.text
    links = [html.unescape(h) for h in re.findall(r'<a href="([^"]+)">Model page</a>', changelist.text)]
    reached = set()
    for link in links:
        page = browser.get(link)
        assert page.status_code == 200, link
        reached.add(html.unescape(re.search(r"<h1><code>(.*?)</code></h1>", page.text, re.S)[1]))
    assert reached == {qualified(name) for name in MODELS}


def test_the_worksheet_shows_the_names_it_lists_escaped(browser):
    sheet = browser.get("/worksheets/")
    answer = browser.post("/worksheets/", headers={"HX-Request": "true"}, data={
        "sql": f"SHOW TABLES IN SCHEMA {quote(DATABASE)}.{quote(SCHEMA)}", "csrfmiddlewaretoken": csrf(sheet.text)})

    assert answer.status_code == 200
    assert MARKUP not in answer.text
    assert escape(TABLES[0]) in answer.text and escape(DATABASE) in answer.text
