from django.apps import AppConfig


class OrganizationConfig(AppConfig):
    name = "organization"
    verbose_name = "Organization: this deployment's account and the other accounts it trusts"
