"""Accounts: API tokens are revoked when a password changes (a leaked token must not outlive the
password it was issued under). Connected in TrackingConfig.ready to the user model's pre_save,
so every way of changing a password revokes them: the password-change page, a reset, the admin,
`manage.py changepassword`."""
from rest_framework.authtoken.models import Token


def revoke_tokens_on_password_change(sender, instance, update_fields=None, **kwargs):
    if instance.pk is None or (update_fields is not None and "password" not in update_fields):
        return
    old = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if old is not None and old != instance.password:
        Token.objects.filter(user_id=instance.pk).delete()
