"""Settings for shelly-monitor.

Every knob comes from the environment (see `.env.example`). With no
environment at all the project runs in its embedded mode: SQLite in WAL mode,
the in-memory channel layer and django-q2 on the ORM broker. Production sets
`DATABASE_URL` (PostgreSQL) and `REDIS_URL` (channel layer and q2 broker).
"""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from shelly_site.prometheus import use_multiprocess_dir

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data")))
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)
DATABASE_URL = env.str("DATABASE_URL", default="")
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if DATABASE_URL and not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Production (DATABASE_URL set, DEBUG=False) needs SECRET_KEY "
            "in the environment or in .env; generate one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    # Embedded mode: make a key once and keep it beside the SQLite file, so
    # sessions survive restarts and nothing secret is in the repository.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        import secrets

        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    SECRET_KEY = key_file.read_text().strip()

# Production: DATABASE_URL set and DEBUG off (the embedded demo is neither).
IS_PRODUCTION = bool(DATABASE_URL) and not DEBUG
# Production answers only to the names it is given (a request for another
# name gets a 400 that says to add it here); the embedded demo answers to any,
# so devices and phones on the LAN reach it by its address.
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] + ([] if IS_PRODUCTION else ["*"])
)
# Only needed when the browser's origin differs from the Host the proxy passes on.
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Security behind TLS ----------------------------------------------------
# The site reaches browsers over https through a reverse proxy that sets
# X-Forwarded-Proto (README, Production). Without the header Django sees
# http, and the admin login failed with "Origin checking failed".
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=IS_PRODUCTION)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=BEHIND_TLS_PROXY)
# Probes ask the server itself, over http on loopback.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=BEHIND_TLS_PROXY)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=BEHIND_TLS_PROXY)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600 if BEHIND_TLS_PROXY else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=BEHIND_TLS_PROXY)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Asking browsers to preload the name is the domain owner's decision, not a default.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "channels",
    # Before django_q: its `qcluster` command replaces django-q2's (prompt stop, see shelly_site/qcluster.py).
    "collector",
    "django_q",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "configs",
    "dashboard",
    "alerts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the dashboard's static files from the one process: the product
    # runs on a LAN box without a separate web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "shelly_site.urls"
ASGI_APPLICATION = "shelly_site.asgi.application"
WSGI_APPLICATION = None

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
                "django.template.context_processors.i18n",
                "dashboard.context_processors.navigation",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
