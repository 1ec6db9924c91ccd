"""Each example, end to end through the browser (Chromium via Playwright), a real Celery worker,
real subprocesses and the real MLflow store: started from the generated form, it trains with
live output and charts and ends succeeded with a diagnosis; "Apply…" starts a follow-up of the
same code with the new value, which a Stop ends within 5 s; a script that raises ends failed
with its traceback's tail on the page."""
import re
import time

import pytest
from playwright.sync_api import Error as PlaywrightError

from tests.code.conftest import sign_in
from tests.waiting import wait_for
from tracking.models import Recommendation, Run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EXAMPLES = {"pytorch-plain": "epochs", "lightning": "max_epochs", "hf-trainer": "epochs"}


def status_of(run_id):
    return Run.objects.values_list("status", flat=True).get(pk=run_id)


# What Chromium answers a reload that the page's own navigation overtook: the request aborted, or the
# document our reload was sent to already replaced ("Not attached to an active page", seen once on CI)
RACED = ("ERR_ABORTED", "Not attached to an active page")


def reload(page):
    """Reload, once more if the page's own reload (it reloads itself when its run ends) raced ours."""
    for attempt in range(3):
        try:
            page.reload()
            return
        except PlaywrightError as exc:
            if not any(sign in str(exc) for sign in RACED) or attempt == 2:
                raise
            time.sleep(0.5)
            page.wait_for_load_state()


def present(page, selector):
    """Whether the selector matches, False while a navigation (the page's own reload when its run ends,
    or the live page replacing itself) destroys the document being queried."""
    try:
        return page.query_selector(selector) is not None
    except PlaywrightError as exc:
        if "Execution context was destroyed" not in str(exc):
            raise
        page.wait_for_load_state()
        return False


def start_from_form(page, code, **values):
    page.goto(f"/code/{code.pk}/runs/new/?entry_point=main")
    for name, value in values.items():
        page.fill(f"#id_param_{name}", str(value))
    page.click("#code-run-form button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    return int(page.url.rstrip("/").split("/")[-1])


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_an_example_trains_from_the_form_is_diagnosed_applied_and_stopped(
        example, page, celery_worker_process, register, team_users):
    log = celery_worker_process.log
    code = register(example)
    sign_in(page, "alice", "pw-alice-123")
    epochs = EXAMPLES[example]

    run_id = start_from_form(page, code, **{epochs: 4, "epoch_seconds": 2.5})
    # live: output lines and chart points while it trains
    wait_for(lambda: "epoch 1" in (page.text_content("#code-output") or "") and status_of(run_id) == "running",
             240, "live output while running", log=log)
    wait_for(lambda: int(page.get_attribute("#charts", "data-points") or 0) > 0, 30, "live chart points", log=log)
    wait_for(lambda: status_of(run_id) in Run.FINAL, 90, "end of the run", log=log)
    assert status_of(run_id) == "succeeded", Run.objects.get(pk=run_id).status_reason

    def diagnosed():
        reload(page)
        return present(page, "#recommendations .diagnosis")
    wait_for(diagnosed, 60, "the diagnosis on the page", log=log, interval=1)
    assert page.text_content("#run-status") == "succeeded"

    # Apply the first recommendation that can be applied: a follow-up of the same code, new value
    rec = next(r for r in Recommendation.objects.filter(run_id=run_id).order_by("rank")
               if page.query_selector(f'li[data-rule="{r.rule}"] a.button'))
    page.click(f'li[data-rule="{rec.rule}"] a.button')
    page.click("#apply-change button[type=submit]")
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    child = Run.objects.select_related("code_run").get(pk=int(page.url.rstrip("/").split("/")[-1]))
    assert child.parent_id == run_id and child.applied_recommendation_id == rec.pk
    assert child.code_run.code_id == code.pk and child.code_run.commit == Run.objects.get(pk=run_id).code_run.commit
    for key, value in rec.change.items():
        assert child.code_run.parameters[child.code_run.mapping[key]] == pytest.approx(value, rel=1e-6)

    # Stop the follow-up from its page: stopped within 5 s
    wait_for(lambda: "epoch 1" in (page.text_content("#code-output") or ""), 120, "follow-up's first epoch", log=log)
    page.click("#stop-form button")
    asked = time.monotonic()
    wait_for(lambda: status_of(child.pk) in Run.FINAL, 5, "stopped within 5 s", log=log)
    assert time.monotonic() - asked < 5 and status_of(child.pk) == "stopped"


def test_an_example_that_raises_fails_with_its_exit_code_and_traceback_on_the_page(
        page, celery_worker_process, register, team_users):
    """(Once, on the plain example: a script's exit is read the same whatever library it uses.)"""
    log = celery_worker_process.log
    code = register("pytorch-plain")
    sign_in(page, "alice", "pw-alice-123")
    failing = start_from_form(page, code, epochs=3, raise_at_epoch=2)
    wait_for(lambda: status_of(failing) in Run.FINAL, 120, "end of the failing run", log=log)
    reload(page)
    reason = page.text_content("#status-reason")
    assert status_of(failing) == "failed" and reason.startswith("exit code 1")
    assert "RuntimeError: raised on purpose in epoch 2" in reason
    assert "Traceback" in page.text_content("#code-output")
