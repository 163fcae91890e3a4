"""Settings for every environment, read from the process environment (12-factor).

With no DATABASE_URL / REDIS_URL the service runs on an embedded default (SQLite, tasks executed in
process, local-memory cache) so that the demo starts on a laptop with nothing but Python. Production is
the same code with those variables set.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from config.env import ImproperlyConfiguredEnv, env_bool, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("RECSVC_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", False)
_INSECURE_DEV_KEY = "insecure-dev-key-only-for-the-embedded-demo"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", _INSECURE_DEV_KEY)
if env_bool("RECSVC_PRODUCTION", False) and SECRET_KEY == _INSECURE_DEV_KEY:
    raise ImproperlyConfiguredEnv("DJANGO_SECRET_KEY must be set when RECSVC_PRODUCTION is on")
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
    "tenants",
    "recs",
    "training.registry",
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
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", schemes=("postgres", "postgresql", "sqlite"))
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=600, conn_health_checks=True)}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {"timeout": 30},
        }
    }
IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, broker ---------------------------------------------------------------------------------
REDIS_URL = env_url("REDIS_URL", schemes=("redis", "rediss"))
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
    "training.tasks.*": {"queue": "training"},
    "serving.tasks.*": {"queue": "serving"},
}
CELERY_BEAT_SCHEDULE: dict = {}

# --- Auth, dashboard -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
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
    "DEFAULT_PARSER_CLASSES": ["recs.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "recs.api.pagination.CursorByIdPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "recs.api.problems.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Recommendation service API",
    "DESCRIPTION": "Multi-tenant recommendations for online shops. Authenticate with "
    "`Authorization: Bearer <api key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# Requests/minute per API key; plans may later raise it.
RECSVC_RATE_LIMIT_PER_MINUTE = env_int("RECSVC_RATE_LIMIT_PER_MINUTE", 6000, minimum=1)
# JSON bodies above this answer 413 (a 10,000-event batch is about 2.5 MB).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("RECSVC_MAX_JSON_BODY_BYTES", 16 * 1024 * 1024, minimum=1024)
RECSVC_MAX_BULK_ROWS = env_int("RECSVC_MAX_BULK_ROWS", 10_000, minimum=1)
RECSVC_MAX_IMPORT_BYTES = env_int("RECSVC_MAX_IMPORT_BYTES", 20 * 1024**3, minimum=1024)
RECSVC_IMPORT_DIR = Path(env_str("RECSVC_IMPORT_DIR", str(VAR_DIR / "imports")))
RECSVC_ARTIFACT_DIR = Path(env_str("RECSVC_ARTIFACT_DIR", str(VAR_DIR / "artifacts")))
# Clock skew tolerated on event timestamps sent by shops.
RECSVC_MAX_FUTURE_SKEW_SECONDS = env_int("RECSVC_MAX_FUTURE_SKEW_SECONDS", 300, minimum=0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("RECSVC_LOG_LEVEL", "WARNING")},
}

# --- Training --------------------------------------------------------------------------------------
# A new model version may score at most this much (relative) below the active one on the key metric.
RECSVC_ACTIVATION_TOLERANCE = env_int("RECSVC_ACTIVATION_TOLERANCE_PCT", 5, minimum=0, maximum=100) / 100
# A scheduled retrain is skipped when fewer new events than this arrived since the last version.
RECSVC_RETRAIN_MIN_NEW_EVENTS = env_int("RECSVC_RETRAIN_MIN_NEW_EVENTS", 1000, minimum=0)
RECSVC_MIN_TRAINING_EVENTS = env_int("RECSVC_MIN_TRAINING_EVENTS", 100, minimum=1)
