"""Settings for every environment, read from the process environment (12-factor).

With no DATABASE_URL / REDIS_URL the service runs on an embedded default (SQLite, tasks executed in
process, local-memory cache) so that the demo starts on a laptop with nothing but Python. Production is
the same code with those variables set.
"""

from __future__ import annotations

import re
from pathlib import Path

import dj_database_url
from celery.schedules import crontab

from config.env import (
    ImproperlyConfiguredEnv,
    derive_fernet_key,
    env_bool,
    env_fernet_keys,
    env_identifier,
    env_int,
    env_list,
    env_prefixed,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("RECSVC_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)
# --- Secrets ---------------------------------------------------------------------------------------
# The embedded demo is the service with neither PostgreSQL nor Redis (`make demo` on a laptop, one process
# on loopback). Anything else is an install that others reach: it never runs on the key printed below,
# which anyone can read here and which would let them forge sessions and password-reset tokens.
RECSVC_EMBEDDED_DEMO = env_str("DATABASE_URL") is None and env_str("REDIS_URL") is None
_INSECURE_DEV_KEY = "insecure-dev-key-only-for-the-embedded-demo"
_WHY_KEYS = " whenever DATABASE_URL or REDIS_URL is set (only the embedded demo runs on built-in keys)"
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if SECRET_KEY is None or SECRET_KEY == _INSECURE_DEV_KEY:
    if not RECSVC_EMBEDDED_DEMO:
        raise ImproperlyConfiguredEnv(
            f"DJANGO_SECRET_KEY must be set to a long random value of your own{_WHY_KEYS}; make one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    SECRET_KEY = _INSECURE_DEV_KEY
# Secrets stored in the database (shop webhook secrets) are encrypted with these Fernet keys,
# comma-separated for rotation: the first encrypts, all of them decrypt. Outside the embedded demo they
# must be set: a key derived from DJANGO_SECRET_KEY would fall with it, and rotating that key would make
# the stored secrets unreadable.
RECSVC_FIELD_ENCRYPTION_KEYS = env_fernet_keys(
    "RECSVC_FIELD_ENCRYPTION_KEY",
    default=derive_fernet_key(SECRET_KEY, purpose="recsvc field encryption v1") if RECSVC_EMBEDDED_DEMO else None,
    why_required=_WHY_KEYS,
)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from this origin (/v1/docs works offline)
    "tenants",
    "recs",
    "training.registry",
    "tenants.billing",
    "privacy",
    "experiments",
    "axes",  # dashboard login throttling (the Auth section below)
    "csp",
    "corsheaders",  # CORS for the storefront snippet's publishable keys (tenants/storefront.py)
]

MIDDLEWARE = [
    # First: every request gets its id for the logs (core/logs.py) and is timed for /metrics (core/metrics.py).
    "core.logs.RequestIdMiddleware",
    "core.metrics.MetricsMiddleware",
    # Before anything that can answer (whitenoise, CommonMiddleware): it answers the CORS preflight.
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last: turns a refused login (locked out) into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
APPEND_SLASH = False
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
            # The dashboard's date and duration filters (day, ago, duration), in every template.
            "builtins": ["core.dashboard.formats"],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", schemes=("postgres", "postgresql", "sqlite"))
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=600, conn_health_checks=True)}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Django's backend plus the lazily applied row-level-security tenant setting.
        DATABASES["default"]["ENGINE"] = "tenants.postgres"
        # Statements run through core.postgres are prepared after five executions on a connection
        # (Django's own cursors bind on the client and are never prepared).
        DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 5
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {"timeout": 30},
        }
    }
IS_POSTGRES = DATABASES["default"]["ENGINE"] == "tenants.postgres"
# A pooler between the service and PostgreSQL must keep one server connection per client connection
# (session pooling): the tenant setting and the role are set per session and remembered per process
# (tenants/postgres/base.py), so under transaction or statement pooling a statement could run on a
# server connection holding another client's tenant (ADR 0013). Declare the pooler's mode here.
RECSVC_DB_POOL_MODE = env_str("RECSVC_DB_POOL_MODE", "") or ""
if RECSVC_DB_POOL_MODE not in ("", "none", "session"):
    raise ImproperlyConfiguredEnv(
        f"RECSVC_DB_POOL_MODE={RECSVC_DB_POOL_MODE!r}: only session pooling (or none) is supported, since the"
        " row-level-security tenant setting is per session; set the pooler to pool_mode=session"
    )
