"""The header's role and warehouse menus, password change and the API tokens page."""
from __future__ import annotations

import json
import re
import threading

import pytest
from django.contrib.auth import authenticate, get_user_model
from django.test import Client

from access.bootstrap import bootstrap
from access.models import ApiToken, Role
from access.web import ROLE_KEY, WAREHOUSE_KEY, session_for
from sqlengine.executor import Executor
from tests.support.cortex import admin_session
from warehouses.models import Warehouse

User = get_user_model()
PASSWORD = "ann-password-1"


def setup_account(settings, tmp_path):
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password="pw-for-tests", demo=False)
    Warehouse.objects.create(name="TRAIN_WH")
    Warehouse.objects.create(name="PRIVATE_WH")  # no grant to any of ann's roles
    admin = admin_session()
    for statement in ("CREATE ROLE analyst", "CREATE ROLE junior", "CREATE ROLE unrelated",
                      "GRANT ROLE junior TO ROLE analyst", "GRANT USAGE ON WAREHOUSE train_wh TO ROLE junior",
                      f"CREATE USER ann PASSWORD = '{PASSWORD}' DEFAULT_ROLE = analyst",
                      "GRANT ROLE analyst TO USER ann"):
        Executor(admin).execute(statement)
    return User.objects.get(username="ann")


@pytest.fixture
def ann(db, settings, tmp_path):
    return setup_account(settings, tmp_path)


@pytest.fixture
def ann_client(ann, client):
    assert client.login(username="ann", password=PASSWORD)
    return client


def menu(page: str, name: str) -> tuple[list[str], str | None]:
    """(options, selected) of the header's <select name=…>."""
    block = re.search(rf'<select name="{name}".*?</select>', page, re.S).group(0)
    options = re.findall(r'<option value="([^"]*)"', block)
    selected = re.search(r'<option value="([^"]*)" selected>', block)
    return options, selected.group(1) if selected else None


def test_the_role_menu_offers_only_the_roles_the_user_may_use(ann_client):
    page = ann_client.get("/").content.decode()
    roles, current = menu(page, "role")
    assert roles == ["ANALYST", "JUNIOR", "PUBLIC"] and current == "ANALYST"  # DEFAULT_ROLE, and what it inherits
    assert "UNRELATED" not in page and "ACCOUNTADMIN" not in roles
    warehouses, current_wh = menu(page, "warehouse")
    # SHOW WAREHOUSES' list for the role: COMPUTE_WH through PUBLIC, TRAIN_WH through JUNIOR, never PRIVATE_WH.
    assert warehouses == ["COMPUTE_WH", "TRAIN_WH"] and current_wh == "COMPUTE_WH"
    assert "PRIVATE_WH" not in page
    assert 'action="/session/role"' in page and 'href="/accounts/password/"' in page and 'href="/account/tokens/"' in page


def test_the_admin_menu_offers_every_system_role(db, settings, tmp_path, client):
    setup_account(settings, tmp_path)
    client.login(username="admin", password="pw-for-tests")
    roles, current = menu(client.get("/").content.decode(), "role")
    assert current == "ACCOUNTADMIN"
    assert {"ACCOUNTADMIN", "SECURITYADMIN", "SYSADMIN", "USERADMIN", "PUBLIC"} <= set(roles)


def test_switching_role_changes_the_session_and_what_the_pages_start_with(ann_client, ann):
    response = ann_client.post("/session/role", {"role": "JUNIOR", "next": "/worksheets/"})
    assert response.status_code == 302 and response["Location"] == "/worksheets/"
    assert ann_client.session[ROLE_KEY] == "JUNIOR"
    page = ann_client.get("/worksheets/").content.decode()
    assert menu(page, "role")[1] == "JUNIOR" and "Role <strong>JUNIOR</strong>" in page
    ann_client.post("/session/warehouse", {"warehouse": "TRAIN_WH"})
    assert "Warehouse <strong>TRAIN_WH</strong>" in ann_client.get("/worksheets/").content.decode()


def test_session_for_falls_back_to_the_default_role_once_a_role_is_revoked(ann_client, ann, rf):
    ann_client.post("/session/role", {"role": "JUNIOR"})
    request = rf.get("/")
    request.user, request.session = ann, ann_client.session
    assert (session_for(request).role, session_for(request).warehouse, session_for(request).entry_point) == \
        ("JUNIOR", "COMPUTE_WH", "web")
    Executor(admin_session()).execute("REVOKE ROLE analyst FROM USER ann")
    assert session_for(request).role == "PUBLIC"  # neither JUNIOR nor the default ANALYST is held now


def test_switching_to_a_role_not_granted_is_refused_as_use_role_refuses_it(ann_client):
    response = ann_client.post("/session/role", {"role": "UNRELATED"})
    assert response.status_code == 403
    assert ("Requested role &#x27;UNRELATED&#x27; is not assigned to the executing user. Specify another role to "
            "activate.") in response.content.decode()
    assert ROLE_KEY not in ann_client.session
    assert ann_client.post("/session/role", {"role": "ACCOUNTADMIN"}).status_code == 403
    missing = ann_client.post("/session/role", {"role": "NOSUCH"})
    assert "Role &#x27;NOSUCH&#x27; does not exist or not authorized." in missing.content.decode()
    assert ann_client.get("/session/role").status_code == 405


