from django.apps import AppConfig


class SqlengineConfig(AppConfig):
    name = "sqlengine"
    verbose_name = "SQL engine"