# The role the service connects as at run time: the migration grants it row access (tenants/rls.py).
RECSVC_DB_RUNTIME_ROLE = env_str("RECSVC_DB_RUNTIME_ROLE", "recsvc")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, broker ---------------------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss"))
# Redis holds the API key cache, rate limits and the Celery broker: beyond loopback it must require a
# password (AUTH), given in the URL (redis://:password@host:6379/0 or redis://user:password@...).
if REDIS_URL:
    from urllib.parse import urlsplit

    _redis = urlsplit(REDIS_URL)
    if not _redis.password and _redis.hostname not in ("127.0.0.1", "::1", "localhost"):
        raise ImproperlyConfiguredEnv(
            f"REDIS_URL names {_redis.hostname} without a password: require AUTH on that Redis (requirepass)"
            " and give it in the URL, redis://:password@host:6379/0"
        )
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("RECSVC_CACHE_PREFIX", "recsvc"),
            "OPTIONS": {
                # Redis down must degrade (uncached answers, no rate limit), never fail a request.
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
            },
        }
    }
    DJANGO_REDIS_IGNORE_EXCEPTIONS = True
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Redis Cluster: REDIS_URL names one of its nodes, and the cache and the raw client go through redis-py's
# RedisCluster (core/redis_cluster.py). A shop's keys share a slot (their `{T}` hash tag). Celery's Redis
# transport does not speak the cluster protocol: its broker is then a Redis of its own, CELERY_BROKER_URL.
RECSVC_REDIS_CLUSTER = env_bool("RECSVC_REDIS_CLUSTER", False)
if RECSVC_REDIS_CLUSTER:
    if not REDIS_URL or env_str("CELERY_BROKER_URL") is None:
        raise ImproperlyConfiguredEnv(
            "RECSVC_REDIS_CLUSTER=1 needs REDIS_URL (a node of the cluster) and CELERY_BROKER_URL (a Redis outside"
            " the cluster: Celery's transport cannot use one)"
        )
    CACHES["default"]["OPTIONS"]["CONNECTION_FACTORY"] = "core.redis_cluster.ClusterConnectionFactory"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", REDIS_URL is None)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another worker
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "recs.tasks.ingest.*": {"queue": "ingest"},
    # A shop's webhook deliveries never wait behind another shop's file import.
    "recs.integrations.tasks.*": {"queue": "webhooks"},
    "training.tasks.*": {"queue": "training"},
    "serving.tasks.*": {"queue": "serving"},
}
# Every task is time-limited: at the soft limit the task gets SoftTimeLimitExceeded (and records why it
# stopped), at the hard limit its process is killed. Tasks that legitimately run long set their own
# (imports: RECSVC_IMPORT_TIME_LIMIT_S; training runs: hours, training/tasks.py).
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 900, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", CELERY_TASK_SOFT_TIME_LIMIT + 60, minimum=2)
if CELERY_TASK_TIME_LIMIT <= CELERY_TASK_SOFT_TIME_LIMIT:
    raise ImproperlyConfiguredEnv("CELERY_TASK_TIME_LIMIT must be above CELERY_TASK_SOFT_TIME_LIMIT")
CELERY_BEAT_SCHEDULE: dict = {}  # entries are added by the sections below

# --- Auth, dashboard -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes, its database handler: the same on SQLite and PostgreSQL, shared by every
# web process, and not switched off by Redis going away). Its backend comes first, so a locked-out
# address or account is refused before the password's hash is computed.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# Either limit locks: failures from one address (password spraying over many accounts) or against one
# account (guessing from many addresses). A lock lasts the cool-off after the last failure.
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_FAILURE_LIMIT = env_int("RECSVC_LOGIN_FAILURE_LIMIT", 10, minimum=1, maximum=1000)
AXES_COOLOFF_TIME = env_int("RECSVC_LOGIN_LOCKOUT_MINUTES", 15, minimum=1, maximum=24 * 60) / 60  # hours
AXES_RESET_ON_SUCCESS = True
AXES_DISABLE_ACCESS_LOG = True  # failures are kept (and expire); a row per successful login is not needed
AXES_LOCKOUT_CALLABLE = "tenants.dashboard.views.login_locked_out"
AXES_CLIENT_IP_CALLABLE = "tenants.client_ip.client_ip"
AXES_VERBOSE = False
# Proxies in front of the web server that append the client's address to X-Forwarded-For (deploy/nginx:
# one). The client is the address the outermost of them saw; without proxies, REMOTE_ADDR.
RECSVC_TRUSTED_PROXY_COUNT = env_int("RECSVC_TRUSTED_PROXY_COUNT", 0 if RECSVC_EMBEDDED_DEMO else 1, minimum=0)
# Sign-ups from one address per hour (tenants.ratelimit counters).
RECSVC_SIGNUPS_PER_HOUR = env_int("RECSVC_SIGNUPS_PER_HOUR", 5, minimum=1)
# Sign-up sends a confirmation link; the account cannot log in before it is followed. The embedded demo
# prints the mail on the console.
EMAIL_BACKEND = env_str(
    "DJANGO_EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if RECSVC_EMBEDDED_DEMO
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "Recommend <no-reply@localhost>")
# How long a sign-up's confirmation link works (it also ends once followed).
RECSVC_SIGNUP_LINK_HOURS = env_int("RECSVC_SIGNUP_LINK_HOURS", 48, minimum=1, maximum=14 * 24)

