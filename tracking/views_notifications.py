"""Notification pages: each user's settings per project, and the team admins' list of
emails that could not be sent (with a retry button)."""
from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from .access import admin_membership_or_404, project_or_404
from .models import Membership, NotificationSetting, OutboxEmail
from .notifications import failed_emails, notification_setting_save, notification_settings_of, outbox_retry

DEFAULT_LABEL = "Default: my own runs only"


class NotificationSettingForm(forms.Form):
    project = forms.IntegerField(min_value=1)
    mode = forms.ChoiceField(choices=[("", DEFAULT_LABEL)] + NotificationSetting.CHOICES, required=False)
    include_stopped = forms.BooleanField(required=False)
    include_tuning_runs = forms.BooleanField(required=False)

    def clean(self):
        data = super().clean()
        if data.get("include_stopped") and not data.get("mode"):
            self.add_error("include_stopped", "choose a mode (not the default) to include stopped runs")
        if data.get("include_tuning_runs") and not data.get("mode"):
            self.add_error("include_tuning_runs", "choose a mode (not the default) to hear about every run of sweeps "
                                                  "and autopilots")
        return data


def _settings_page(request, form=None, status=200):
    admin_teams = [m.team for m in Membership.objects.filter(user=request.user, role=Membership.ADMIN)
                   .select_related("team")]
    return render(request, "tracking/notifications.html", dict(
        rows=notification_settings_of(request.user), form=form, choices=NotificationSetting.CHOICES,
        default_label=DEFAULT_LABEL, admin_teams=admin_teams), status=status)


def notification_settings(request):
    if request.method != "POST":
        return _settings_page(request)
    form = NotificationSettingForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, form=form, status=400)
    project = project_or_404(request.user, form.cleaned_data["project"])
    notification_setting_save(user=request.user, project=project, mode=form.cleaned_data["mode"],
                              include_stopped=form.cleaned_data["include_stopped"],
                              include_tuning_runs=form.cleaned_data["include_tuning_runs"])
    messages.success(request, f"Notifications for {project.name} saved.")
    return redirect(f"{request.path}#project-{project.pk}")


def team_failed_emails(request, team_id):
    membership = admin_membership_or_404(request.user, team_id)
    return render(request, "tracking/notifications_failed.html",
                  dict(team=membership.team, emails=failed_emails(membership.team)))


@require_POST
def outbox_email_retry(request, team_id, outbox_id):
    membership = admin_membership_or_404(request.user, team_id)
    outbox = get_object_or_404(OutboxEmail, pk=outbox_id, team=membership.team)
    if outbox_retry(outbox=outbox):
        messages.success(request, f"Email to {outbox.recipient.email} queued again.")
    else:
        messages.info(request, "That email is not failed any more.")
    return redirect("team-failed-emails", team_id=membership.team.pk)
