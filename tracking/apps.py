from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings
        from django.db.models.signals import pre_save

        from .accounts import revoke_tokens_on_password_change

        pre_save.connect(revoke_tokens_on_password_change, sender=settings.AUTH_USER_MODEL,
                         dispatch_uid="revoke_tokens_on_password_change")