def test_a_warehouse_the_role_cannot_see_reads_like_one_that_does_not_exist(ann_client):
    hidden = ann_client.post("/session/warehouse", {"warehouse": "PRIVATE_WH"})
    missing = ann_client.post("/session/warehouse", {"warehouse": "NOPE_WH"})
    assert hidden.status_code == missing.status_code == 400
    assert ("Object does not exist, or operation cannot be performed: warehouse &#x27;PRIVATE_WH&#x27;."
            in hidden.content.decode())
    assert ("Object does not exist, or operation cannot be performed: warehouse &#x27;NOPE_WH&#x27;."
            in missing.content.decode())
    assert WAREHOUSE_KEY not in ann_client.session


def test_a_warehouse_the_next_role_cannot_use_falls_back_to_its_default(ann_client):
    ann_client.post("/session/warehouse", {"warehouse": "TRAIN_WH"})
    assert menu(ann_client.get("/").content.decode(), "warehouse")[1] == "TRAIN_WH"
    ann_client.post("/session/role", {"role": "PUBLIC"})  # PUBLIC holds USAGE on COMPUTE_WH only
    warehouses, current = menu(ann_client.get("/").content.decode(), "warehouse")
    assert warehouses == ["COMPUTE_WH"] and current == "COMPUTE_WH"


def test_a_switch_never_redirects_to_another_site(ann_client):
    response = ann_client.post("/session/role", {"role": "PUBLIC", "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_password_change_replaces_the_old_password(ann_client, ann):
    page = ann_client.get("/accounts/password/").content.decode()
    assert 'name="old_password"' in page and "csrfmiddlewaretoken" in page
    wrong = ann_client.post("/accounts/password/", {"old_password": "not it", "new_password1": "a-brand-new-pass",
                                                    "new_password2": "a-brand-new-pass"})
    assert wrong.status_code == 200 and "Your old password was entered incorrectly" in wrong.content.decode()
    response = ann_client.post("/accounts/password/", {"old_password": PASSWORD, "new_password1": "a-brand-new-pass",
                                                       "new_password2": "a-brand-new-pass"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password/done/"
    assert "Password changed" in ann_client.get("/accounts/password/done/").content.decode()  # still signed in
    assert authenticate(username="ann", password=PASSWORD) is None
    assert authenticate(username="ann", password="a-brand-new-pass") == ann


def test_logout_is_a_post(ann_client):
    assert ann_client.get("/accounts/logout/").status_code == 405
    assert ann_client.post("/accounts/logout/").status_code == 302
    assert ann_client.get("/").status_code == 302


def test_every_form_needs_its_csrf_token(ann):
    client = Client(enforce_csrf_checks=True)
    client.login(username="ann", password=PASSWORD)
    assert client.post("/session/role", {"role": "JUNIOR"}).status_code == 403
    assert client.post("/account/tokens/", {"name": "ci"}).status_code == 403
    assert not ApiToken.objects.exists()
    page = client.get("/account/tokens/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    created = client.post("/account/tokens/", {"name": "ci", "csrfmiddlewaretoken": token})
    assert created.status_code == 200 and ApiToken.objects.filter(name="ci").exists()
    for url in ("/account/tokens/", "/accounts/password/"):
        page = client.get(url).content.decode()
        # Every POST form (role, warehouse, logout, create, revoke, password) carries the token.
        assert page.count('method="post"') == page.count('name="csrfmiddlewaretoken"') >= 4


@pytest.mark.parametrize("url", ["/", "/worksheets/", "/account/tokens/", "/accounts/password/",
                                 "/accounts/password/done/"])
def test_pages_redirect_anonymous_users_to_login(db, client, url):
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_token_only_lists_its_owners_tokens_and_others_cannot_revoke_it(ann_client, ann):
    other = User.objects.create_user("zed", password="zed-password")
    from access.tokens import create_token
    theirs, _ = create_token(other, "zed's token")
    page = ann_client.get("/account/tokens/").content.decode()
    assert "zed&#x27;s token" not in page and "No tokens yet." in page
    assert ann_client.post(f"/account/tokens/{theirs.pk}/revoke").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_on is None
    assert ann_client.post("/account/tokens/", {"name": ""}).status_code == 400


@pytest.fixture
def committed_account(transactional_db, settings, tmp_path):
    """Committed rows: SQL API statements run in background threads with their own connections."""
    user = setup_account(settings, tmp_path)
    yield user
    for thread in threading.enumerate():
        if thread.name.startswith("sqlapi-"):
            thread.join(60)


def api(secret: str):
    return Client().post("/api/v2/statements", json.dumps({"statement": "SELECT CURRENT_ROLE() AS r"}),
                         content_type="application/json", headers={"Authorization": f"Bearer {secret}"})


def test_a_token_made_on_the_page_signs_in_to_the_sql_api_until_revoked(committed_account, client):
    client.login(username="ann", password=PASSWORD)
    response = client.post("/account/tokens/", {"name": "laptop"})
    page = response.content.decode()
    secret = re.search(r'<code id="token-secret">(sft_[^<]+)</code>', page).group(1)
    assert "shown once" in page
    token = ApiToken.objects.get(user=committed_account, name="laptop")
    assert secret.startswith(token.prefix) and token.token_hash not in page

    answer = api(secret)
    assert answer.status_code == 200, answer.content
    assert answer.json()["data"] == [["ANALYST"]]  # the SQL API starts in the user's DEFAULT_ROLE
    listing = client.get("/account/tokens/").content.decode()
    assert secret not in listing and f"{token.prefix}…" in listing and "never" not in listing  # last used is set

    revoked = client.post(f"/account/tokens/{token.pk}/revoke")
    assert revoked.status_code == 302 and revoked["Location"] == "/account/tokens/"
    token.refresh_from_db()
    assert token.revoked_on is not None
    assert api(secret).status_code == 401
    assert Role.objects.filter(name="ANALYST", users=committed_account).exists()