# --- Transport, cookies, content security -------------------------------------------------------------
# Outside the embedded demo and DEBUG, the service is reached over HTTPS only (nginx, or a load balancer,
# terminates TLS; gunicorn takes the scheme from its X-Forwarded-Proto: FORWARDED_ALLOW_IPS, so no
# SECURE_PROXY_SSL_HEADER here). The probes stay on plain HTTP for the cluster's health checks.
RECSVC_HTTPS_ONLY = env_bool("RECSVC_HTTPS_ONLY", not (RECSVC_EMBEDDED_DEMO or DEBUG))
SECURE_SSL_REDIRECT = RECSVC_HTTPS_ONLY
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = RECSVC_HTTPS_ONLY
SECURE_HSTS_SECONDS = env_int("RECSVC_HSTS_SECONDS", 31_536_000 if RECSVC_HTTPS_ONLY else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
# A dashboard session ends this long after login (Django's default is two weeks).
SESSION_COOKIE_AGE = env_int("RECSVC_SESSION_HOURS", 8, minimum=1, maximum=12) * 3600
# Every page loads scripts from this origin only (recs/static/dashboard/dashboard.js; the API's
# documentation pages: the sidecar's Swagger UI / ReDoc and Swagger's start-up script as a file of its
# own, config/urls.py): no inline script or handler runs, so injected markup cannot run code. Inline
# style attributes stay allowed (bar widths are computed per row; Swagger UI and ReDoc style inline).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        # Billing's forms answer with a redirect to Stripe's hosted pages.
        "form-action": ["'self'", "https://checkout.stripe.com", "https://billing.stripe.com"],
        "frame-ancestors": ["'none'"],
    },
}
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "dashboard:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve app static files straight from their folders (no collectstatic step for the demo).
WHITENOISE_USE_FINDERS = True

# --- API -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenants.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["tenants.auth.HasTenantScope"],
    "DEFAULT_THROTTLE_CLASSES": ["tenants.ratelimit.ApiKeyRateThrottle"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.CursorByIdPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "core.problems.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Recommendation service API",
    "DESCRIPTION": "Multi-tenant recommendations for online shops. Authenticate with "
    "`Authorization: Bearer <api key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from the drf-spectacular-sidecar package, not a CDN: the docs work offline
    # and under the Content-Security-Policy above.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.add_problem_responses",  # the 4xx problem documents every operation can answer
    ],
}

# CORS, for the storefront snippet only: its paths, no cookies, the origin allowed when it is one of an
# active publishable key's origins (tenants.storefront.cors_enabled); the key's own list is enforced on the
# request itself.
CORS_URLS_REGEX = r"^/v1/(recommendations|popular|events|products/[^/]+/similar)$"
CORS_ALLOWED_ORIGINS: list[str] = []
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_METHODS = ["GET", "POST", "OPTIONS"]
CORS_ALLOW_HEADERS = ["authorization", "content-type"]
CORS_PREFLIGHT_MAX_AGE = 86400

