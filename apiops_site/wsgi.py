"""WSGI entry point (gunicorn ``apiops_site.wsgi:application``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apiops_site.settings")

application = get_wsgi_application()

# The Kubernetes client is imported on first use (commands start faster without it); the web
# server takes it now rather than during its first request.
from ops import k8s  # noqa: E402 - after Django is set up

k8s.preload()
