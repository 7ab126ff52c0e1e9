"""A disabled or dropped user's client sessions end at once, not when their tokens expire: re-enabling
the user later must not bring an old token back to life."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from django.dispatch import receiver

from client_protocol.sessions import close_sessions_of


@receiver(post_save, sender=get_user_model())
def _close_when_disabled(sender, instance, **kwargs) -> None:
    if not instance.is_active:
        close_sessions_of(instance)
