"""One settings module, configured from the environment (safe defaults for development)."""
import os
from pathlib import Path

import dj_database_url
from csp.constants import NONCE

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def envbool(name, default="False"):
    value = os.environ.get(name, default).strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value in ("true", "1", "yes")


def envint(name, default):
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {value!r}") from None


DEBUG = envbool("DEBUG", "True")
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-key-change-me-" + "x" * 32)
if not DEBUG and SECRET_KEY.startswith("dev-only"):
    raise ValueError("SECRET_KEY must be set when DEBUG is false")
ALLOWED_HOSTS = [h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / Redoc served as static files (no CDN)
    "axes",  # login throttling
    "tracking",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "tracking.middleware.LoginRequiredEverywhere",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks
]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failed logins for one username from one
# address, that pair is locked out for LOGIN_COOLOFF_MINUTES (a successful login resets the count).
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = envint("LOGIN_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no banner on stderr: management commands answer with one line
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
# A proxy in front (BEHIND_PROXY=true) is trusted for X-Forwarded-Proto and X-Forwarded-For;
# without one a client could set them to pass for https or for another address.
BEHIND_PROXY = envbool("BEHIND_PROXY", "False")
AXES_IPWARE_META_PRECEDENCE_ORDER = ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if BEHIND_PROXY else ["REMOTE_ADDR"]
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Content-Security-Policy (django-csp): scripts only from this site or with the page's nonce; no
# plugins, no framing, forms post here only. Inline styles are allowed (Redoc and uPlot set them).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

ROOT_URLCONF = "webapp.urls"
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
WSGI_APPLICATION = "webapp.wsgi.application"

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Web app and workers write the same file: wait for locks instead of failing. WAL with
    # synchronous=NORMAL (SQLite's advice for WAL): a commit does not wait for an fsync; a
    # crashed process loses nothing, only a power cut can undo the last commits.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20, transaction_mode="IMMEDIATE",
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    )
    # A file (not memory) so that a real worker process sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [  # Django's four
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"

# Production hardening (manage.py check --deploy is clean with DEBUG=false).
if not DEBUG:
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")  # static files under gunicorn
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "True")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# Celery (Redis broker). Training runs on the queues "gpu"/"cpu"; email and
# analysis on the short queue "default".
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Above the longest run: a late-acked training task must not be redelivered while it runs.
    "visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 12 * 3600),
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", "False")
# Training runs (workers/recovery.py): a running run without a heartbeat for this long lost
# its worker and is re-queued (resuming from its checkpoint) up to RUN_MAX_ATTEMPTS times;
# a queued run sent this long ago and still not claimed is sent again.
# The worker writes a heartbeat twice a second; beat checks every RUN_RECOVERY_INTERVAL s, so a
# dead worker's run shows "worker lost, retrying" within timeout + interval (20 + 5 s).
RUN_HEARTBEAT_TIMEOUT = envint("RUN_HEARTBEAT_TIMEOUT", 20)
RUN_MAX_ATTEMPTS = envint("RUN_MAX_ATTEMPTS", 3)
RUN_RESEND_AFTER = envint("RUN_RESEND_AFTER", 30)
RUN_RECOVERY_INTERVAL = envint("RUN_RECOVERY_INTERVAL", 5)

