"""The upload endpoint (POST /api/v2/stages/<stage>/files) and the Data page's upload run as the
request's own role and need WRITE on the stage, as PUT does: tried as the security review's user `low`
(tests/support/security.py) with its API token and as a signed-in browser, on admin's files."""
import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from access.tokens import create_token
from sqlengine.executor import Executor
from tests.support.security import SECRET_FILE, SECRET_ROWS, STAGED_FILES, leaks
from tests.support.security import staged_files as admin_files

FORGED = b"id,name\n1,forged\n"
STAGE_GONE = "SQL compilation error: Stage 'ACC.S.SECRETSTAGE' does not exist or not authorized."
TABLE_GONE = "SQL compilation error: Table 'ACC.S.T' does not exist or not authorized."


def user_stage(account, user) -> list[str]:
    from access.session import Session

    return [r[0] for r in Executor(Session(user=user, role="PUBLIC")).execute("LIST @~")[-1].rows]


def token_upload(client, account, url: str, body: bytes = FORGED):
    return client.post(url, data=body, content_type="text/csv", HTTP_AUTHORIZATION=f"Bearer {account.token}")


def assert_refused(response, status: int, message: str) -> None:
    assert response.status_code == status, response.content
    assert response.json() == {"error": message}
    assert not leaks(response.content.decode())


# -- refused -------------------------------------------------------------------------------------

@pytest.mark.parametrize("stage, message", [("ACC.S.SECRETSTAGE", STAGE_GONE), ("ACC.S.%25T", TABLE_GONE)])
def test_a_token_upload_over_another_owners_file_is_refused_and_the_file_is_unchanged(low_account, client, stage,
                                                                                     message):
    url = f"/api/v2/stages/{stage}/files?name={SECRET_FILE}&overwrite=true"
    assert_refused(token_upload(client, low_account, url), 404, message)
    multipart = client.post(f"/api/v2/stages/{stage}/files?overwrite=true",
                            {"file": SimpleUploadedFile(SECRET_FILE, FORGED)},
                            HTTP_AUTHORIZATION=f"Bearer {low_account.token}")
    assert_refused(multipart, 404, message)
    assert admin_files(low_account) == STAGED_FILES


def test_a_database_the_role_may_not_use_reads_like_a_missing_one(low_account, client):
    # The session opens as USE would: naming ACC in ?database= is refused before any stage is looked at.
    response = token_upload(client, low_account, "/api/v2/stages/s.secretstage/files?name=new.csv&database=acc")
    assert_refused(response, 404, "Database 'ACC' does not exist or not authorized.")
    assert admin_files(low_account) == STAGED_FILES


