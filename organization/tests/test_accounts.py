"""The organization's account registry: only ORGADMIN registers, keys never show, and two deployments
talk only when each has registered the other, over real HTTP with signed requests."""
from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from access.models import AccessEvent
from access.session import Session
from errors import UserError
from organization import peers, signing
from organization.models import Account
from sqlengine.executor import Executor
from sqlengine.redaction import redact
from supervision import processes
from tests.support.federation import other_web_app

KEY = "k" * 20 + "-shared-between-both-deployments"


def run(sql: str, role: str = "ORGADMIN"):
    return Executor(Session(user=None, role=role)).execute(sql)[-1]


@pytest.mark.django_db
def test_orgadmin_registers_an_account_and_show_accounts_hides_its_key():
    result = run(f"CREATE ACCOUNT acct2 URL = 'http://studio-eu.example:8000' KEY = '{KEY}' COMMENT = 'Frankfurt'")
    assert result.rows == [("Account ACCT2 successfully created.",)]
    shown = run("SHOW ACCOUNTS")
    assert shown.columns[:3] == ["organization_name", "account_name", "account_url"]
    rows = {r[1]: r for r in shown.rows}
    assert rows["STUDIO"][5] is True  # this deployment, first
    assert rows["ACCT2"][:3] == ("STUDIO_ORG", "ACCT2", "http://studio-eu.example:8000/")
    assert KEY not in repr(shown.rows) and rows["ACCT2"][6] == Account.objects.get().key_fingerprint
    assert run("SHOW ACCOUNTS LIKE 'acct%'").rows == [rows["ACCT2"]]
    # The key is not kept in any statement text.
    assert KEY not in redact(f"create account acct3 url='http://x' key = '{KEY}'")
    assert AccessEvent.objects.filter(action="CREATE ACCOUNT", outcome="SUCCESS").count() == 1


@pytest.mark.django_db
def test_only_orgadmin_manages_accounts_not_even_accountadmin():
    with pytest.raises(UserError, match="only the ORGADMIN role manages the organization's accounts") as refused:
        run(f"CREATE ACCOUNT acct2 URL = 'http://x:1' KEY = '{KEY}'", role="ACCOUNTADMIN")
    assert refused.value.code == 3001
    with pytest.raises(UserError, match="ORGADMIN"):
        run("SHOW ACCOUNTS", role="SYSADMIN")
    assert not Account.objects.exists()
    assert AccessEvent.objects.get(action="CREATE ACCOUNT").outcome == "REFUSED"


@pytest.mark.django_db
@pytest.mark.parametrize("statement, message", [
    ("CREATE ACCOUNT acct2 URL = 'http://x:1' KEY = 'short'", "KEY must be at least 32 characters"),
    (f"CREATE ACCOUNT acct2 URL = 'ftp://x' KEY = '{KEY}'", "Invalid URL 'ftp://x'"),
    (f"CREATE ACCOUNT otherorg.acct2 URL = 'http://x:1' KEY = '{KEY}'", "is not in this organization"),
    (f"CREATE ACCOUNT studio URL = 'http://x:1' KEY = '{KEY}'", "is this deployment"),
    ("CREATE ACCOUNT acct2 URL = 'http://x:1'", "expected KEY = '…'"),
    ("DROP ACCOUNT acct9", "is not registered in this deployment"),
])
def test_bad_registrations_say_what_to_fix(statement, message):
    with pytest.raises(UserError, match=message):
        run(statement)
    assert not Account.objects.exists()


@pytest.mark.django_db
def test_a_second_registration_of_a_name_is_refused_unless_replaced():
    run(f"CREATE ACCOUNT acct2 URL = 'http://a:1' KEY = '{KEY}'")
    with pytest.raises(UserError, match="already exists"):
        run(f"CREATE ACCOUNT acct2 URL = 'http://b:1' KEY = '{KEY}'")
    assert run(f"CREATE ACCOUNT IF NOT EXISTS acct2 URL = 'http://b:1' KEY = '{KEY}'").rows[0][0].endswith("succeeded.")
    run(f"CREATE OR REPLACE ACCOUNT acct2 URL = 'http://b:1' KEY = '{KEY}'")
    assert Account.objects.get().url == "http://b:1/"
    assert run("DROP ACCOUNT STUDIO_ORG.ACCT2").rows == [("ACCT2 successfully dropped.",)]
    assert not Account.objects.exists()


