"""Apply or dismiss a recommendation. Apply: GET shows the change and asks to confirm (it changes
nothing); POST creates the follow-up run (parent = the run, applied_recommendation = the
recommendation) once, through services.recommendation_apply."""
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from . import access, services
from .config import ConfigError
from .models import Run


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
        child = services.recommendation_apply(rec=rec, user=request.user)
    except ConfigError as exc:
        messages.error(request, f"Cannot apply this change: {exc.field}: {exc.message}")
        return redirect(run)
    except services.ServiceError as exc:
        messages.info(request, str(exc))
        existing = run.children.filter(applied_recommendation=rec).order_by("pk").first()
        return redirect(existing or run)
    messages.success(request, f"Follow-up run created with {', '.join(f'{k}={v}' for k, v in rec.change.items())}.")
    return redirect(child)


@require_POST
def recommendation_dismiss(request, rec_id):
    rec = access.recommendation_or_404(request.user, rec_id)
    if services.recommendation_dismiss(rec=rec):
        messages.info(request, "Recommendation dismissed.")
    else:
        messages.info(request, f"This recommendation was already {rec.state}.")
    return redirect(rec.run)