# Requests/minute per API key; plans may later raise it.
RECSVC_RATE_LIMIT_PER_MINUTE = env_int("RECSVC_RATE_LIMIT_PER_MINUTE", 6000, minimum=1)
# JSON bodies above this answer 413 (a 10,000-event batch is about 2.5 MB).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("RECSVC_MAX_JSON_BODY_BYTES", 16 * 1024 * 1024, minimum=1024)
# Platform webhook bodies (Shopify, WooCommerce) above this answer 413 before they are read: a real
# delivery is one resource, far below it (recs/integrations/views.py).
RECSVC_MAX_WEBHOOK_BODY_BYTES = env_int("RECSVC_MAX_WEBHOOK_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)
RECSVC_MAX_BULK_ROWS = env_int("RECSVC_MAX_BULK_ROWS", 10_000, minimum=1)
# A single-event POST commits without waiting for its WAL flush (synchronous_commit off for that one
# transaction): a PostgreSQL crash may lose the events acknowledged in the last ~0.6 s (3 x wal_writer_delay),
# never corrupts anything. Bulk requests and imports always wait for the flush (docs/adr/0004-*).
RECSVC_SINGLE_EVENT_ASYNC_COMMIT = env_bool("RECSVC_SINGLE_EVENT_ASYNC_COMMIT", True)
RECSVC_MAX_IMPORT_BYTES = env_int("RECSVC_MAX_IMPORT_BYTES", 2 * 1024**3, minimum=1024)
RECSVC_IMPORT_DIR = Path(env_str("RECSVC_IMPORT_DIR", str(VAR_DIR / "imports")))
# Per shop: imports queued or running at once, and bytes of upload files held (queued, running and failed
# jobs' files; a failed job's file is kept RECSVC_IMPORT_FAILED_RETENTION_DAYS, then swept by beat).
RECSVC_MAX_CONCURRENT_IMPORTS = env_int("RECSVC_MAX_CONCURRENT_IMPORTS", 2, minimum=1, maximum=100)
RECSVC_IMPORT_QUOTA_BYTES = env_int("RECSVC_IMPORT_QUOTA_BYTES", 20 * 1024**3, minimum=1024)
RECSVC_IMPORT_FAILED_RETENTION_DAYS = env_int("RECSVC_IMPORT_FAILED_RETENTION_DAYS", 7, minimum=0, maximum=365)
RECSVC_IMPORT_MAX_CSV_COLUMNS = env_int("RECSVC_IMPORT_MAX_CSV_COLUMNS", 1000, minimum=10, maximum=10_000)
# An import's soft time limit (its hard limit is a minute later); the job then fails, with what it stored.
RECSVC_IMPORT_TIME_LIMIT_S = env_int("RECSVC_IMPORT_TIME_LIMIT_S", 3600, minimum=10, maximum=7 * 86_400)
# A job still queued this long (its message was lost, or no worker takes the ingest queue) is failed.
RECSVC_IMPORT_QUEUED_TIMEOUT_S = env_int("RECSVC_IMPORT_QUEUED_TIMEOUT_S", 86_400, minimum=60, maximum=30 * 86_400)
CELERY_TASK_ROUTES["recs.tasks.ingest.sweep_imports"] = {"queue": "default"}  # bookkeeping: not behind imports
CELERY_BEAT_SCHEDULE["recs-sweep-imports"] = {"task": "recs.tasks.ingest.sweep_imports", "schedule": 3600.0}
RECSVC_ARTIFACT_DIR = Path(env_str("RECSVC_ARTIFACT_DIR", str(VAR_DIR / "artifacts")))
# Model artifacts in S3-compatible object storage (AWS S3, MinIO, Ceph, R2...): `s3://bucket/prefix`. Unset:
# RECSVC_ARTIFACT_DIR is the store. Credentials and region come the standard AWS way (AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, instance roles); the endpoint URL names a non-AWS store.
# Processes that load a version keep a local copy under RECSVC_ARTIFACT_CACHE_DIR (training/registry/storage.py).
RECSVC_ARTIFACT_STORE = env_url("RECSVC_ARTIFACT_STORE", schemes=("s3",))
if RECSVC_ARTIFACT_STORE is not None and not re.fullmatch(
    r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9!_.*'()/-]*)?", RECSVC_ARTIFACT_STORE
):
    raise ImproperlyConfiguredEnv(
        f"RECSVC_ARTIFACT_STORE must be s3://bucket or s3://bucket/prefix, got {RECSVC_ARTIFACT_STORE!r}"
    )
RECSVC_ARTIFACT_S3_ENDPOINT_URL = env_url("RECSVC_ARTIFACT_S3_ENDPOINT_URL", schemes=("http", "https"))
RECSVC_ARTIFACT_CACHE_DIR = Path(env_str("RECSVC_ARTIFACT_CACHE_DIR", str(VAR_DIR / "artifact-cache")))
# Keys that sign the object store's artifact manifests (HMAC-SHA256, training/registry/storage.py).
# Comma-separated for rotation: the first signs, all verify. The default derives from SECRET_KEY, which
# only the embedded demo may keep: set a key of its own in production (docs/deployment.md).
RECSVC_ARTIFACT_SIGNING_KEYS = env_list(
    "RECSVC_ARTIFACT_SIGNING_KEY", [derive_fernet_key(SECRET_KEY, purpose="recsvc artifact manifest signing v1")]
)
# Serving: how long an answer is reused, and how stale a process's view of the active version may be.
RECSVC_RECS_CACHE_SECONDS = env_int("RECSVC_RECS_CACHE_SECONDS", 30, minimum=0, maximum=86_400)
RECSVC_ACTIVE_VERSION_TTL_SECONDS = env_int("RECSVC_ACTIVE_VERSION_TTL_SECONDS", 5, minimum=1, maximum=3600)
# Attribution (recs/attribution/): every served answer goes to a Redis stream of about
# RECSVC_ANSWER_STREAM_MAXLEN entries (the backlog while no worker stores it; older ones are dropped), and a
# beat task stores it in batches every RECSVC_ANSWER_STORE_INTERVAL_S. RECSVC_RECORD_ANSWERS=0: record nothing.
RECSVC_RECORD_ANSWERS = env_bool("RECSVC_RECORD_ANSWERS", True)
RECSVC_ANSWER_STREAM_MAXLEN = env_int("RECSVC_ANSWER_STREAM_MAXLEN", 500_000, minimum=1000, maximum=100_000_000)
RECSVC_ANSWER_STORE_INTERVAL_S = env_int("RECSVC_ANSWER_STORE_INTERVAL_S", 2, minimum=1, maximum=3600)
CELERY_BEAT_SCHEDULE["recs-store-served-answers"] = {
    "task": "recs.tasks.attribution.store_served_answers",
    "schedule": float(RECSVC_ANSWER_STORE_INTERVAL_S),
    # Runs not started by then are skipped: the next one drains the same stream.
    "options": {"expires": float(RECSVC_ANSWER_STORE_INTERVAL_S)},
}
# Experiments (experiments/): every 15 minutes a beat task writes the experiments' daily statistics
# snapshots; the results pages read only those.
CELERY_BEAT_SCHEDULE["experiments-snapshot-stats"] = {
    "task": "experiments.tasks.snapshot_experiments", "schedule": 900.0, "options": {"expires": 900.0},
}
# An experiment's goal and its secondary metrics choose from one list: one enum in the OpenAPI document.
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
    {"ExperimentMetricEnum": "experiments.catalog.GOAL_METRICS"}
)
# Product rows a serving process keeps for candidates (serving/candidate_rows.py; about 0.8 KB each; 0: none),
# and how long at most, should a change's notice be lost (serving/catalog_changes.py).
RECSVC_CANDIDATE_ROWS = env_int("RECSVC_CANDIDATE_ROWS", 100_000, minimum=0, maximum=10_000_000)
RECSVC_CANDIDATE_ROWS_MAX_AGE_S = env_int("RECSVC_CANDIDATE_ROWS_MAX_AGE_S", 600, minimum=1, maximum=86_400)
# Threads of each compute pool (torch, OpenMP, OpenBLAS) in a web process (config/wsgi.py): one, since
# workers already fill the cores.
RECSVC_SERVING_COMPUTE_THREADS = env_int("RECSVC_SERVING_COMPUTE_THREADS", 1, minimum=1, maximum=256)
# ANN shard servers (serving/shard_server.py; docs/serving.md "Serving from shards"): slice i of each sharded
# version's item index is searched at RECSVC_ANN_SHARD_SERVERS[i] (host:port, comma-separated). A version with at
# least RECSVC_ANN_SHARD_MIN_ITEMS items gets its slices when it is prepared and is searched through them (a
# shard that does not answer within the timeout is left out of the answer, and says so); below, or with no
# servers, in process. The secret signs every request and answer (HMAC-SHA256) and must match the servers'.
RECSVC_ANN_SHARD_SERVERS = env_list("RECSVC_ANN_SHARD_SERVERS", [])
RECSVC_ANN_SHARD_SECRET = env_str("RECSVC_ANN_SHARD_SECRET", "") or ""
if RECSVC_ANN_SHARD_SERVERS and len(RECSVC_ANN_SHARD_SECRET) < 32:
    raise ImproperlyConfiguredEnv("RECSVC_ANN_SHARD_SERVERS needs RECSVC_ANN_SHARD_SECRET (at least 32 characters)")
