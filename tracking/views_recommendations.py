"""Apply or dismiss a recommendation. Apply: GET shows the change and asks to confirm (it changes
nothing); POST creates the follow-up run (parent = the run, applied_recommendation = the
recommendation) through services.run_create, and marks the recommendation applied."""
from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from . import access, services
from .config import ConfigError, apply_change
from .models import Recommendation, Run


def _change_rows(rec):
    return [{"key": k, "old": rec.run.config.get(k), "new": v} for k, v in sorted(rec.change.items())]


@require_http_methods(["GET", "POST"])
def recommendation_apply(request, rec_id):
    rec = access.recommendation_or_404(request.user, rec_id)
    run = rec.run
    if run.kind in (Run.Kind.CODE, Run.Kind.EXTERNAL):  # the team's own code (tracking/code/)
        from .code.views import recommendation_apply as code_apply

        return code_apply(request, rec)
    if request.method == "GET":
        return render(request, "tracking/recommendation_apply.html",
                      {"rec": rec, "run": run, "project": run.project, "rows": _change_rows(rec)})
    try:
        with transaction.atomic():
            child = services.run_create(project=run.project, owner=request.user,
                                        config=apply_change(run.config, rec.change),
                                        name=f"{run.name} · {rec.rule.split('.')[-1].replace('_', ' ')}",
                                        parent=run, applied_recommendation=rec,
                                        tags=[t.name for t in run.tags.all()])
            Recommendation.objects.filter(pk=rec.pk).update(state=Recommendation.State.APPLIED)
    except ConfigError as exc:
        messages.error(request, f"Cannot apply this change: {exc.field}: {exc.message}")
        return redirect(run)
    messages.success(request, f"Follow-up run created with {', '.join(f'{k}={v}' for k, v in rec.change.items())}.")
    return redirect(child)


@require_POST
def recommendation_dismiss(request, rec_id):
    rec = access.recommendation_or_404(request.user, rec_id)
    Recommendation.objects.filter(pk=rec.pk).update(state=Recommendation.State.DISMISSED)
    messages.info(request, "Recommendation dismissed.")
    return redirect(rec.run)