DATABASES = {
    "default": env.db_url_config(DATABASE_URL or f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; IMMEDIATE
    # transactions take the write lock up front so two writers queue on
    # busy_timeout instead of failing with "database is locked" mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": ("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"),
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(DATA_DIR / "test-db.sqlite3")
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASE_IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels and django-q2 -----------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "shelly_site.channel_layer.RedisChannelLayer",
            "CONFIG": {
                # redis-py's default read timeout (5 s) equals channels-redis's
                # blocking receive (BZPOPMIN, 5 s): every idle dashboard socket
                # died with a TimeoutError after 5-10 s. A read must be allowed
                # to outlast the blocking receive.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}],
                "prefix": env.str("CHANNELS_PREFIX", default="asgi"),
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME", default="shelly"),
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": 240,
    "retry": 300,
    "max_attempts": 3,
    "catch_up": False,
    "poll": 1,
    "guard_cycle": 1,
    "scheduler": True,
    "label": "Tasks",
    "ack_failures": True,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- Auth, i18n, static ---------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (admin and dashboard logins alike): after
# LOGIN_FAILURE_LIMIT wrong passwords for one user from one address, that
# pair is locked out for LOGIN_LOCKOUT_MINUTES; other addresses, and other
# users from that address, are not. Behind a proxy the address is the
# client's only if the server is told to trust the proxy's X-Forwarded-For
# (uvicorn does for 127.0.0.1 by default; daphne needs --proxy-headers).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "shelly_site.views.login_locked_out"
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LANGUAGES = [("en", "English"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Europe/Paris")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(DATA_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the apps' static folders too, so a fresh checkout works
# before (or without) collectstatic.
WHITENOISE_USE_FINDERS = True

# --- REST framework -------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Token first: its WWW-Authenticate header makes a request without
    # credentials a 401 (session auth alone would answer 403).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "shelly_site.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Read for staff and API tokens; endpoints that accept writes opt in with
    # shelly_site.api.permissions.ApiWriteAccess.
    "DEFAULT_PERMISSION_CLASSES": ["shelly_site.api.permissions.ApiReadAccess"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # JSON bodies only: a form or multipart body cannot say null, so the
    # schema's nullable fields could not be sent that way (issue 9).
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PAGINATION_CLASS": "shelly_site.api.pagination.ApiCursorPagination",
    "PAGE_SIZE": 500,
    "EXCEPTION_HANDLER": "shelly_site.api.errors.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.AnonRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="120/min"),
        "ingest": env.str("API_THROTTLE_INGEST", default="1200/min"),
    },
}
# Failed authentications per client address (API token, ingest key, device
# WebSocket token) before that address gets 429 / close 4429; empty = off.
API_THROTTLE_FAILED_AUTH = env.str("API_THROTTLE_FAILED_AUTH", default="30/min")
# HTTP batch (§4.2): a body over this many bytes is refused with 413 before parsing.
INGEST_BATCH_MAX_BYTES = env.int("INGEST_BATCH_MAX_BYTES", default=8 * 1024 * 1024)
# Django refuses bodies over this before the batch view can answer 413: let
# every batch up to INGEST_BATCH_MAX_BYTES through (the view reads at most that).
DATA_UPLOAD_MAX_MEMORY_SIZE = max(INGEST_BATCH_MAX_BYTES + 1024, 2_621_440)
SPECTACULAR_SETTINGS = {
    "TITLE": "shelly-monitor API",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get their own components: read-only fields left out, and
    # a required text field says minLength 1 as the serializer enforces.
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Baseline and system treatment share one choice set: one schema name for it.
    "ENUM_NAME_OVERRIDES": {"TreatmentTypeEnum": "configs.models.TreatmentType"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "shelly_site.api.schema.add_error_responses",
    ],
}

# --- Collector ------------------------------------------------------------
COLLECTOR_AUTO_REGISTER = env.bool("COLLECTOR_AUTO_REGISTER", default=not DATABASE_IS_POSTGRES)
COLLECTOR_SERVER_SRC = env.str("COLLECTOR_SERVER_SRC", default="shelly-monitor")
COLLECTOR_MAX_FRAME_BYTES = env.int("COLLECTOR_MAX_FRAME_BYTES", default=64 * 1024)
COLLECTOR_CLOCK_SKEW_SECONDS = env.int("COLLECTOR_CLOCK_SKEW_SECONDS", default=300)
# Hostile-input bounds (§4.1, §4.2); 0 turns a rate limit off.
COLLECTOR_MAX_FRAMES_PER_SECOND = env.float("COLLECTOR_MAX_FRAMES_PER_SECOND", default=50.0)
COLLECTOR_MAX_NEW_DEVICES_PER_MINUTE = env.int("COLLECTOR_MAX_NEW_DEVICES_PER_MINUTE", default=60)
COLLECTOR_MAX_CHANNELS_PER_DEVICE = env.int("COLLECTOR_MAX_CHANNELS_PER_DEVICE", default=16)
# How often an open device socket checks that its token is still enabled.
COLLECTOR_TOKEN_RECHECK_SECONDS = env.float("COLLECTOR_TOKEN_RECHECK_SECONDS", default=3.0)
INGEST_MAX_AGE_DAYS = env.int("INGEST_MAX_AGE_DAYS", default=400)
# How often a connected process writes its in-memory channel state back to
# the database while nothing else is written; it must stay well below every
# channel's stop_timeout so a sweeper never sees a live run as stale.
COLLECTOR_STATE_FLUSH_SECONDS = env.float("COLLECTOR_STATE_FLUSH_SECONDS", default=5.0)
# Database outage (collector.outage, collector.token_cache): samples held in
# memory per process until the database returns, beyond that their rows are
# dropped (counted); devices whose token was validated this long ago may still
# (re)connect while the database is away.
COLLECTOR_OUTAGE_BUFFER_SAMPLES = env.int("COLLECTOR_OUTAGE_BUFFER_SAMPLES", default=200_000)
COLLECTOR_TOKEN_CACHE_SECONDS = env.float("COLLECTOR_TOKEN_CACHE_SECONDS", default=900.0)
# The write-behind stage (collector/writebehind.py): a process's writes are
# flushed as one transaction at most this long after the first one waiting,
# or as soon as this many rows wait. While the database is unreachable what it
# holds is bounded by COLLECTOR_OUTAGE_BUFFER_SAMPLES (collector/outage.py).
COLLECTOR_WRITE_FLUSH_MS = env.int("COLLECTOR_WRITE_FLUSH_MS", default=50)
COLLECTOR_WRITE_FLUSH_ROWS = env.int("COLLECTOR_WRITE_FLUSH_ROWS", default=2000)
COLLECTOR_TIMER_SECONDS = env.float("COLLECTOR_TIMER_SECONDS", default=5.0)
COLLECTOR_SWEEP_SECONDS = env.int("COLLECTOR_SWEEP_SECONDS", default=30)

SHELLY_HOST = env.str("SHELLY_HOST", default="")
SHELLY_PASSWORD = env.str("SHELLY_PASSWORD", default="")
SHELLY_TIMEOUT_MS = env.int("SHELLY_TIMEOUT_MS", default=3000)
POLL_LIVE_SECONDS = env.int("POLL_LIVE_SECONDS", default=10)
POLL_INTERVAL_DATA_SECONDS = env.int("POLL_INTERVAL_DATA_SECONDS", default=300)

# Retention (collector/retention.py): raw rows of `every` channels, then the
# 1-minute rollups charts read beyond the raw window. 0 keeps them forever.
RAW_RETENTION_DAYS = env.int("RAW_RETENTION_DAYS", default=30)
ROLLUP_RETENTION_DAYS = env.int("ROLLUP_RETENTION_DAYS", default=365)
RETENTION_BATCH_ROWS = env.int("RETENTION_BATCH_ROWS", default=5000)
for _name, _low in (("RAW_RETENTION_DAYS", 0), ("ROLLUP_RETENTION_DAYS", 0), ("RETENTION_BATCH_ROWS", 1)):
    if globals()[_name] < _low:
        raise ImproperlyConfigured(f"{_name} must be at least {_low} (got {globals()[_name]}).")
if ROLLUP_RETENTION_DAYS and (not RAW_RETENTION_DAYS or ROLLUP_RETENTION_DAYS < RAW_RETENTION_DAYS):
    raise ImproperlyConfigured(
        f"ROLLUP_RETENTION_DAYS ({ROLLUP_RETENTION_DAYS}) must be 0 (forever) or at least RAW_RETENTION_DAYS "
        f"({RAW_RETENTION_DAYS}, 0 = forever): charts read rollups where the raw rows are gone."
    )

# Provisioning (collector/provisioning.py): the address a Shelly on the plant's
# network uses to reach this server's device WebSocket, e.g.
# wss://monitor.example.org (the path /ws/shelly/<token>/ is added), and the
# CA the device checks a wss:// server with ("ca.pem": its built-in bundle,
# right for a public certificate; "user_ca.pem": one uploaded to the device).
PUBLIC_WS_URL = env.str("PUBLIC_WS_URL", default="")
SHELLY_WS_SSL_CA = env.str("SHELLY_WS_SSL_CA", default="ca.pem")
# How long provisioning waits for the device to connect after its reboot.
PROVISION_CONFIRM_SECONDS = env.float("PROVISION_CONFIRM_SECONDS", default=30.0)

# --- Metrics and health ---------------------------------------------------
# When set, /metrics and the detail of /healthz (checks, device ids) need
# `Authorization: Bearer <token>`; /healthz still answers ok/degraded to anyone.
MONITORING_TOKEN = env.str("MONITORING_TOKEN", default="")
# A directory shared by the web, worker and poller processes makes /metrics
# add up all of them (shelly_site/prometheus.py); empty: each process alone.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
use_multiprocess_dir(PROMETHEUS_MULTIPROC_DIR)  # before any metric is created

# --- Dashboard ------------------------------------------------------------
# How often an open dashboard re-reads changed channel states from the
# database (samples of processes the channel layer does not reach, e.g. the
# embedded poller with the in-memory layer).
# --- Alerts and notifiers (SPEC §8) -------------------------------------------
# ALERT_POWER_W set → a default high_power rule on every channel (`manage.py setup_alerts`, and at worker start).
ALERT_POWER_W = env.float("ALERT_POWER_W", default=None)
ALERT_SUSTAIN_SECONDS = env.int("ALERT_SUSTAIN_SECONDS", default=120)
ALERT_COOLDOWN_SECONDS = env.int("ALERT_COOLDOWN_SECONDS", default=900)
# Samples older than this (a batch replaying the past) fire nothing unless the rule asks.
ALERT_MAX_SAMPLE_AGE_SECONDS = env.int("ALERT_MAX_SAMPLE_AGE_SECONDS", default=600)
ALERT_RULES_REFRESH_SECONDS = env.float("ALERT_RULES_REFRESH_SECONDS", default=10.0)
NOTIFIER_TIMEOUT_SECONDS = env.float("NOTIFIER_TIMEOUT_SECONDS", default=5.0)
NOTIFIER_MAX_ATTEMPTS = env.int("NOTIFIER_MAX_ATTEMPTS", default=4)
NOTIFIER_BACKOFF_SECONDS = env.float("NOTIFIER_BACKOFF_SECONDS", default=2.0)
HOMEBRIDGE_API_URL = env.str("HOMEBRIDGE_API_URL", default="")
HOMEBRIDGE_API_TOKEN = env.str("HOMEBRIDGE_API_TOKEN", default="")
HOMEBRIDGE_API_USER = env.str("HOMEBRIDGE_API_USER", default="")
HOMEBRIDGE_API_PASSWORD = env.str("HOMEBRIDGE_API_PASSWORD", default="")
HOMEBRIDGE_ACCESSORY_ID = env.str("HOMEBRIDGE_ACCESSORY_ID", default="Power Alert Trigger")
MQTT_URL = env.str("MQTT_URL", default="")
MQTT_TOPIC = env.str("MQTT_TOPIC", default="shelly/alerts/motion")
TRIGGER_HTTP_URL = env.str("TRIGGER_HTTP_URL", default="")
# E-mail notifiers send through the mail settings of the e-mail section below.

DASHBOARD_REFRESH_SECONDS = env.float("DASHBOARD_REFRESH_SECONDS", default=5.0)
# The plant's name in the monthly report's header (dashboard/monthly_report.py).
PLANT_NAME = env.str("PLANT_NAME", default="Wastewater treatment plant")

# --- E-mail (monthly report, e-mail notifiers) ----------------------------------------------
# smtp://user:password@host:587/?tls=True, smtp+ssl://…:465, or consolemail://
# (prints instead of sending: the default, so nothing leaves a development box).
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="shelly-monitor@localhost")

# --- Logging --------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# JSON lines for production log shippers; plain text for the embedded demo.
LOG_JSON = env.bool("LOG_JSON", default=bool(DATABASE_URL))
# The servers' own loggers go through our handler, so their lines are redacted
# (an ingest token is in every device's URL) and formatted like ours.
_SERVER_LOGGER = {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False, "filters": ["redact_secrets"]}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "shelly_site.logging.RedactSecretsFilter"}},
    "formatters": {
        "json": {"()": "shelly_site.logging.JsonFormatter", "fmt": "%(levelname)s %(name)s %(message)s"},
        "plain": {"()": "shelly_site.logging.PlainFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_JSON else "plain",
            "filters": ["redact_secrets"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # uvicorn logs "WebSocket <path> [accepted]" on uvicorn.error even with --no-access-log.
        "uvicorn": {**_SERVER_LOGGER},
        "uvicorn.error": {"level": LOG_LEVEL, "filters": ["redact_secrets"]},
        "uvicorn.access": {**_SERVER_LOGGER},
        # Daphne's access log, when started with `python -m shelly_site.daphne_server`.
        "daphne.access": {**_SERVER_LOGGER},
        "django.channels.server": {"level": "WARNING"},
        "daphne": {"level": "WARNING"},
        "django-q": {"level": env.str("Q_LOG_LEVEL", default="WARNING")},
        # Failed logins and lockouts are warnings; its "BEGIN" line at every start is noise.
        "axes": {"level": "WARNING"},
    },
}
