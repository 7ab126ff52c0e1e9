from django.apps import AppConfig


class ClientProtocolConfig(AppConfig):
    name = "client_protocol"
    verbose_name = "Snowflake client protocol"

    def ready(self) -> None:
        from client_protocol import signals  # noqa: F401  (closes a disabled user's sessions)