RECSVC_ANN_SHARD_MIN_ITEMS = env_int("RECSVC_ANN_SHARD_MIN_ITEMS", 1_000_000, minimum=0)
RECSVC_ANN_SHARD_TIMEOUT_MS = env_int("RECSVC_ANN_SHARD_TIMEOUT_MS", 500, minimum=1, maximum=60_000)
# A serving process's memory budget for one version's item-embedding table (0: none): a larger table is stored
# as row shards when the version is prepared and read through memory maps within the budget (serving/shards.py).
RECSVC_SERVING_TABLE_BUDGET_BYTES = env_int("RECSVC_SERVING_TABLE_BUDGET_BYTES", 0, minimum=0)
# The ranker's online item features (serving/online_features.py): each active version's item snapshot is
# rebuilt on the `serving` queue this often, which bounds the staleness of item popularity when serving.
RECSVC_ONLINE_FEATURES_REFRESH_S = env_int("RECSVC_ONLINE_FEATURES_REFRESH_S", 300, minimum=10, maximum=86_400)
CELERY_BEAT_SCHEDULE["serving-refresh-online-features"] = {
    "task": "serving.tasks.refresh_online_features",
    "schedule": float(RECSVC_ONLINE_FEATURES_REFRESH_S),
}
# Batch precompute (serving/prepare.py): after each activation and nightly at this hour (UTC), the answers
# of the customers with events in the trailing N days (at most this many, most recent first) are cached.
RECSVC_PRECOMPUTE_ACTIVE_DAYS = env_int("RECSVC_PRECOMPUTE_ACTIVE_DAYS", 7, minimum=1, maximum=365)
RECSVC_PRECOMPUTE_MAX_CUSTOMERS = env_int("RECSVC_PRECOMPUTE_MAX_CUSTOMERS", 10_000, minimum=0, maximum=10_000_000)
RECSVC_PRECOMPUTE_HOUR_UTC = env_int("RECSVC_PRECOMPUTE_HOUR_UTC", 3, minimum=0, maximum=23)
CELERY_BEAT_SCHEDULE["serving-precompute-nightly"] = {
    "task": "serving.tasks.precompute_all_tenants",
    "schedule": crontab(hour=RECSVC_PRECOMPUTE_HOUR_UTC, minute=0),
}
# Clock skew tolerated on event timestamps sent by shops.
RECSVC_MAX_FUTURE_SKEW_SECONDS = env_int("RECSVC_MAX_FUTURE_SKEW_SECONDS", 300, minimum=0)

