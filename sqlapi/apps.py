from django.apps import AppConfig


class SqlapiConfig(AppConfig):
    name = "sqlapi"
    verbose_name = "SQL API"
