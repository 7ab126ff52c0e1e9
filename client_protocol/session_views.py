"""Sign-in, token renewal, heartbeat and sign-out, as Snowflake's clients call them."""
from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from client_protocol import envelope, sessions
from client_protocol.models import ClientSession
from errors import UserError

SERVER_VERSION = "9.0.0"


def client_address(request) -> str:
    return request.META.get("REMOTE_ADDR", "")


def _login_parameters() -> list[dict]:
    # The 5.x connector sends telemetry unless told not to; the studio keeps none.
    return [{"name": "CLIENT_TELEMETRY_ENABLED", "value": False},
            {"name": "CLIENT_SESSION_KEEP_ALIVE_HEARTBEAT_FREQUENCY", "value": 3600},
            {"name": "TIMEZONE", "value": "UTC"}, {"name": "CLIENT_RESULT_CHUNK_SIZE", "value": 160},
            # executemany() binds arrays of any size inline: staging them first would need PUT to a
            # temporary stage, which the protocol here does not offer.
            {"name": "CLIENT_STAGE_ARRAY_BINDING_THRESHOLD", "value": 2**31 - 1}]


@csrf_exempt  # the clients send no cookies: the body's password (then the token) authenticates
@require_POST
def login(request):
    try:
        body = envelope.read_body(request, anonymous=True)
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        authenticator = str(data.get("AUTHENTICATOR") or "SNOWFLAKE").upper()
        if authenticator not in ("SNOWFLAKE", "USERNAME_PASSWORD_MFA"):
            raise envelope.bad_request(f"Authenticator '{authenticator}' is not supported here: connect with "
                                       "user and password (authenticator='snowflake').")
        account = str(data.get("ACCOUNT_NAME") or "").strip()
        if account and account.upper() != settings.ACCOUNT_NAME.upper():
            raise UserError(f"Account '{account}' is not this deployment's account: connect with "
                            f"account='{settings.ACCOUNT_NAME.lower()}'.", code=390201, sqlstate="08004")
        query = request.GET
        client = f"{data.get('CLIENT_APP_ID') or ''} {data.get('CLIENT_APP_VERSION') or ''}".strip()
        opened = sessions.sign_in(
            str(data.get("LOGIN_NAME") or ""), str(data.get("PASSWORD") or ""), address=client_address(request),
            role=query.get("roleName"), warehouse=query.get("warehouse"), database=query.get("databaseName"),
            schema=query.get("schemaName"), client=client)
    except UserError as error:
        return envelope.failure(error, nextAction=None)
    parameters = data.get("SESSION_PARAMETERS") if isinstance(data.get("SESSION_PARAMETERS"), dict) else {}
    wanted = parameters.get("PYTHON_CONNECTOR_QUERY_RESULT_FORMAT")
    if isinstance(wanted, str) and wanted.lower() in ("json", "arrow"):
        ClientSession.objects.filter(pk=opened.record.pk).update(result_format=wanted.lower())
    session = opened.session
    return envelope.ok({
        "token": opened.token, "masterToken": opened.master_token, "sessionId": opened.record.id,
        "validityInSeconds": settings.CLIENT_SESSION_SECONDS,
        "masterValidityInSeconds": settings.CLIENT_MASTER_SESSION_SECONDS,
        "serverVersion": SERVER_VERSION, "displayUserName": opened.record.user.get_username().upper(),
        "firstLogin": False, "remMeToken": None, "remMeValidityInSeconds": 0, "healthCheckInterval": 45,
        "newClientForUpgrade": None, "idToken": None, "idTokenValidityInSeconds": 0, "responseData": None,
        "mfaToken": None, "mfaTokenValidityInSeconds": 0,
        "parameters": _login_parameters(),
        "sessionInfo": {"databaseName": session.database, "schemaName": session.schema,
                        "warehouseName": session.warehouse, "roleName": session.role},
    })


def _token(request) -> str:
    return sessions.token_from_header(request.headers.get("Authorization", ""))


@csrf_exempt
@require_POST
def renew(request):
    try:
        body = envelope.read_body(request, optional=True, anonymous=True)
        if str(body.get("requestType") or "RENEW").upper() != "RENEW":
            raise envelope.bad_request("requestType must be RENEW.")
        record, token, master = sessions.renew(_token(request), str(body.get("oldSessionToken") or ""))
    except UserError as error:
        return envelope.failure(error)
    master_left = int((record.master_expires_on - timezone.now()).total_seconds())
    return envelope.ok({"sessionToken": token, "validityInSecondsST": settings.CLIENT_SESSION_SECONDS,
                        "masterToken": master, "validityInSecondsMT": master_left,
                        "masterValidityInSeconds": master_left, "sessionId": record.id})


@csrf_exempt
@require_POST
def heartbeat(request):
    try:
        sessions.session_for(_token(request), to_run=False)
    except UserError as error:
        return envelope.failure(error)
    return envelope.ok({})


@csrf_exempt
@require_POST
def logout(request):
    """POST /session?delete=true. A token that opens no session (closed already, or never issued) is
    answered 390111; the clients ignore a failed sign-out, and nobody learns anything from one."""
    if request.GET.get("delete", "").lower() != "true":
        return envelope.failure(envelope.bad_request("POST /session needs ?delete=true (sign-out)."))
    if not sessions.sign_out(_token(request)):
        return envelope.failure(sessions.session_gone())
    return envelope.ok(None)


@csrf_exempt
@require_POST
def telemetry(request):
    """Accepted from a signed-in session and dropped: the studio collects no client telemetry (and tells
    the 5.x connector so at sign-in). Anonymous posts are refused like every other endpoint's."""
    try:
        sessions.session_for(_token(request))
    except UserError as error:
        return envelope.failure(error)
    return envelope.ok(None)