# Limits of a run (README "Security and limits"). Checked when a run is created (estimates) and
# enforced while it trains (a child process with this much memory, and a wall-clock limit).
RUN_MEMORY_LIMIT_MB = envint("RUN_MEMORY_LIMIT_MB", 2048)   # estimate at creation; the child's address-space limit
RUN_TIME_LIMIT = envint("RUN_TIME_LIMIT", 3 * 3600)          # seconds: estimate at creation; wall clock while it trains
RUN_MAX_STEPS = envint("RUN_MAX_STEPS", 250_000)              # epochs x steps per epoch
RUN_TEAM_CONCURRENCY = envint("RUN_TEAM_CONCURRENCY", 2)     # a team's runs sent to the workers at once, per queue
SWEEP_MAX_TRIALS = envint("SWEEP_MAX_TRIALS", 24)            # stage 1 + stage 2 trials of one sweep
# Uploaded CSVs (tracking/datasets/): read once at upload and again by the worker, bounded.
CSV_MAX_BYTES = envint("CSV_MAX_BYTES", 50 * 1024 * 1024)
CSV_MAX_ROWS = envint("CSV_MAX_ROWS", 200_000)
CSV_MAX_COLUMNS = envint("CSV_MAX_COLUMNS", 500)
CSV_MAX_CATEGORIES = envint("CSV_MAX_CATEGORIES", 50)       # distinct values of a text column, one-hot encoded
CSV_MAX_CLASSES = envint("CSV_MAX_CLASSES", 1000)           # distinct values of the label column
CSV_MAX_CELLS = envint("CSV_MAX_CELLS", 20_000_000)         # data rows x input features after encoding
# Analysis (tracking/analysis.py): an ended run whose final analysis has not run this many seconds
# after its end is sent again by Celery beat (tracking.tasks.catch_up_analyses, every
# ANALYSIS_CATCH_UP_SECONDS, read in webapp/celery.py); a pending interim analysis older than
# ANALYSIS_PENDING_STALE seconds is taken as lost (another one may be queued).
ANALYSIS_CATCH_UP_AFTER = envint("ANALYSIS_CATCH_UP_AFTER", 60)
ANALYSIS_PENDING_STALE = envint("ANALYSIS_PENDING_STALE", 600)
# While a run trains (built-in or registered code), the worker asks the rules engine every
# ANALYSIS_EVERY_EPOCHS epochs (stop_on_diagnosis) and enqueues an interim analysis at most every
# ANALYSIS_MIN_SECONDS seconds, the first one that long after the start.
ANALYSIS_EVERY_EPOCHS = envint("ANALYSIS_EVERY_EPOCHS", 5)
ANALYSIS_MIN_SECONDS = float(os.environ.get("ANALYSIS_MIN_SECONDS", "15"))
# Tags a run can have (each at most 50 characters), in the form and the API alike.
RUN_MAX_TAGS = envint("RUN_MAX_TAGS", 20)
# A checkpoint is logged at an epoch end at most this often (seconds; 0: every epoch).
RUN_CHECKPOINT_SECONDS = float(os.environ.get("RUN_CHECKPOINT_SECONDS", "2"))

# MLflow: an absolute tracking URI, experiments created with an explicit artifact location.
MLFLOW_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{VAR_DIR / 'mlflow.db'}")
MLFLOW_ARTIFACT_ROOT = os.environ.get("MLFLOW_ARTIFACT_ROOT", str(VAR_DIR / "mlartifacts"))
MLFLOW_UI_URL = os.environ.get("MLFLOW_UI_URL", "http://127.0.0.1:5000").rstrip("/")

# Optuna's storage for the sweeps (an SQLAlchemy URL); empty: the SQLite file VAR_DIR/optuna.db.
OPTUNA_STORAGE = os.environ.get("OPTUNA_STORAGE", "")

# Email
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = envint("EMAIL_PORT", 1025)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "False")
EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Runwise <runwise@localhost>")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "EXCEPTION_HANDLER": "tracking.api.exception_handler",  # every 400 as {"field", "detail"}
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {"TITLE": "Runwise API", "VERSION": "1.0.0", "SWAGGER_UI_DIST": "SIDECAR",
                        "SWAGGER_UI_FAVICON_HREF": "SIDECAR", "REDOC_DIST": "SIDECAR"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"alembic": {"level": "WARNING"}, "mlflow": {"level": "WARNING"}},
}

# The team's own code (tracking/code/, workers/project_runs.py): directories that may be
# registered (mounted into the web and worker containers), where git projects are checked
# out once per commit, how long a stopped script gets between SIGTERM and SIGKILL, and how
# often followed MLflow experiments are imported (seconds).
CODE_ROOT = os.environ.get("CODE_ROOT", str(BASE_DIR / "examples"))
CODE_CACHE_DIR = os.environ.get("CODE_CACHE_DIR", str(VAR_DIR / "code-cache"))
CODE_STOP_GRACE = float(os.environ.get("CODE_STOP_GRACE", "3"))
FOLLOW_INTERVAL = float(os.environ.get("FOLLOW_INTERVAL", "30"))
