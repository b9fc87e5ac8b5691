"""Django configured in-test, once per process (``settings.configure``): an in-memory SQLite database
and no project; each test overrides ROOT_URLCONF, MIDDLEWARE and ETAGKIT with ``override_settings``."""

from __future__ import annotations

import django
from django.conf import settings


def setup_django() -> None:
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="etagkit-tests",
            ALLOWED_HOSTS=["*"],
            INSTALLED_APPS=["django.contrib.contenttypes"],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
            ROOT_URLCONF=__name__,
            MIDDLEWARE=[],
            USE_TZ=True,
        )
    django.setup()


urlpatterns: list[object] = []