# --- Logs, metrics, error reports (docs/deployment.md#operations) ----------------------------------------
# One JSON object per line outside the embedded demo, each with the request id and the shop (core/logs.py).
RECSVC_LOG_FORMAT = env_str("RECSVC_LOG_FORMAT", "text" if RECSVC_EMBEDDED_DEMO else "json")
if RECSVC_LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfiguredEnv(f"RECSVC_LOG_FORMAT must be json or text, got {RECSVC_LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "core.logs.ContextFilter", "shop": "tenants.context.current_tenant_setting"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(shop)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [request %(request_id)s shop %(shop)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["context"], "formatter": RECSVC_LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": env_str("RECSVC_LOG_LEVEL", "WARNING")},
    # One line per request (method, path, status, duration): off by default, the proxy logs requests too.
    "loggers": {"recsvc.request": {"level": "INFO" if env_bool("RECSVC_ACCESS_LOG", False) else "WARNING"}},
}
# /metrics (core/metrics.py): with a token, only `Authorization: Bearer <token>`; without, only requests that
# did not come through the proxy. The collectors run at each scrape.
RECSVC_METRICS_TOKEN = env_str("RECSVC_METRICS_TOKEN", "") or ""
RECSVC_METRICS_COLLECTORS = ["core.metrics.QueueLengths", "config.metrics.ModelVersions"]
# Error reports to Sentry (its Django and Celery integrations), only when a DSN is given.
SENTRY_DSN = env_str("SENTRY_DSN")
if SENTRY_DSN:
    import sentry_sdk

    sentry_sdk.init(
        dsn=SENTRY_DSN,
        environment=env_str("SENTRY_ENVIRONMENT", "production"),
        traces_sample_rate=env_int("SENTRY_TRACES_SAMPLE_PERCENT", 0, minimum=0, maximum=100) / 100,
        send_default_pii=False,  # no addresses, cookies or user names leave for Sentry
    )

# --- Training --------------------------------------------------------------------------------------
# A new model version may score at most this much (relative) below the active one on the key metric.
RECSVC_ACTIVATION_TOLERANCE = env_int("RECSVC_ACTIVATION_TOLERANCE_PCT", 5, minimum=0, maximum=100) / 100
# A scheduled retrain is skipped when fewer new events than this arrived since the last version.
RECSVC_RETRAIN_MIN_NEW_EVENTS = env_int("RECSVC_RETRAIN_MIN_NEW_EVENTS", 1000, minimum=0)
RECSVC_MIN_TRAINING_EVENTS = env_int("RECSVC_MIN_TRAINING_EVENTS", 100, minimum=1)
# A run whose worker has not beaten for this long is marked failed ("worker lost"); workers beat five
# times per timeout from a thread beside the training (training/registry/reaper.py).
RECSVC_TRAINING_HEARTBEAT_TIMEOUT_S = env_int("RECSVC_TRAINING_HEARTBEAT_TIMEOUT_S", 300, minimum=5, maximum=86_400)
# A run still `queued` this long after it was created (its broker message was lost, or no worker takes the
# training queue) gets its message sent once more; still queued one more timeout later, it is marked failed
# so the tenant can train again. Longer than the training queue's normal wait: a re-send is harmless (the
# task claims a run once) but a failed run has to be started again.
RECSVC_QUEUED_RUN_TIMEOUT_S = env_int("RECSVC_QUEUED_RUN_TIMEOUT_S", 3600, minimum=30, maximum=7 * 86_400)
RECSVC_TRAINING_REAPER_EVERY_S = env_int("RECSVC_TRAINING_REAPER_EVERY_S", 60, minimum=5, maximum=3600)
RECSVC_RETRAIN_CHECK_EVERY_S = env_int("RECSVC_RETRAIN_CHECK_EVERY_S", 600, minimum=30, maximum=86_400)
# Distributed training (training/distributed/, docs/training.md): a shop named in RECSVC_DISTRIBUTED_SHOPS or
# with at least RECSVC_DISTRIBUTED_MIN_EVENTS events (0: no threshold) trains on RECSVC_TRAINING_PROCESSES
# processes under torchrun (1: never). Tables of RECSVC_SHARD_TABLE_MIN_BYTES or more are sharded (the rest
# are data-parallel) under a planner constraint of RECSVC_TRAINING_PROCESS_MEMORY_BYTES per process;
# RECSVC_SHARDING_TYPES narrows the types the planner may choose (empty: all the device offers).
RECSVC_TRAINING_PROCESSES = env_int("RECSVC_TRAINING_PROCESSES", 2, minimum=1, maximum=1024)
RECSVC_DISTRIBUTED_SHOPS = env_list("RECSVC_DISTRIBUTED_SHOPS", [])
RECSVC_DISTRIBUTED_MIN_EVENTS = env_int("RECSVC_DISTRIBUTED_MIN_EVENTS", 0, minimum=0)
RECSVC_SHARD_TABLE_MIN_BYTES = env_int("RECSVC_SHARD_TABLE_MIN_BYTES", 64 << 20, minimum=0)
RECSVC_TRAINING_PROCESS_MEMORY_BYTES = env_int("RECSVC_TRAINING_PROCESS_MEMORY_BYTES", 8 << 30, minimum=1 << 20)
RECSVC_SHARDING_TYPES = env_list("RECSVC_SHARDING_TYPES", [])
# The beat tasks are quick bookkeeping: on `default`, never behind hour-long runs on the training queue
# (exact task names win over the `training.tasks.*` pattern).
CELERY_TASK_ROUTES["training.tasks.reap_lost_runs"] = {"queue": "default"}
CELERY_TASK_ROUTES["training.tasks.retrain_due_tenants"] = {"queue": "default"}
# ImportJob also has `status` and `kind` fields: name the registry's enums in the OpenAPI document.
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
    {
        "ModelVersionStatusEnum": "training.registry.models.ModelVersion.Status",
        "ModelVersionKindEnum": "training.registry.models.ModelVersion.Kind",
    }
)
CELERY_BEAT_SCHEDULE["training-reap-lost-runs"] = {
    "task": "training.tasks.reap_lost_runs",
    "schedule": float(RECSVC_TRAINING_REAPER_EVERY_S),
}
CELERY_BEAT_SCHEDULE["training-retrain-due-tenants"] = {
    "task": "training.tasks.retrain_due_tenants",
    "schedule": float(RECSVC_RETRAIN_CHECK_EVERY_S),
}

