"""Settings for the fine-tuning studio. Every value can come from the environment; the defaults run
the whole stack on one machine with embedded components (SQLite, DuckDB files, a local Redis)."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from project.env import envbool, envint, envpath, envsecret, envstr
from project.private import make_private

BASE_DIR = Path(__file__).resolve().parent.parent

# Where the embedded defaults keep their state; each can be moved on its own below.
DATA_DIR = envpath("STUDIO_DATA_DIR", BASE_DIR / "var")
DUCKDB_DIR = envpath("STUDIO_DUCKDB_DIR", DATA_DIR / "duckdb")
MODEL_STORE = envpath("STUDIO_MODEL_STORE", DATA_DIR / "models")
# Internal stages (@~, @%table, named stages): files PUT or uploaded, waiting for COPY INTO.
STAGE_DIR = envpath("STUDIO_STAGE_DIR", DATA_DIR / "stages")

# Other local users must not read sessions, tables or secrets: from here on this process creates its files
# 0600 and directories 0700, and these directories lose any group or other access they had.
make_private([DATA_DIR, DUCKDB_DIR, MODEL_STORE, STAGE_DIR])

DEBUG = envbool("DEBUG", False)
# Generated per deployment unless set: a key anyone can read would let them sign cookies this app trusts.
SECRET_KEY = envsecret("SECRET_KEY", DATA_DIR / "secret-key.txt")
if SECRET_KEY.startswith("dev-only-secret-key"):
    raise ImproperlyConfigured("SECRET_KEY is the development key once published with this code; unset it to use "
                               f"the one generated in {DATA_DIR / 'secret-key.txt'}, or set a new random one")
ALLOWED_HOSTS = envstr("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in envstr("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "access.console.StudioAdminConfig",  # Django's admin as the console, governed by roles
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_rq",
    "access",
    "catalog",
    "warehouses",
    "jobs",
    "models_registry",
    "inference",
    "sqlengine",
    "sqlapi",
    "client_protocol",
    "organization",
    "sharing",
    "replication",
    "studio",
    "supervision",  # manage.py runstack
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
]

# Content-Security-Policy on every response (django-csp): scripts, styles, images and requests from this
# site only, and nothing inline, so HTML that a name, a message or a cell value managed to inject could not
# run. Inline handlers and style="" attributes are refused too: the pages use static/js/studio.js and
# classes instead. (Django's admin emits inline CSS only for a ModelAdmin with actions_on_top and
# actions_on_bottom both False: keep one of them on.)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "access.web.menus",  # the header's role and warehouse menus
                "studio.navigation.navigation",  # the left navigation: sections, the current one, Admin
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{DATA_DIR / 'studio.sqlite3'}"), conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A fresh clone has no var/ yet, and SQLite will not create the directory of its file.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Workers, the web app and the inference server share the file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"

# Redis for the RQ queues. Unset: `manage.py runstack` starts an embedded redis-server on this port.
REDIS_URL_IS_EMBEDDED = not envstr("REDIS_URL", "")
EMBEDDED_REDIS_PORT = envint("STUDIO_REDIS_PORT", 6390)
# The embedded Redis asks for this password: workers unpickle what is queued, so a local process that could
# enqueue would run code as them. An operator's REDIS_URL carries its own.
REDIS_PASSWORD = envsecret("STUDIO_REDIS_PASSWORD", DATA_DIR / "redis-password.txt") if REDIS_URL_IS_EMBEDDED else ""
REDIS_URL = (envstr("REDIS_URL", "")
             or f"redis://:{quote(REDIS_PASSWORD, safe='')}@127.0.0.1:{EMBEDDED_REDIS_PORT}/0")
RQ_QUEUES = {"default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 24 * 3600}}
# A training run saves its state this often (seconds) under MODEL_STORE/checkpoints, so a job whose worker
# was stopped or killed carries on from there instead of starting over. 0 saves after every step.
CHECKPOINT_INTERVAL_S = envint("STUDIO_CHECKPOINT_INTERVAL_S", 60)
# Finished jobs stay in FINETUNE('SHOW') and the Jobs list this many days, then the workers collect them with
# their leftover files (jobs/retention.py). Two weeks: a job that failed on Friday is still there to read after
# a week away, and the list stays short; the model a job registered is never collected with it.
JOB_RETENTION_DAYS = envint("STUDIO_JOB_RETENTION_DAYS", 14)
# How often (seconds) one of the workers runs that collection, between two jobs.
JOB_COLLECTION_INTERVAL_S = envint("STUDIO_JOB_COLLECTION_INTERVAL_S", 3600)
if JOB_RETENTION_DAYS < 1 or JOB_COLLECTION_INTERVAL_S < 1:
    raise ImproperlyConfigured("STUDIO_JOB_RETENTION_DAYS and STUDIO_JOB_COLLECTION_INTERVAL_S must be at least 1")

# The embedded inference server that `runstack` starts for the default base model.
INFERENCE_HOST = envstr("STUDIO_INFERENCE_HOST", "127.0.0.1")
INFERENCE_PORT = envint("STUDIO_INFERENCE_PORT", 8081)
INFERENCE_TIMEOUT = envint("STUDIO_INFERENCE_TIMEOUT", 300)
# What the web app and workers send every inference server as `Authorization: Bearer`: the embedded server
# refuses any request without it, and docker/compose.yaml makes it TGI's API_KEY.
INFERENCE_TOKEN = envsecret("STUDIO_INFERENCE_TOKEN", DATA_DIR / "inference-token.txt")
DEFAULT_BASE_MODEL = envstr("STUDIO_DEFAULT_BASE_MODEL", "smollm2-135m")
# How long COMPLETE waits (seconds) for a fine-tuned model another caller is still loading on its server.
DEPLOYMENT_WAIT_S = envint("STUDIO_DEPLOYMENT_WAIT_S", 30)
# The HTTP gateway (/v1/chat/completions and /api/v2/cortex/inference:complete), per user; 0 turns a limit off.
# Requests one user may start per minute, both APIs together (429 with Retry-After above it).
GATEWAY_REQUESTS_PER_MINUTE = envint("STUDIO_GATEWAY_REQUESTS_PER_MINUTE", 60)
# Input plus output tokens one user may spend per minute, both APIs together (429 above it).
GATEWAY_TOKENS_PER_MINUTE = envint("STUDIO_GATEWAY_TOKENS_PER_MINUTE", 0)
# Largest request body, in bytes (413 above it).
GATEWAY_MAX_REQUEST_BYTES = envint("STUDIO_GATEWAY_MAX_REQUEST_BYTES", 1024 * 1024)
# Largest max_tokens a request may ask for (400 above it); without one a request gets COMPLETE's default.
GATEWAY_MAX_TOKENS = envint("STUDIO_GATEWAY_MAX_TOKENS", 4096)
# TGI backend (inference/tgi/, docker/compose.yaml).
# The generated LORA_ADAPTERS list; the tgi service reads it at every start from docker/ mounted at /config.
TGI_ENV_FILE = envpath("STUDIO_TGI_ENV_FILE", BASE_DIR / "docker" / "tgi.env")
# Where MODEL_STORE is mounted inside the TGI container: LORA_ADAPTERS paths are written under it.
TGI_MODEL_STORE = envstr("STUDIO_TGI_MODEL_STORE", "/studio/models")
# Run from BASE_DIR to restart TGI; a plain restart is enough because the tgi service re-reads the env file.
TGI_RESTART_COMMAND = envstr("STUDIO_TGI_RESTART_COMMAND", "docker compose -f docker/compose.yaml restart tgi")
# Seconds a deploy waits for TGI's queued and running requests to finish before it restarts TGI anyway.
TGI_DRAIN_TIMEOUT = envint("STUDIO_TGI_DRAIN_TIMEOUT", 60)
# Seconds for the restart command, then again for /health to answer 200 (TGI loads weights and warms up).
TGI_HEALTH_TIMEOUT = envint("STUDIO_TGI_HEALTH_TIMEOUT", 600)
# vLLM backend (inference/vllm.py): where MODEL_STORE is mounted for the vLLM server, so load_lora_adapter gets
# paths it can open; empty: the same path as here (a vLLM process on this host).
VLLM_MODEL_STORE = envstr("STUDIO_VLLM_MODEL_STORE", "")
# What CURRENT_ACCOUNT() answers.
ACCOUNT_NAME = envstr("STUDIO_ACCOUNT_NAME", "STUDIO")
# The organization this account belongs to: accounts of one organization share and replicate to each other.
ORGANIZATION_NAME = envstr("STUDIO_ORGANIZATION", "STUDIO_ORG")
WEB_PORT = envint("STUDIO_PORT", 8000)
# HTTPS for the web app that runstack (bin/start) serves: a PEM certificate (its chain after it) and its
# private key, both or neither. snowflake.cortex.complete() with a string prompt calls
# https://<host>/api/v2/cortex/inference:complete, https and port 443 whatever the connection said, so
# that API needs STUDIO_PORT=443 with these.
TLS_CERT = envpath("STUDIO_TLS_CERT", None)
TLS_KEY = envpath("STUDIO_TLS_KEY", None)
if (TLS_CERT is None) != (TLS_KEY is None):
    raise ImproperlyConfigured("Set both STUDIO_TLS_CERT and STUDIO_TLS_KEY to serve HTTPS, or neither")
for _tls_file in (TLS_CERT, TLS_KEY):
    if _tls_file is not None and not _tls_file.is_file():
        raise ImproperlyConfigured(f"{_tls_file} (STUDIO_TLS_CERT / STUDIO_TLS_KEY) is not a readable file")
# Served only over HTTPS, the browser must not send the session's cookies over plain HTTP either.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = TLS_CERT is not None
# Snowflake's client protocol (client_protocol/: snowflake.connector.connect(), Snowpark, snowflake-ml).
# Lifetimes of a session token (the client renews it with the master token) and of the master token.
CLIENT_SESSION_SECONDS = envint("STUDIO_CLIENT_SESSION_SECONDS", 3600)
CLIENT_MASTER_SESSION_SECONDS = envint("STUDIO_CLIENT_MASTER_SESSION_SECONDS", 4 * 3600)
# Failed sign-ins one login name may make in the window before every sign-in of it is refused until
# the window passes (four times as many from one address).
CLIENT_LOGIN_MAX_FAILURES = envint("STUDIO_CLIENT_LOGIN_MAX_FAILURES", 5)
CLIENT_LOGIN_LOCKOUT_SECONDS = envint("STUDIO_CLIENT_LOGIN_LOCKOUT_SECONDS", 900)
# Largest request body, after gzip (bound arrays of an executemany can be large).
CLIENT_MAX_REQUEST_BYTES = envint("STUDIO_CLIENT_MAX_REQUEST_BYTES", 64 * 1024 * 1024)
# Seconds a synchronous query is waited for before the client is told to poll for its result.
CLIENT_QUERY_WAIT_SECONDS = envint("STUDIO_CLIENT_QUERY_WAIT_SECONDS", 45)
# Results as Arrow (fetch_pandas_all() needs it) or JSON, unless the session asks otherwise.
CLIENT_RESULT_FORMAT = envstr("STUDIO_CLIENT_RESULT_FORMAT", "arrow")
# A result past this many rows, or this much cell text, is answered in chunks the client fetches by GET
# from signed URLs that last CLIENT_RESULT_CHUNK_SECONDS (Snowflake's presigned URLs last 6 hours).
CLIENT_RESULT_CHUNK_ROWS = envint("STUDIO_CLIENT_RESULT_CHUNK_ROWS", 10_000)
CLIENT_RESULT_CHUNK_BYTES = envint("STUDIO_CLIENT_RESULT_CHUNK_BYTES", 8 * 1024 * 1024)
CLIENT_RESULT_CHUNK_SECONDS = envint("STUDIO_CLIENT_RESULT_CHUNK_SECONDS", 6 * 3600)
# The administrator `manage.py bootstrap` creates; without a password, one is generated and kept in var/.
# (Django's error pages mask settings whose names hold PASSWORD.)
ADMIN_USER = envstr("STUDIO_ADMIN_USER", "admin")
ADMIN_PASSWORD = envstr("STUDIO_ADMIN_PASSWORD", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    # httpx logs every request to the inference server at INFO: noise in `manage.py sql` output.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "httpx": {"level": "WARNING"}, "httpx2": {"level": "WARNING"}},
}
