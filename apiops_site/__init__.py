"""The ApiOps Django project: settings, URLs, WSGI entry point, embedded database, runner."""
