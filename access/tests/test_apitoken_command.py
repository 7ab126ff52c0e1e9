import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError

from access import tokens
from access.bootstrap import bootstrap
from access.models import ApiToken


@pytest.fixture
def users(db):
    bootstrap(password="pw-for-tests", demo=False)
    return get_user_model().objects.create_user("ada", password="pw-ada")


def create(capsys, username="ada", name="airflow") -> str:
    call_command("apitoken", "create", username, name)
    return capsys.readouterr().out.strip()


def test_create_prints_a_secret_that_authenticates_once_stored_only_as_a_hash(users, capsys):
    secret = create(capsys)
    assert secret.startswith("sft_")
    token = ApiToken.objects.get()
    assert token.user == users and token.name == "airflow" and secret not in (token.token_hash, token.prefix)
    assert tokens.user_for(secret) == users


def test_create_refuses_an_unknown_user(users):
    with pytest.raises(CommandError, match="User 'nobody' does not exist"):
        call_command("apitoken", "create", "nobody", "x")
    assert not ApiToken.objects.exists()


def test_list_shows_tokens_without_their_secret(users, capsys):
    secret = create(capsys)
    create(capsys, "admin", "ci")
    call_command("apitoken", "list")
    out = capsys.readouterr().out
    assert "airflow" in out and "ci" in out and secret[:12] in out and secret not in out
    call_command("apitoken", "list", "ada")
    out = capsys.readouterr().out
    assert "airflow" in out and "ci" not in out.split("\n", 1)[1]


def test_revoke_by_prefix_stops_the_token_working(users, capsys):
    secret = create(capsys)
    call_command("apitoken", "revoke", secret[:12])
    assert "Revoked token" in capsys.readouterr().out
    assert tokens.user_for(secret) is None
    call_command("apitoken", "list", "ada")
    assert "revoked" in capsys.readouterr().out


def test_revoke_by_id(users, capsys):
    secret = create(capsys)
    call_command("apitoken", "revoke", str(ApiToken.objects.get().pk))
    assert tokens.user_for(secret) is None


def test_revoke_of_an_unknown_token_is_an_error(users):
    with pytest.raises(CommandError, match="No API token '999'"):
        call_command("apitoken", "revoke", "999")
