"""POST /api/v2/stages/<stage>/files: upload a file into a stage over HTTP (what PUT does from a shell).

The body is streamed to disk chunk by chunk (multipart `file` field, or the raw body with ?name=), into
a temporary file that is renamed into the stage once complete; a 1 GB upload never sits in memory.

The upload runs as the request's own role: ?role= when the user holds it, else the token user's default
role or, for a signed-in browser, the role chosen in the header (access/web.py); its session opens
through access/roles.open_session, as the SQL API's does, and the upload needs WRITE on the stage,
checked by stages.resolve as for PUT.
"""
from __future__ import annotations

import hashlib

from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST

from access import privileges, roles, tokens
from access.web import current_role
from catalog import stage_files, stages
from catalog.identifiers import normalize
from errors import UserError

CHUNK = 1024 * 1024
ROLE_NOT_GRANTED = 390189  # open_session's code for a role the request names but the user does not hold


class StageUploadHandler(FileUploadHandler):
    """Writes the multipart `file` field straight into the stages' temporary folder, hashing as it goes."""

    chunk_size = CHUNK

    def __init__(self, request=None) -> None:
        super().__init__(request)
        self.upload = None
        self._active = False

    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, file_name, *args, **kwargs)
        self._active = field_name == "file" and self.upload is None
        if self._active:
            self._context = stage_files.incoming_file()
            self.path, self.handle = self._context.__enter__()
            self.digest, self.size = hashlib.md5(), 0
            raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data, start):
        if self._active:
            self.handle.write(raw_data)
            self.digest.update(raw_data)
            self.size += len(raw_data)
        return None

    def file_complete(self, file_size):
        if self._active:
            self.handle.close()
            self.upload = (self.file_name, self.path, self.size, self.digest.hexdigest())
            self._active = False
        return None

    def cleanup(self) -> None:
        if getattr(self, "_context", None) is not None:
            self._context.__exit__(None, None, None)


def _error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
@require_POST
def upload(request, stage: str):
    user = tokens.user_from_request(request)
    if user is not None:
        return _upload(request, stage, user, roles.default_role(user))
    if request.user.is_authenticated:
        # A browser session: CSRF applies, checked only after the upload handler is in place, so the
        # check's read of request.POST streams the file to disk rather than into memory.
        request.upload_handlers = [StageUploadHandler(request)]
        return csrf_protect(lambda r: _upload(r, stage, r.user, current_role(r)))(request)
    return _error("Authentication required: send Authorization: Bearer <token> or log in.", 401)


def _upload(request, stage: str, user, role: str) -> JsonResponse:
    if not request.upload_handlers or not isinstance(request.upload_handlers[0], StageUploadHandler):
        request.upload_handlers = [StageUploadHandler(request)]
    handler = request.upload_handlers[0]
    try:
        session = roles.open_session(user, role=_name(request.GET.get("role")) or role, entry_point="api",
                                     database=_name(request.GET.get("database")),
                                     schema=_name(request.GET.get("schema")))
        ref = stages.StageRef.parse("@" + stage)  # Django has URL-decoded it already
        location = stages.resolve(ref, session, stages.WRITE)
        overwrite = request.GET.get("overwrite", "").lower() in ("1", "true", "yes")
        if request.content_type == "multipart/form-data":
            return _from_multipart(request, handler, location, ref, overwrite)
        return _from_body(request, location, ref, overwrite)
    except UserError as exc:
        if exc.code in (privileges.INSUFFICIENT_PRIVILEGES, ROLE_NOT_GRANTED):
            status = 403
        else:
            status = 404 if "does not exist" in exc.message else 400
        return _error(exc.message, status)
    finally:
        handler.cleanup()


def _target_name(ref: stages.StageRef, name: str) -> str:
    folder = ref.path.strip("/")
    return stages.clean_relative(f"{folder}/{name}" if folder else name)


def _from_multipart(request, handler: StageUploadHandler, location, ref, overwrite: bool) -> JsonResponse:
    request.POST  # noqa: B018 -- parses the body through StageUploadHandler
    if handler.upload is None:
        return _error("No file in the request: send it as the multipart field 'file'.", 400)
    file_name, path, size, digest = handler.upload
    relative = _target_name(ref, request.GET.get("name") or file_name)
    if stage_files.exists(location, relative) and not overwrite:
        return _conflict(location, relative)
    stage_files.publish(location, relative, path, digest)
    return _created(location, relative, size, digest)


def _from_body(request, location, ref, overwrite: bool) -> JsonResponse:
    name = request.GET.get("name")
    if not name:
        return _error("Name the file: ?name=<file name> (or send it as the multipart field 'file').", 400)
    relative = _target_name(ref, name)
    if stage_files.exists(location, relative) and not overwrite:
        return _conflict(location, relative)
    size, digest = stage_files.store_stream(location, relative, iter(lambda: request.read(CHUNK), b""))
    return _created(location, relative, size, digest)


def _conflict(location, relative: str) -> JsonResponse:
    return _error(f"File '{relative}' already exists in stage {location.display}; add ?overwrite=true to "
                  "replace it.", 409)


def _created(location, relative: str, size: int, digest: str) -> JsonResponse:
    return JsonResponse({"stage": location.display, "name": location.prefix + relative, "size": size,
                         "md5": digest}, status=201)


def _name(value: str | None) -> str | None:
    return normalize(value) if value else None
