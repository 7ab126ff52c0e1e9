from django.apps import AppConfig


class SharingConfig(AppConfig):
    name = "sharing"
    verbose_name = "Secure Data Sharing of fine-tuned models with other accounts"
