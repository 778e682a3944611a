"""App configs of the project itself: the admin, installed with the ApiOps admin site."""

from django.contrib.admin.apps import AdminConfig


class ApiOpsAdminConfig(AdminConfig):
    """``django.contrib.admin`` with :class:`apiops_site.admin_site.ApiOpsAdminSite` as
    ``admin.site`` (Django's documented way to replace the default site)."""

    default_site = "apiops_site.admin_site.ApiOpsAdminSite"
