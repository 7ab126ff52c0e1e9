"""The admin console: entered by role (not is_staff), grants and roles through the access service,
read-only history and jobs with a Cancel action."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from access import grants, history
from access.bootstrap import bootstrap
from access.models import AccessEvent, ApiToken, Grant, Role
from access.tokens import create_token
from catalog import accountdata
from jobs.models import FineTuneJob
from tests.support.cortex import admin_session

User = get_user_model()
CONSOLE_PAGES = ["/admin/", "/admin/access/grant/", "/admin/access/grant/add/", "/admin/access/role/",
                 "/admin/auth/user/", "/admin/access/accessevent/", "/admin/access/apitoken/",
                 "/admin/jobs/finetunejob/", "/admin/catalog/basemodel/", "/admin/warehouses/warehouse/",
                 "/admin/inference/inferenceserver/", "/admin/models_registry/finetunedmodel/",
                 "/admin/sqlapi/statement/"]


def _user(name: str, *roles: str):
    user = User.objects.create_user(name, password="pw-for-tests")
    for role in roles:
        Role.objects.get(name=role).users.add(user)
    return user


@pytest.fixture
def account(db, settings, tmp_path):
    settings.DUCKDB_DIR = tmp_path / "duckdb"
    bootstrap(password="pw-for-tests", demo=False)
    accountdata.create_database("SALES")
    grants.create_role(admin_session(), "ANALYST")


@pytest.fixture
def admin_client(account, client):
    client.force_login(User.objects.get(username="admin"))
    return client


@pytest.fixture
def security_client(account, client):
    client.force_login(_user("sec", "SECURITYADMIN"))
    return client


@pytest.fixture
def useradmin_client(account, client):
    client.force_login(_user("ua", "USERADMIN"))
    return client


# Who may enter --------------------------------------------------------------------------------

@pytest.mark.parametrize("roles", [(), ("SYSADMIN",)])
def test_users_without_an_admin_role_never_reach_the_console(account, client, roles):
    client.force_login(_user("ordinary", *roles))
    for page in CONSOLE_PAGES:
        response = client.get(page)
        assert response.status_code in (302, 403), page
        if response.status_code == 302:
            assert response["Location"].startswith("/admin/login/"), page
    login_page = client.get("/admin/", follow=True).content.decode()
    assert "You are authenticated as ordinary, but are not authorized to access this page." in login_page
    assert "Site administration" not in login_page and "/admin/access/grant/" not in login_page


def test_the_login_form_refuses_an_ordinary_user_and_admits_a_security_admin(account, client):
    _user("ordinary")
    refused = client.post("/admin/login/?next=/admin/", {"username": "ordinary", "password": "pw-for-tests"})
    assert refused.status_code == 200
    assert "USERADMIN, SECURITYADMIN or ACCOUNTADMIN" in refused.content.decode()
    assert client.get("/admin/").status_code == 302

    security = _user("sec", "SECURITYADMIN")
    assert not security.is_staff  # roles decide, not Django's flag
    admitted = client.post("/admin/login/?next=/admin/", {"username": "sec", "password": "pw-for-tests"})
    assert admitted.status_code == 302 and admitted["Location"] == "/admin/"
    page = client.get("/admin/").content.decode()
    assert "Fine-tuning Studio administration" in page and "SECURITYADMIN" in page


def test_a_role_inherited_through_a_custom_role_admits_too(account, client):
    grants.grant_role(admin_session(), "ROLE", "SECURITYADMIN", "ROLE", "ANALYST")
    client.force_login(_user("ann", "ANALYST"))
    assert client.get("/admin/access/grant/").status_code == 200


def test_the_console_uses_the_studio_colours(security_client):
    page = security_client.get("/admin/").content.decode()
    assert "css/admin.css" in page


# Grants ---------------------------------------------------------------------------------------

def test_a_security_admin_sees_the_grants(security_client):
    grants.grant(admin_session(), "USAGE", "DATABASE", "SALES", "ROLE", "ANALYST")
    page = security_client.get("/admin/access/grant/?object_type__exact=DATABASE").content.decode()
    assert "SALES" in page and "ANALYST" in page
    assert "Revoke selected grants" in page and "Delete selected" not in page


def test_a_grant_added_through_the_console_is_stored_by_the_service(security_client):
    response = security_client.post("/admin/access/grant/add/", {
        "privilege": "USAGE", "object_type": "DATABASE", "object_name": "sales", "grantee_type": "ROLE",
        "grantee_name": "analyst", "grant_option": "on"}, follow=True)
    assert response.status_code == 200
    assert "Granted USAGE on DATABASE SALES to ROLE analyst." in response.content.decode()
    row = Grant.objects.get(privilege="USAGE", object_type="DATABASE", object_name="SALES", grantee_name="ANALYST")
    assert row.grant_option and row.granted_by == "SECURITYADMIN"


def test_granting_a_role_to_a_user_through_the_console(security_client):
    bob = _user("bob")
    response = security_client.post("/admin/access/grant/add/", {
        "object_type": "ROLE", "object_name": "ANALYST", "grantee_type": "USER", "grantee_name": "bob"})
    assert response.status_code == 302
    assert Role.objects.get(name="ANALYST").users.filter(pk=bob.pk).exists()


def test_a_grant_the_service_refuses_shows_its_message_and_stores_nothing(security_client):
    before = Grant.objects.count()
    response = security_client.post("/admin/access/grant/add/", {
        "privilege": "SELECT", "object_type": "TABLE", "object_name": "SALES.PUBLIC.NOPE", "grantee_type": "ROLE",
        "grantee_name": "ANALYST"})
    assert response.status_code == 400
    assert "Table &#x27;SALES.PUBLIC.NOPE&#x27; does not exist or not authorized." in response.content.decode()
    assert Grant.objects.count() == before


def test_a_role_cycle_is_refused_with_the_services_message(security_client):
    grants.grant_role(admin_session(), "ROLE", "ANALYST", "ROLE", "SYSADMIN")
    response = security_client.post("/admin/access/grant/add/", {
        "object_type": "ROLE", "object_name": "SYSADMIN", "grantee_type": "ROLE", "grantee_name": "ANALYST"})
    assert response.status_code == 400
    assert ("Granting role &#x27;SYSADMIN&#x27; to role &#x27;ANALYST&#x27; would create a cycle"
            in response.content.decode())


def test_a_privilege_is_required_unless_a_role_is_granted(security_client):
    response = security_client.post("/admin/access/grant/add/", {
        "object_type": "DATABASE", "object_name": "SALES", "grantee_type": "ROLE", "grantee_name": "ANALYST"})
    assert response.status_code == 400 and "Choose the privilege to grant on the DATABASE." in response.content.decode()


def test_revoking_through_the_console_deletes_the_grant(security_client):
    (row,) = grants.grant(admin_session(), "USAGE", "DATABASE", "SALES", "ROLE", "ANALYST")
    confirm = security_client.get(f"/admin/access/grant/{row.pk}/delete/")
    assert confirm.status_code == 200
    response = security_client.post(f"/admin/access/grant/{row.pk}/delete/", {"post": "yes"}, follow=True)
    assert "Revoked USAGE ON DATABASE SALES TO ROLE ANALYST." in response.content.decode()
    assert not Grant.objects.filter(pk=row.pk).exists()


def test_revoking_a_users_role_with_the_bulk_action(security_client):
    bob = _user("bob")
    row = grants.grant_role(admin_session(), "ROLE", "ANALYST", "USER", "bob")
    security_client.post("/admin/access/grant/", {"action": "revoke_selected", "_selected_action": [row.pk]})
    assert not Grant.objects.filter(pk=row.pk).exists()
    assert not Role.objects.get(name="ANALYST").users.filter(pk=bob.pk).exists()


def test_revoking_from_a_user_names_that_user_exactly(security_client):
    """Usernames are case-sensitive: revoking BOB's role must not revoke bob's (an unquoted BOB would match
    either)."""
    bob, upper_bob = _user("bob"), _user("BOB")
    grants.grant_role(admin_session(), "ROLE", "ANALYST", "USER", "bob")
    row = grants.grant_role(admin_session(), "ROLE", "ANALYST", "USER", '"BOB"')
    assert row.grantee_name == "BOB"
    security_client.post("/admin/access/grant/", {"action": "revoke_selected", "_selected_action": [row.pk]})
    analysts = Role.objects.get(name="ANALYST").users
    assert not analysts.filter(pk=upper_bob.pk).exists()
    assert analysts.filter(pk=bob.pk).exists()
    assert Grant.objects.filter(grantee_type="USER", grantee_name="bob", object_name="ANALYST").exists()


def test_grants_cannot_be_edited_in_place(security_client):
    (row,) = grants.grant(admin_session(), "USAGE", "DATABASE", "SALES", "ROLE", "ANALYST")
    response = security_client.post(f"/admin/access/grant/{row.pk}/change/", {"grantee_name": "PUBLIC"})
    assert response.status_code == 403
    row.refresh_from_db()
    assert row.grantee_name == "ANALYST"
    ownership = Grant.objects.get(privilege="OWNERSHIP", object_name="ANALYST")
    assert security_client.post(f"/admin/access/grant/{ownership.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Grant.objects.filter(pk=ownership.pk).exists()


def test_a_user_admin_does_not_see_grants(useradmin_client):
    assert useradmin_client.get("/admin/access/grant/").status_code == 403
    page = useradmin_client.get("/admin/").content.decode()
    assert "/admin/auth/user/" in page and "/admin/access/grant/" not in page


# Roles and users ------------------------------------------------------------------------------

def test_roles_are_created_and_dropped_through_the_service(useradmin_client):
    response = useradmin_client.post("/admin/access/role/add/", {"name": "etl"}, follow=True)
    assert "Role ETL successfully created." in response.content.decode()
    assert Grant.objects.filter(privilege="OWNERSHIP", object_type="ROLE", object_name="ETL",
                                grantee_name="USERADMIN").exists()
    role = Role.objects.get(name="ETL")
    useradmin_client.post(f"/admin/access/role/{role.pk}/delete/", {"post": "yes"})
    assert not Role.objects.filter(name="ETL").exists()
    assert not Grant.objects.filter(object_name="ETL").exists()


def test_an_existing_role_is_refused_with_the_services_message(useradmin_client):
    response = useradmin_client.post("/admin/access/role/add/", {"name": "analyst"})
    assert response.status_code == 400
    assert "Object &#x27;ANALYST&#x27; already exists." in response.content.decode()


def test_the_role_list_shows_inheritance_and_holders(security_client):
    grants.grant_role(admin_session(), "ROLE", "ANALYST", "ROLE", "SYSADMIN")
    _user("bob")
    grants.grant_role(admin_session(), "ROLE", "ANALYST", "USER", "bob")
    page = security_client.get("/admin/access/role/?q=analyst").content.decode()
    assert "bob" in page and "PUBLIC" in page
    sysadmin = security_client.get("/admin/access/role/?q=sysadmin").content.decode()
    assert "ANALYST" in sysadmin
    system = Role.objects.get(name="SYSADMIN")
    assert security_client.post(f"/admin/access/role/{system.pk}/delete/", {"post": "yes"}).status_code == 403


def test_a_user_admin_adds_a_user_with_a_default_role(useradmin_client):
    response = useradmin_client.post("/admin/auth/user/add/", {
        "username": "carol", "password1": "a-long-pass-phrase-1", "password2": "a-long-pass-phrase-1",
        "usable_password": "true",
        "profile-TOTAL_FORMS": "1", "profile-INITIAL_FORMS": "0", "profile-MIN_NUM_FORMS": "0",
        "profile-MAX_NUM_FORMS": "1", "profile-0-default_role": "ANALYST", "profile-0-default_warehouse": "COMPUTE_WH",
        "profile-0-comment": ""})
    assert response.status_code == 302, response.content.decode()[:3000]
    carol = User.objects.get(username="carol")
    assert carol.profile.default_role == "ANALYST" and not carol.is_superuser


def test_a_user_admin_cannot_change_the_account_admin_nor_make_superusers(useradmin_client):
    admin = User.objects.get(username="admin")
    assert useradmin_client.post(f"/admin/auth/user/{admin.pk}/password/",
                                 {"password1": "x-new-pass-1", "password2": "x-new-pass-1"}).status_code == 403
    assert useradmin_client.get(f"/admin/auth/user/{admin.pk}/change/").status_code == 200  # view only
    bob = _user("bob")
    page = useradmin_client.get(f"/admin/auth/user/{bob.pk}/change/").content.decode()
    assert 'name="is_superuser"' not in page and "PUBLIC" in page


def test_the_user_list_shows_granted_roles_to_an_account_admin(admin_client):
    _user("bob", "SYSADMIN")
    page = admin_client.get("/admin/auth/user/?q=bob").content.decode()
    assert "PUBLIC, SYSADMIN" in page


# Tokens, history, jobs ------------------------------------------------------------------------

def test_tokens_are_listed_and_revoked_never_created(security_client):
    token, secret = create_token(User.objects.get(username="admin"), "etl")
    page = security_client.get("/admin/access/apitoken/").content.decode()
    assert token.prefix in page and secret not in page
    assert security_client.get("/admin/access/apitoken/add/").status_code == 403
    security_client.post("/admin/access/apitoken/", {"action": "revoke_selected", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_on is not None
    assert ApiToken.objects.count() == 1


def test_the_access_history_is_read_only(security_client):
    history.record(admin_session(entry_point="cli"), "GRANT", "ROLE", "ANALYST", message="to USER bob")
    event = AccessEvent.objects.get()
    page = security_client.get("/admin/access/accessevent/?outcome__exact=SUCCESS").content.decode()
    assert "ANALYST" in page and "admin" in page
    assert "/admin/access/accessevent/add/" not in page
    assert security_client.get("/admin/access/accessevent/add/").status_code == 403
    assert security_client.post(f"/admin/access/accessevent/{event.pk}/change/", {"message": "x"}).status_code == 403
    assert security_client.post(f"/admin/access/accessevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.message == "to USER bob"


def _job(status=FineTuneJob.Status.PENDING) -> FineTuneJob:
    return FineTuneJob.objects.create(
        status=status, base_model="smollm2-135m", database="SALES", schema="PUBLIC", requested_name="TRIAGE",
        training_data="SELECT prompt, completion FROM t", warehouse="COMPUTE_WH", role="ACCOUNTADMIN")


def test_the_cancel_action_cancels_a_job_through_the_service(admin_client):
    pending, done = _job(), _job(FineTuneJob.Status.SUCCESS)
    response = admin_client.post("/admin/jobs/finetunejob/", {
        "action": "cancel_selected", "_selected_action": [pending.pk, done.pk]}, follow=True)
    page = response.content.decode()
    pending.refresh_from_db()
    done.refresh_from_db()
    assert pending.status == FineTuneJob.Status.CANCELLED and done.status == FineTuneJob.Status.SUCCESS
    assert f"Canceled Cortex Fine-tuning job: {pending.id}" in page
    assert f"Fine-tuning job &#x27;{done.id}&#x27; has already finished with status SUCCESS" in page
    assert admin_client.post(f"/admin/jobs/finetunejob/{pending.pk}/change/", {}).status_code == 403


def test_jobs_are_not_shown_to_a_security_admin(security_client):
    assert security_client.get("/admin/jobs/finetunejob/").status_code == 403


def test_the_console_acts_with_the_role_chosen_in_the_header_menu(account, client):
    from access.web import ROLE_KEY

    client.force_login(_user("sec", "SECURITYADMIN"))
    session = client.session
    session[ROLE_KEY] = "USERADMIN"
    session.save()
    page = client.get("/admin/").content.decode()
    assert "USERADMIN" in page and "/admin/auth/user/" in page
    assert client.get("/admin/access/grant/").status_code == 403


def test_deleting_a_user_is_drop_user_and_takes_their_grants(useradmin_client):
    bob = _user("bob")
    grants.grant_role(admin_session(), "ROLE", "ANALYST", "USER", "bob")
    response = useradmin_client.post(f"/admin/auth/user/{bob.pk}/delete/", {"post": "yes"}, follow=True)
    assert "BOB successfully dropped." in response.content.decode()
    assert not User.objects.filter(username="bob").exists()
    assert not Grant.objects.filter(grantee_type="USER", grantee_name="bob").exists()
    assert AccessEvent.objects.filter(action="DROP USER", object_name="bob", entry_point="admin",
                                      outcome="SUCCESS").exists()
    admin = User.objects.get(username="admin")
    useradmin_client.post("/admin/auth/user/", {"action": "drop_selected", "_selected_action": [admin.pk]})
    assert User.objects.filter(username="admin").exists()