def test_a_named_role_the_user_holds_is_the_one_the_upload_runs_as(low_account, client):
    Executor(low_account.admin).execute("GRANT ROLE low TO USER admin")
    # admin's token would run as ACCOUNTADMIN; ?role=low makes it LOW, which may not write ACC's stage.
    _token, secret = create_token(low_account.admin.user, "as-low")
    response = client.post(f"/api/v2/stages/ACC.S.SECRETSTAGE/files?name={SECRET_FILE}&overwrite=true&role=low",
                           data=FORGED, content_type="text/csv", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert_refused(response, 404, STAGE_GONE)
    assert admin_files(low_account) == STAGED_FILES


def test_a_role_the_user_does_not_hold_is_refused(low_account, client):
    url = f"/api/v2/stages/ACC.S.SECRETSTAGE/files?name={SECRET_FILE}&overwrite=true&role=accountadmin"
    assert_refused(token_upload(client, low_account, url), 403,
                   "Role 'ACCOUNTADMIN' specified in the request does not exist or is not granted to this user.")
    assert admin_files(low_account) == STAGED_FILES


def test_a_browser_upload_over_another_owners_file_is_refused(low_account):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(low_account.user)
    browser.cookies["csrftoken"] = token = "k" * 32
    response = browser.post(f"/api/v2/stages/ACC.S.SECRETSTAGE/files?name={SECRET_FILE}&overwrite=true",
                            data=FORGED, content_type="text/csv", HTTP_X_CSRFTOKEN=token)
    assert_refused(response, 404, STAGE_GONE)
    assert admin_files(low_account) == STAGED_FILES


def test_read_alone_does_not_let_an_upload_in(low_account, client):
    for text in ("GRANT USAGE ON DATABASE acc TO ROLE low", "GRANT USAGE ON SCHEMA acc.s TO ROLE low",
                 "GRANT READ ON STAGE acc.s.secretstage TO ROLE low"):
        Executor(low_account.admin).execute(text)
    url = f"/api/v2/stages/ACC.S.SECRETSTAGE/files?name={SECRET_FILE}&overwrite=true"
    response = token_upload(client, low_account, url)
    assert response.status_code == 403
    assert response.json() == {"error": "Insufficient privileges to operate on stage 'SECRETSTAGE'"}
    assert admin_files(low_account) == STAGED_FILES


def test_the_data_page_upload_into_a_table_the_role_cannot_load_changes_nothing(low_account):
    browser = Client()
    browser.force_login(low_account.user)
    response = browser.post("/data/upload", {"mode": "existing", "existing": "ACC.S.T", "schema": "", "new_table": "",
                                            "file": SimpleUploadedFile("rows.csv", b"id,name,detail\n9,forged,x\n")})
    assert response.status_code == 403
    assert "Insufficient privileges" in response.content.decode()
    rows = Executor(low_account.admin).execute("SELECT * FROM acc.s.t ORDER BY id")[-1].rows
    assert rows == SECRET_ROWS
    assert user_stage(low_account, low_account.user) == []  # the upload's staged copy went too
    assert admin_files(low_account) == STAGED_FILES


# -- allowed ---------------------------------------------------------------------------------------

def test_after_write_an_upload_lands_and_may_replace_a_file(low_account, client):
    for text in ("GRANT USAGE ON DATABASE acc TO ROLE low", "GRANT USAGE ON SCHEMA acc.s TO ROLE low",
                 "GRANT READ, WRITE ON STAGE acc.s.secretstage TO ROLE low"):
        Executor(low_account.admin).execute(text)
    created = token_upload(client, low_account, "/api/v2/stages/ACC.S.SECRETSTAGE/files?name=new.csv")
    assert created.status_code == 201
    assert created.json() == {"stage": "@ACC.S.SECRETSTAGE", "name": "secretstage/new.csv", "size": len(FORGED),
                              "md5": hashlib.md5(FORGED).hexdigest()}
    kept = token_upload(client, low_account, f"/api/v2/stages/ACC.S.SECRETSTAGE/files?name={SECRET_FILE}")
    assert kept.status_code == 409
    replaced = token_upload(client, low_account,
                            f"/api/v2/stages/ACC.S.SECRETSTAGE/files?name={SECRET_FILE}&overwrite=true&role=low")
    assert replaced.status_code == 201
    assert admin_files(low_account)["@ACC.S.SECRETSTAGE"] == {SECRET_FILE: FORGED, "new.csv": FORGED}


def test_a_token_upload_to_the_user_stage_lands_in_that_users_own_stage(low_account, client):
    response = token_upload(client, low_account, "/api/v2/stages/~/files?name=mine.csv")
    assert response.status_code == 201
    assert user_stage(low_account, low_account.user) == ["mine.csv"]
    assert user_stage(low_account, low_account.admin.user) == []


def test_the_table_owner_uploads_into_its_table_stage(low_account, client):
    Executor(low_account.admin).execute("GRANT CREATE TABLE ON SCHEMA pub.s TO ROLE low")
    low_account.sql("CREATE TABLE pub.s.mine (id INT, name VARCHAR)")
    response = token_upload(client, low_account, "/api/v2/stages/PUB.S.%25MINE/files?name=rows.csv")
    assert response.status_code == 201, response.content
    copied = low_account.sql("COPY INTO pub.s.mine FROM @pub.s.%mine FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1)")
    assert copied[-1].rows[0][1:4] == ("LOADED", 1, 1)
