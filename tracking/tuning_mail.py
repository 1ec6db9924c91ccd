"""The one email of a sweep or an autopilot when it ends (its runs send none of their own unless a
user asks for every run: NotificationSetting.include_tuning_runs). It names the best run with its
diagnosis and first recommendation, under the subject every run email has:
"[project] best run name: diagnosis, change". Plain text, to every team member with an address."""
from __future__ import annotations

import logging
import smtplib

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mass_mail

from . import emails
from .models import Run

log = logging.getLogger(__name__)


def summary_subject(project, best_run: Run | None, what: str) -> str:
    if best_run is None:
        return f"[{project.name}] {what}: no run finished, no change recommended"
    return emails.subject(best_run)


def best_run_lines(best_run: Run | None) -> list[str]:
    """The best run, its main diagnosis with evidence and its first recommendation, with links."""
    if best_run is None:
        return ["No run finished."]
    lines = [f"Best run: {best_run.name}, best val_loss {fmt(best_run.best_val_loss)}",
             f"{emails.run_url(best_run.pk)}"]
    diagnosis = emails.main_diagnosis(best_run.analysis)
    if diagnosis:
        lines.append(f"Diagnosis: {emails.diagnosis_words(diagnosis['id'])} ({diagnosis.get('evidence', '')})")
    recommendations = emails.recommendations_of(best_run, limit=1)
    if recommendations:
        rec = recommendations[0]
        lines.append(f"Recommendation: {rec['words']} (confidence {rec['confidence_pct']}%): {rec['apply_url']}")
    else:
        lines.append("Recommendation: no change recommended")
    return lines


def fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def summary_send(*, project, subject: str, body: str, what: str) -> int:
    """One plain email to every team member with an address. Returns the number sent; SMTP errors
    are logged (the sweep or autopilot page keeps the same summary)."""
    users = get_user_model().objects.filter(memberships__team=project.team, is_active=True).exclude(email="")
    messages = [(subject, body, settings.DEFAULT_FROM_EMAIL, [u.email]) for u in users.order_by("pk")]
    try:
        return send_mass_mail(messages, fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        log.warning("%s: the summary email was not sent (%s)", what, exc)
        return 0


def sweep_email(sweep_id: int) -> int:
    from .models import Sweep

    sweep = Sweep.objects.select_related("project__team", "best_run__project").get(pk=sweep_id)
    trials = list(sweep.trials.select_related("run"))
    done = sum(1 for t in trials if t.run.status == Run.Status.SUCCEEDED)
    lines = [f"Sweep {sweep.name} ended: {sweep.stop_reason or sweep.state}.",
             f"{len(trials)} trials in {sweep.stage} stage(s), {done} trained to the end.", ""]
    lines += best_run_lines(sweep.best_run)
    lines += ["", f"The sweep: {emails.absolute(sweep.get_absolute_url())}",
              f"Change what you hear about: {emails.settings_url(sweep.project_id)}"]
    subject = summary_subject(sweep.project, sweep.best_run, sweep.name)
    return summary_send(project=sweep.project, subject=subject, body="\n".join(lines), what=f"sweep {sweep_id}")
