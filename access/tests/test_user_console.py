"""The admin console's user pages go through the user service (access/users.py), as CREATE / ALTER /
DROP USER do: every add, change, new password and drop is in the access history as the console's, a
refusal by the service is shown and recorded and changes nothing, and the console and SQL agree on
DEFAULT_ROLE and DEFAULT_WAREHOUSE."""
from __future__ import annotations

import pytest
from django.contrib.auth import authenticate, get_user_model

from access import role_graph, users
from access.bootstrap import bootstrap
from access.models import AccessEvent, Grant, Role, UserProfile
from access.roles import default_warehouse
from errors import UserError
from sqlengine.executor import Executor
from tests.support.cortex import admin_session

User = get_user_model()
PASSWORD = "a-long-pass-phrase-1"


@pytest.fixture
def account(db, settings, tmp_path):
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password="pw-for-tests", demo=False)
    sql("CREATE ROLE analyst")


@pytest.fixture
def console(account, client):
    """A console signed in as a user holding USERADMIN."""
    ua = User.objects.create_user("ua", password="pw-for-tests")
    Role.objects.get(name="USERADMIN").users.add(ua)
    client.force_login(ua)
    return client


def sql(text: str):
    return Executor(admin_session()).execute(text)[-1]


def add(client, username: str, **profile):
    return client.post("/admin/auth/user/add/", {
        "username": username, "password1": PASSWORD, "password2": PASSWORD, "usable_password": "true",
        "profile-TOTAL_FORMS": "1", "profile-INITIAL_FORMS": "0", "profile-MIN_NUM_FORMS": "0",
        "profile-MAX_NUM_FORMS": "1", "profile-0-default_role": profile.get("default_role", "PUBLIC"),
        "profile-0-default_warehouse": profile.get("default_warehouse", ""),
        "profile-0-comment": profile.get("comment", "")}, follow=True)


def change(client, user, **fields):
    profile = UserProfile.objects.get(user=user)
    data = {"username": user.username, "first_name": user.first_name, "email": user.email,
            "is_active": "on" if user.is_active else "",
            "profile-TOTAL_FORMS": "1", "profile-INITIAL_FORMS": "1", "profile-MIN_NUM_FORMS": "0",
            "profile-MAX_NUM_FORMS": "1", "profile-0-id": str(profile.pk), "profile-0-user": str(user.pk),
            "profile-0-default_role": profile.default_role or "PUBLIC",
            "profile-0-default_warehouse": profile.default_warehouse, "profile-0-comment": profile.comment}
    data.update(fields)
    return client.post(f"/admin/auth/user/{user.pk}/change/", {k: v for k, v in data.items() if v != ""},
                       follow=True)


def events(name: str) -> list[tuple[str, str, str, str]]:
    return sorted(AccessEvent.objects.filter(object_type="USER", object_name=name)
                  .values_list("action", "outcome", "role", "entry_point"))


def test_adding_a_user_is_create_user_and_is_recorded(console):
    assert console.get("/admin/auth/user/add/").status_code == 200
    response = add(console, "carol", default_role="ANALYST", comment="from the console")
    assert response.status_code == 200 and "carol" in response.content.decode()
    carol = User.objects.get(username="carol")
    assert authenticate(username="carol", password=PASSWORD) == carol
    assert carol.profile.default_role == "ANALYST" and carol.profile.comment == "from the console"
    # As CREATE USER does: the creating role owns the user.
    assert Grant.objects.filter(privilege="OWNERSHIP", object_type="USER", object_name="carol",
                                grantee_name="USERADMIN").exists()
    assert events("carol") == [("CREATE USER", "SUCCESS", "USERADMIN", "admin")]


def test_changing_a_user_is_alter_user_and_is_recorded(console):
    sql("CREATE USER dora PASSWORD = 'long enough'")
    dora = User.objects.get(username="dora")
    response = change(console, dora, first_name="Dora D", email="dora@example.com", is_active="",
                      **{"profile-0-default_warehouse": "COMPUTE_WH", "profile-0-comment": "moved"})
    assert response.status_code == 200, response.content.decode()[:3000]
    dora.refresh_from_db()
    assert (dora.first_name, dora.email, dora.is_active) == ("Dora D", "dora@example.com", False)
    assert (dora.profile.default_warehouse, dora.profile.comment) == ("COMPUTE_WH", "moved")
    assert events("dora") == [("ALTER USER", "SUCCESS", "USERADMIN", "admin"),
                              ("CREATE USER", "SUCCESS", "ACCOUNTADMIN", "cli")]

    change(console, dora, username="dorothy", is_active="")
    assert User.objects.get(pk=dora.pk).username == "dorothy"
    assert [e[:2] for e in events("dora")].count(("ALTER USER", "SUCCESS")) == 2


