"""A disabled or dropped user's client sessions end at once, not when their tokens expire: re-enabling
the user later must not bring an old token back to life. So do they when the password changes or is
removed (ALTER USER … SET PASSWORD, the Change password page, the admin console), as Django ends the
browser's sessions then: a password is changed because someone else may know it, and a token signed in
with it must not outlive it. A rehash of the same password on sign-in (Django's hasher upgrades) is no
change: check_password() saves it without set_password()'s raw password."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from django.dispatch import receiver

from client_protocol.sessions import close_sessions_of


@receiver(post_save, sender=get_user_model())
def _close_when_disabled_or_password_changed(sender, instance, **kwargs) -> None:
    # set_password() keeps the raw password on the instance until save() has sent post_save.
    if not instance.is_active or instance._password is not None or not instance.has_usable_password():
        close_sessions_of(instance)
