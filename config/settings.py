"""Labelvault settings: read from environment variables only, defaults for embedded mode.

Embedded mode (no variable set): SQLite under var/, a SQLAlchemy/SQLite Celery broker
under var/, and the SeaweedFS S3 gateway that `make run` starts on 127.0.0.1:18433.
Setting DATABASE_URL / CELERY_BROKER_URL / S3_* switches to the full stack. Every
variable is listed, with its meaning, in README.md ("Configuration").
"""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A developer may keep variables in a .env file beside manage.py; the environment wins.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

# --- Core -------------------------------------------------------------------------------

DEBUG = env.bool("DEBUG", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off: set SECRET_KEY to a long random "
            "string (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(50))'`), "
            "or set DEBUG=1 for local development."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])


def _git_commit() -> str:
    """Return the commit of the code being run: GIT_COMMIT, else `git rev-parse HEAD`."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


GIT_COMMIT = env.str("GIT_COMMIT", default="") or _git_commit()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_prometheus",
    "config",
    "storage",
    "workers",
    "datasets",
    "labeling",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.StorageUnavailableMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.site",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'labelvault.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; the busy timeout makes a
    # writer wait for the lock (embedded mode runs web, worker and beat on one file).
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # pytest-django would otherwise use an in-memory database, which a worker process
    # started by a test could not see.
    _db.setdefault("TEST", {})["NAME"] = str(VAR_DIR / "test_labelvault.sqlite3")
elif _db["ENGINE"] in ("django.db.backends.postgresql", "django.contrib.gis.db.backends.postgis"):
    _db.setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    # A reused connection is checked with a round trip before each request's first query:
    # ~6% of the server's CPU on the annotators' lease/submit requests (bench queue).
    # Without it, the first request on a connection PostgreSQL dropped (a restart) fails
    # once and the connection is replaced.
    _db["CONN_HEALTH_CHECKS"] = env.bool("DATABASE_HEALTH_CHECKS", default=False)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Internationalisation ---------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files -----------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
NODE_MODULES = BASE_DIR / "node_modules"
# Front-end packages come from npm (package.json); their built files are served as they
# ship, under vendor/<package>/, without a bundler.
STATICFILES_DIRS = [
    ("vendor/htmx", NODE_MODULES / "htmx.org" / "dist"),
    # Image regions (boxes, polygons): UMD build, global `Annotorious`.
    ("vendor/annotorious", NODE_MODULES / "@annotorious" / "annotorious" / "dist"),
    # Text spans: UMD build, global `RecogitoJS`.
    ("vendor/text-annotator", NODE_MODULES / "@recogito" / "text-annotator" / "dist"),
    ("vendor/chartjs", NODE_MODULES / "chart.js" / "dist"),  # UMD build, global `Chart`.
    # The agreement heat map: registers the "matrix" chart type with the global Chart.
    ("vendor/chartjs-chart-matrix", NODE_MODULES / "chartjs-chart-matrix" / "dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# Uploads over 2.5 MB are spooled here (and imports unpack archives here): the system
# temp folder unless set; it needs room for the largest upload.
FILE_UPLOAD_TEMP_DIR = env.str("FILE_UPLOAD_TEMP_DIR", default="") or None
# Django refuses more than 100 files in one request by default; a browser upload of a
# folder of images easily has thousands.
DATA_UPLOAD_MAX_NUMBER_FILES = env.int("DATA_UPLOAD_MAX_NUMBER_FILES", default=10_000)

# --- Security (checked by `manage.py check --deploy`) -----------------------------------

SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = False
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# --- REST API ---------------------------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]
    + (["rest_framework.renderers.BrowsableAPIRenderer"] if DEBUG else []),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {"login": env.str("LOGIN_THROTTLE_RATE", default="10/min")},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Labelvault API",
    "DESCRIPTION": (
        "Data labelling, vendor batches and content-addressed dataset versions. "
        "Authenticate with `Authorization: Token <key>` (POST /api/v1/auth/token) or a "
        'browser session. Errors are JSON: {"error": code, "detail": message}.'
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI's files come from the drf-spectacular-sidecar package, not a CDN, so the
    # docs work on an offline network.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a `state`: one named enum per set of choices.
    "ENUM_NAME_OVERRIDES": {
        "ImportStateEnum": "datasets.models.Import.State",
        "ExportStateEnum": "datasets.models.Export.State",
    },
}

# --- Object storage (S3 API; SeaweedFS in development, MinIO in production) -------------

S3_ENDPOINT = env.str("S3_ENDPOINT", default="127.0.0.1:18433")
S3_ACCESS_KEY = env.str("S3_ACCESS_KEY", default="labelvault" if DEBUG else "")
S3_SECRET_KEY = env.str("S3_SECRET_KEY", default="labelvault-dev-secret" if DEBUG else "")
if not (S3_ACCESS_KEY and S3_SECRET_KEY):
    raise ImproperlyConfigured(
        "S3_ACCESS_KEY and S3_SECRET_KEY are required when DEBUG is off "
        "(the credentials of the S3/MinIO endpoint at S3_ENDPOINT)."
    )
S3_BUCKET = env.str("S3_BUCKET", default="labelvault")
S3_SECURE = env.bool("S3_SECURE", default=False)
S3_REGION = env.str("S3_REGION", default="us-east-1")
# The address browsers use for presigned URLs when it differs from S3_ENDPOINT (e.g. the
# service name `minio:9000` inside docker compose versus localhost:9000 outside).
S3_PUBLIC_ENDPOINT = env.str("S3_PUBLIC_ENDPOINT", default="")
# Seconds; connect/read timeouts so a dead endpoint answers StorageUnavailable quickly.
S3_TIMEOUT = env.float("S3_TIMEOUT", default=10.0)
S3_PRESIGN_EXPIRY = env.int("S3_PRESIGN_EXPIRY", default=900)  # 15 min, as S3 consoles do
# Multipart part size for streamed uploads: 16 MiB keeps 10,000 parts above 150 GB.
S3_PART_SIZE = env.int("S3_PART_SIZE", default=16 * 1024 * 1024)

# --- Imports ----------------------------------------------------------------------------

# Per-file limit: 100 MB covers camera RAW-sized JPEGs and long documents.
IMPORT_MAX_FILE_BYTES = env.int("IMPORT_MAX_FILE_BYTES", default=100_000_000)
# Image types accepted (sniffed from the bytes by Pillow, not from names).
IMPORT_IMAGE_TYPES = env.list(
    "IMPORT_IMAGE_TYPES",
    default=["image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"],
)
# Pillow's own default (about 89.5 Mpx, a 0.25 GB RGB decode); larger images are refused.
IMPORT_MAX_IMAGE_PIXELS = env.int("IMPORT_MAX_IMAGE_PIXELS", default=89_478_485)
# Archives: most files one upload may hold (a large labelled set; more goes in several imports).
IMPORT_ARCHIVE_MAX_FILES = env.int("IMPORT_ARCHIVE_MAX_FILES", default=100_000)
# Archives: total uncompressed bytes the members may declare, 20 GB (zip-bomb cap).
IMPORT_ARCHIVE_MAX_BYTES = env.int("IMPORT_ARCHIVE_MAX_BYTES", default=20_000_000_000)
# Non-public networks (CIDRs) that URL imports and non-default S3 endpoints may reach;
# empty = public addresses only (no loopback, private, link-local or metadata address).
IMPORT_URL_ALLOWED_NETWORKS = env.list("IMPORT_URL_ALLOWED_NETWORKS", default=[])
# Wall-clock seconds for one URL, redirects included (100 MB at about 1 MB/s).
IMPORT_URL_TIMEOUT = env.float("IMPORT_URL_TIMEOUT", default=120.0)
# Absolute directories under which server folders may be imported; empty = feature off.
IMPORT_FOLDER_ROOTS = env.list("IMPORT_FOLDER_ROOTS", default=[])
# Files per chunk job (and per commit): a 500-file chunk of 20 kB images takes a second or
# two, a 100,000-file import makes 200 chunks for the workers to share, and the fixed
# cost of a job (claim, commit, finish) is spread over many files.
IMPORT_CHUNK_SIZE = env.int("IMPORT_CHUNK_SIZE", default=500)
# Threads of one chunk job that fetch, hash, decode and upload files side by side: the
# work waits on the network or runs in C with the GIL released, so a few threads keep a
# worker process busy while each file waits for its PUT.
IMPORT_THREADS = env.int("IMPORT_THREADS", default=4)

# --- Labelling -------------------------------------------------------------------------

# How long a task slot stays an annotator's without a heartbeat (the page renews it every
# fifth of this). A closed tab holds its slot this long at most.
# The address users reach this server at: exports that give items as URLs (instead of
# embedding the files) start them with it, and it is part of such an export's cache key.
PUBLIC_URL = env.str("PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")

# SQL exports into SQLite write a file on this server: only under this directory.
EXPORT_SQLITE_DIR = env.str("EXPORT_SQLITE_DIR", default=str(VAR_DIR / "sql-exports"))

# Label files (COCO, YOLO zips, Label Studio exports) imported into a project: a COCO file
# of 100k images with 1M boxes is ~300 MB.
LABEL_IMPORT_MAX_BYTES = env.int("LABEL_IMPORT_MAX_BYTES", default=2_000_000_000)

LABELING_LEASE_SECONDS = env.int("LABELING_LEASE_SECONDS", default=300)

# --- Celery -----------------------------------------------------------------------------

CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR / 'broker.sqlite3'}"
)
CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND", default=f"db+sqlite:///{VAR_DIR / 'results.sqlite3'}"
)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="labelvault")
# Reliability: a message is acknowledged only after its task ran, and given back to the
# broker when the worker process dies, so a crash never loses a job.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True  # the Job row is the truth, not the result backend
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis: a message unacknowledged for this long is delivered again. Longer than the
# longest job chunk; the sweeper (below) recovers stale jobs much sooner than this.
# (workers.celery_app drops it for the SQLAlchemy broker, which refuses the option.)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# A running job whose heartbeat is older than this is presumed dead and re-enqueued by
# the sweeper. Workers beat every JOB_HEARTBEAT_SECONDS (ten beats of slack).
JOB_HEARTBEAT_SECONDS = env.float("JOB_HEARTBEAT_SECONDS", default=10.0)
JOB_STALE_AFTER = env.float("JOB_STALE_AFTER", default=120.0)
# A queued job untouched this long (its message lost, e.g. Redis restarted) is sent again.
JOB_REQUEUE_AFTER = env.float("JOB_REQUEUE_AFTER", default=600.0)
JOB_SWEEP_INTERVAL = env.float("JOB_SWEEP_INTERVAL", default=30.0)
# Deliveries before a job that keeps killing its worker is marked failed (poison job).
JOB_MAX_ATTEMPTS = env.int("JOB_MAX_ATTEMPTS", default=5)
# Transient errors (storage or database unreachable) are retried after 2, 4, 8 ... s
# (with jitter), at most 5 minutes apart.
JOB_RETRY_BACKOFF_SECONDS = env.float("JOB_RETRY_BACKOFF_SECONDS", default=2.0)
JOB_RETRY_BACKOFF_MAX_SECONDS = env.float("JOB_RETRY_BACKOFF_MAX_SECONDS", default=300.0)
CELERY_BEAT_SCHEDULE = {
    "jobs-sweep": {
        "task": "workers.jobs_sweep",
        "schedule": timedelta(seconds=JOB_SWEEP_INTERVAL),
    },
}

# --- Metrics ----------------------------------------------------------------------------

PROMETHEUS_EXPORT_MIGRATIONS = False

# --- Logging ----------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