def test_a_new_password_is_alter_user_and_is_recorded(console):
    sql("CREATE USER eve PASSWORD = 'long enough'")
    eve = User.objects.get(username="eve")
    assert console.get(f"/admin/auth/user/{eve.pk}/password/").status_code == 200
    response = console.post(f"/admin/auth/user/{eve.pk}/password/",
                            {"password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"}, follow=True)
    assert "Password changed successfully." in response.content.decode()
    assert authenticate(username="eve", password=PASSWORD) is not None
    assert ("ALTER USER", "SUCCESS", "USERADMIN", "admin") in events("eve")


def test_the_console_refuses_a_password_the_service_refuses(console, settings):
    settings.AUTH_PASSWORD_VALIDATORS = []  # only the service's rule is left to refuse it
    sql("CREATE USER fred PASSWORD = 'long enough'")
    fred = User.objects.get(username="fred")
    response = console.post(f"/admin/auth/user/{fred.pk}/password/",
                            {"password1": "short", "password2": "short", "usable_password": "true"})
    assert "Password is too short: a password needs at least 8 characters." in response.content.decode()
    assert authenticate(username="fred", password="long enough") is not None


def test_what_the_service_refuses_the_console_refuses_and_records(console, monkeypatch):
    """The console's pages let a USERADMIN in; the service checks again when it acts. Here it finds the
    console's role without USERADMIN (as once the role is revoked), and refuses as it refuses SQL."""
    sql("CREATE USER gus PASSWORD = 'long enough'")
    gus = User.objects.get(username="gus")
    monkeypatch.setattr(users, "effective_roles", lambda role: role_graph.effective_roles("SYSADMIN"))

    page = add(console, "hana").content.decode()
    assert "Insufficient privileges to operate on account &#x27;STUDIO&#x27;" in page
    assert not User.objects.filter(username="hana").exists()
    assert events("hana") == [("CREATE USER", "REFUSED", "USERADMIN", "admin")]

    page = change(console, gus, email="gus@example.com").content.decode()
    assert "Insufficient privileges to operate on user &#x27;GUS&#x27;" in page
    page = console.post(f"/admin/auth/user/{gus.pk}/password/",
                        {"password1": PASSWORD, "password2": PASSWORD, "usable_password": "true"},
                        follow=True).content.decode()
    assert "Insufficient privileges to operate on user &#x27;GUS&#x27;" in page
    page = console.post(f"/admin/auth/user/{gus.pk}/delete/", {"post": "yes"}, follow=True).content.decode()
    assert "Insufficient privileges to operate on user &#x27;GUS&#x27;" in page

    gus.refresh_from_db()
    assert gus.email == "" and authenticate(username="gus", password="long enough") == gus
    assert events("gus") == [("ALTER USER", "REFUSED", "USERADMIN", "admin"),
                             ("ALTER USER", "REFUSED", "USERADMIN", "admin"),
                             ("CREATE USER", "SUCCESS", "ACCOUNTADMIN", "cli"),
                             ("DROP USER", "REFUSED", "USERADMIN", "admin")]


def test_the_console_and_create_user_agree_on_default_warehouse(console):
    """Snowflake's CREATE USER keeps DEFAULT_WAREHOUSE without checking that the warehouse exists; a
    session starts in it once it does, and in the first usable warehouse until then. The console
    keeps it the same way."""
    sql("CREATE USER ida PASSWORD = 'long enough' DEFAULT_WAREHOUSE = later_wh")
    assert add(console, "jack", default_warehouse="LATER_WH").status_code == 200
    ida, jack = User.objects.get(username="ida"), User.objects.get(username="jack")
    assert ida.profile.default_warehouse == jack.profile.default_warehouse == "LATER_WH"
    assert default_warehouse(ida) == default_warehouse(jack) == "COMPUTE_WH"


def test_the_console_and_create_user_agree_on_default_role(console):
    with pytest.raises(UserError) as error:
        sql("CREATE USER kim PASSWORD = 'long enough' DEFAULT_ROLE = \"NOSUCHROLE\"")
    page = add(console, "kim", default_role="NOSUCHROLE").content.decode()
    assert "Role &#x27;NOSUCHROLE&#x27; does not exist or not authorized." in page
    assert "Role 'NOSUCHROLE' does not exist or not authorized." in error.value.message
    assert not User.objects.filter(username="kim").exists()