# --- Privacy (privacy/, docs/privacy.md) -----------------------------------------------------------
# Cross-shop releases: each costs RECSVC_PRIVACY_RELEASE_EPSILON to every contributing shop, whose customers
# may lose at most RECSVC_PRIVACY_EPSILON_PER_WINDOW per calendar month; one customer counts for at most
# RECSVC_PRIVACY_MAX_KEYS_PER_CUSTOMER keys, one shop for at most RECSVC_PRIVACY_SHOP_CAP per key.
RECSVC_PRIVACY_EPSILON_PER_WINDOW = float(env_str("RECSVC_PRIVACY_EPSILON_PER_WINDOW", "8"))
RECSVC_PRIVACY_DELTA_PER_WINDOW = float(env_str("RECSVC_PRIVACY_DELTA_PER_WINDOW", "1e-6"))
RECSVC_PRIVACY_RELEASE_EPSILON = float(env_str("RECSVC_PRIVACY_RELEASE_EPSILON", "1"))
if not 0 < RECSVC_PRIVACY_RELEASE_EPSILON <= RECSVC_PRIVACY_EPSILON_PER_WINDOW or RECSVC_PRIVACY_DELTA_PER_WINDOW < 0:
    raise ImproperlyConfiguredEnv(
        "RECSVC_PRIVACY_RELEASE_EPSILON must be positive and at most RECSVC_PRIVACY_EPSILON_PER_WINDOW,"
        " and RECSVC_PRIVACY_DELTA_PER_WINDOW at least 0"
    )
RECSVC_PRIVACY_MAX_KEYS_PER_CUSTOMER = env_int("RECSVC_PRIVACY_MAX_KEYS_PER_CUSTOMER", 10, minimum=1, maximum=1000)
RECSVC_PRIVACY_SHOP_CAP = env_int("RECSVC_PRIVACY_SHOP_CAP", 200, minimum=1, maximum=10_000_000)
# The shared cold-start model (privacy/shared_model.py): one Opacus DP-SGD run a month, on the 28th (most of
# the month's data), costing each contributing shop this (epsilon, delta) of its window.
RECSVC_PRIVACY_SHARED_MODEL_EPSILON = float(env_str("RECSVC_PRIVACY_SHARED_MODEL_EPSILON", "2"))
RECSVC_PRIVACY_SHARED_MODEL_DELTA = float(env_str("RECSVC_PRIVACY_SHARED_MODEL_DELTA", "1e-7"))
if not 0 < RECSVC_PRIVACY_SHARED_MODEL_EPSILON <= RECSVC_PRIVACY_EPSILON_PER_WINDOW or not (
    0 < RECSVC_PRIVACY_SHARED_MODEL_DELTA <= RECSVC_PRIVACY_DELTA_PER_WINDOW
):
    raise ImproperlyConfiguredEnv(
        "RECSVC_PRIVACY_SHARED_MODEL_EPSILON and _DELTA must be positive and within the window's budgets"
    )
