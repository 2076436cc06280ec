"""URLs of the comparison peer (the benchmark only runs ``manage.py get_email``)."""

from django.urls import include, path

urlpatterns = [path("helpdesk/", include("helpdesk.urls", namespace="helpdesk"))]
