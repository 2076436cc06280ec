"""Django settings of the comparison peer: django-helpdesk reading a local mail folder.

Only ``bench/compare_peer.py`` uses this project, with django-helpdesk installed in a virtualenv
of its own (never in Pulpit's). Everything that varies comes from the environment, which the
script sets: ``PEER_DATABASE`` (PostgreSQL database name), ``PGHOST``, ``PGPORT``, ``PGUSER``
and ``PEER_DATA_DIR`` (attachments and the outgoing mails, written as files).

DEBUG stays off: with it on Django keeps every SQL statement in memory, which slows a long
``get_email`` run and is not how anyone runs it.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = Path(os.environ.get("PEER_DATA_DIR", "/tmp/pulpit-peer-data"))

SECRET_KEY = "bench-only-not-secret"  # noqa: S105 - a throwaway benchmark instance
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.sites",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "helpdesk",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PEER_DATABASE", "bench_peer_helpdesk"),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "USER": os.environ.get("PGUSER", "postgres"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SITE_ID = 1
USE_TZ = True
TIME_ZONE = "Europe/Warsaw"
LANGUAGE_CODE = "pl"
STATIC_URL = "/static/"
MEDIA_ROOT = str(DATA_DIR / "media")
MEDIA_URL = "/media/"

# The acknowledgements and notifications are built and written to files, one per mail: the
# nearest to Pulpit's outbox (stored durably, then sent to ``null://`` in the benchmark).
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = str(DATA_DIR / "outbox")
DEFAULT_FROM_EMAIL = "support@serwis.example"

# No pinax-teams installed; the knowledge base and the rest are the defaults.
HELPDESK_TEAMS_MODE_ENABLED = False