CELERY_BEAT_SCHEDULE["privacy-train-shared-model"] = {
    "task": "privacy.tasks.train_shared_model", "schedule": crontab(day_of_month=28, hour=3, minute=0),
}
# CPU-heavy like a training run: on the training queue, never in front of the default queue's bookkeeping.
CELERY_TASK_ROUTES["privacy.tasks.train_shared_model"] = {"queue": "training"}
# The aggregate releases (popularity of products and of categories, the 7-day trend, co-purchase), each once a
# month (a second run in the month releases nothing): 4 x RECSVC_PRIVACY_RELEASE_EPSILON plus the shared model
# fit the default budget. On the 28th, an hour before the shared model. Long scans of events, not bookkeeping:
# on the training queue too.
CELERY_BEAT_SCHEDULE["privacy-release-aggregates"] = {
    "task": "privacy.tasks.release_aggregates", "schedule": crontab(day_of_month=28, hour=2, minute=0),
}
CELERY_TASK_ROUTES["privacy.tasks.release_aggregates"] = {"queue": "training"}

# --- Billing (Stripe) ------------------------------------------------------------------------------
# Without STRIPE_SECRET_KEY every shop stays on its plan and checkout is switched off (the embedded demo).
STRIPE_SECRET_KEY = env_prefixed("STRIPE_SECRET_KEY", ("sk_test_", "sk_live_", "rk_test_", "rk_live_"), secret=True)
STRIPE_WEBHOOK_SECRET = env_prefixed("STRIPE_WEBHOOK_SECRET", ("whsec_",), secret=True)
if bool(STRIPE_SECRET_KEY) != bool(STRIPE_WEBHOOK_SECRET):
    # A key without the webhook secret would take money and never update the shop's plan.
    raise ImproperlyConfiguredEnv("set STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET together, or neither")
# Signed webhook deliveries older than this are refused (replay protection; Stripe's own default).
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env_int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300, minimum=10, maximum=3600)
# A shop whose payment failed keeps its paid plan this long, then is limited to the free quotas.
RECSVC_BILLING_GRACE_DAYS = env_int("RECSVC_BILLING_GRACE_DAYS", 7, minimum=0, maximum=60)
# The `event_name` of the Stripe billing meter that each usage meter reports to.
RECSVC_STRIPE_METER_EVENTS = {
    "recommendations": env_identifier("STRIPE_METER_RECOMMENDATIONS", "recsvc_recommendation_requests"),
    "events": env_identifier("STRIPE_METER_EVENTS", "recsvc_ingested_events"),
}
# Starts every meter event identifier; give each deployment sharing a Stripe account its own (staging, dev).
RECSVC_METER_IDENTIFIER_PREFIX = env_identifier("RECSVC_METER_IDENTIFIER_PREFIX", "recsvc")
if len(RECSVC_METER_IDENTIFIER_PREFIX) > 32:  # Stripe takes identifiers of at most 100 characters
    raise ImproperlyConfiguredEnv("RECSVC_METER_IDENTIFIER_PREFIX must be at most 32 characters")


def _plan(key: str, name: str, price_label: str, recommendations: int, events: int, *, paid: bool) -> dict:
    """One plan: monthly included quotas; paid plans map to a flat Stripe price plus a metered overage
    price per meter (Stripe bills what tenants.billing reports above the included quota)."""
    upper = key.upper()
    return {
        "name": name,
        "price_label": env_str(f"RECSVC_PLAN_{upper}_PRICE_LABEL", price_label),
        "quotas": {
            "recommendations": env_int(f"RECSVC_PLAN_{upper}_RECOMMENDATIONS", recommendations, minimum=0),
            "events": env_int(f"RECSVC_PLAN_{upper}_EVENTS", events, minimum=0),
        },
        "overage": paid,  # False: a hard limit (429 past the quota)
        "stripe_price": env_prefixed(f"STRIPE_PRICE_{upper}", ("price_",)) if paid else None,
        "stripe_overage_prices": {
            meter: env_prefixed(f"STRIPE_PRICE_{upper}_{meter.upper()}", ("price_",))
            for meter in ("recommendations", "events")
        }
        if paid
        else {},
    }


RECSVC_BILLING_PLANS = {
    "free": _plan("free", "Free", "$0", 10_000, 50_000, paid=False),
    "growth": _plan("growth", "Growth", "$99 / month", 1_000_000, 5_000_000, paid=True),
    "scale": _plan("scale", "Scale", "$499 / month", 10_000_000, 50_000_000, paid=True),
}
RECSVC_USAGE_REPORT_SECONDS = env_int("RECSVC_USAGE_REPORT_SECONDS", 600, minimum=60, maximum=3600)
CELERY_BEAT_SCHEDULE["report-usage-to-stripe"] = {
    "task": "tenants.billing.tasks.report_usage",
    "schedule": float(RECSVC_USAGE_REPORT_SECONDS),
}

# --- Store integrations (Shopify, WooCommerce) -------------------------------------------------------
# Webhook secrets are encrypted with RECSVC_FIELD_ENCRYPTION_KEYS (see the top of this file).
SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {}).update(
    {
        "ConnectionStatusEnum": "recs.models.integrations.IntegrationConnection.Status",
        "ConnectionPlatformEnum": "recs.models.integrations.IntegrationConnection.Platform",
        "DeliveryStatusEnum": "recs.models.integrations.WebhookDelivery.Status",
    }
)