def test_a_signature_covers_sender_recipient_path_body_and_time():
    headers = signing.sign(KEY, "GET", "/federation/v1/account", "ORG.A", "ORG.B", b"", now=1000)
    assert signing.check(KEY, "GET", "/federation/v1/account", headers, "ORG.B", now=1010) is None
    assert "another account" in signing.check(KEY, "GET", "/federation/v1/account", headers, "ORG.C", now=1010)
    assert "does not match" in signing.check(KEY, "GET", "/federation/v1/other", headers, "ORG.B", now=1010)
    assert "does not match" in signing.check(KEY, "GET", "/federation/v1/account", headers, "ORG.B", b"x", now=1010)
    assert "does not match" in signing.check("another-key" * 4, "GET", "/federation/v1/account", headers, "ORG.B",
                                             now=1010)
    assert "300 seconds" in signing.check(KEY, "GET", "/federation/v1/account", headers, "ORG.B", now=1400)
    forged = {**headers, signing.ACCOUNT_HEADER: "ORG.EVIL"}
    assert "does not match" in signing.check(KEY, "GET", "/federation/v1/account", forged, "ORG.B", now=1010)


@pytest.fixture
def provider(live_db):
    with other_web_app("PROVIDER") as url:
        yield url
    Account.objects.all().delete()


def test_deployments_talk_only_when_each_registered_the_other(provider):
    # This process is account STUDIO; it registers PROVIDER, and PROVIDER (same database here, its own
    # identity) has not registered STUDIO yet: refused, with the fix.
    Account.objects.filter(name__in=["PROVIDER", "STUDIO"]).delete()
    theirs = Account.objects.create(organization="STUDIO_ORG", name="PROVIDER", url=provider + "/", key=KEY)
    with pytest.raises(UserError, match="does not trust the request") as unregistered:
        peers.get_json(theirs, "account")
    Account.objects.create(organization="STUDIO_ORG", name="STUDIO", url="http://127.0.0.1:1/", key=KEY)
    assert peers.get_json(theirs, "account") == {"organization": "STUDIO_ORG", "account": "PROVIDER",
                                                 "caller": "STUDIO_ORG.STUDIO"}
    # Keys that differ: refused with the very same words, so that a refusal never tells a stranger
    # which account names are registered (the reason goes to the refusing deployment's log).
    Account.objects.filter(name="PROVIDER").update(key=KEY + "-other")
    theirs.refresh_from_db()
    with pytest.raises(UserError) as bad_key:
        peers.get_json(theirs, "account")
    assert bad_key.value.message == unregistered.value.message
    # An unsigned request gets nothing but the refusal.
    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(provider + "/federation/v1/account", timeout=10)
    assert unsigned.value.code == 401
    # A deployment that is down: a clear error naming it, nothing answered in its place.
    down = Account(organization="STUDIO_ORG", name="GONE", url=f"http://127.0.0.1:{processes.free_port()}/", key=KEY)
    with pytest.raises(peers.PeerUnreachable, match="Account STUDIO_ORG.GONE is unreachable"):
        peers.get_json(down, "account")


@pytest.mark.django_db
def test_the_deployment_names_its_organization_and_account_in_sql(settings):
    settings.ORGANIZATION_NAME, settings.ACCOUNT_NAME = "acme", "eu_west"
    result = run("SELECT CURRENT_ORGANIZATION_NAME(), CURRENT_ACCOUNT_NAME(), CURRENT_ACCOUNT()", role="PUBLIC")
    assert result.rows == [("ACME", "EU_WEST", "EU_WEST")]
