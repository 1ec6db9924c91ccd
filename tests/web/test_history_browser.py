"""The history table in a browser at 1280 px: empty values sort last, and the Name column gets the
width of the screen (names on one or two lines, the checkbox column narrow)."""
import pytest
from django.utils import timezone

from tests.web.conftest import make_run, sign_in
from tracking.models import Run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LONG = "sweep 3 · stage 2 · trial 14 · adamw lr 3e-3 wd 1e-4"


def names(page):
    return page.locator("#run-history tbody td.name a").all_inner_texts()


def test_sorting_by_best_val_loss_puts_empty_values_last_both_ways(page, team_users):
    p, alice = team_users["project"], team_users["admin"]
    for name, loss in (("good", 0.3), ("bad", 0.9)):
        run = make_run(p, alice, name=name, with_series=False)
        Run.objects.filter(pk=run.pk).update(best_val_loss=loss, started_at=timezone.now())
    Run.objects.create(project=p, owner=alice, name="lr test", kind=Run.Kind.LR_FIND, config={"lr": 1e-7})
    sign_in(page, "bob", "pw-bob-123")
    page.goto(f"/projects/{p.pk}/")
    page.click("#run-history th a:has-text('Best val_loss')")
    page.wait_for_url("**sort=best_val_loss*")
    assert names(page) == ["good", "bad", "lr test"]
    page.click("#run-history th a:has-text('Best val_loss')")
    page.wait_for_url("**sort=-best_val_loss*")
    assert names(page) == ["bad", "good", "lr test"]


def test_the_name_column_uses_the_width_at_1280_px(page, team_users):
    p, alice = team_users["project"], team_users["admin"]
    run = make_run(p, alice, name=LONG, optimizer="adamw", lr=0.003, weight_decay=1e-4, scheduler="onecycle",
                   batch_size=128, epochs=120, with_series=False)
    Run.objects.filter(pk=run.pk).update(best_val_loss=0.123456, best_val_accuracy=0.9876,
                                         started_at=timezone.now() - timezone.timedelta(hours=2),
                                         finished_at=timezone.now())
    sign_in(page, "bob", "pw-bob-123")
    assert page.viewport_size["width"] == 1280
    page.goto(f"/projects/{p.pk}/")
    name = page.locator("#run-history tbody td.name").bounding_box()
    check = page.locator("#run-history tbody td.check").bounding_box()
    line = page.evaluate("parseFloat(getComputedStyle(document.querySelector('#run-history td.name')).lineHeight)")
    assert check["width"] <= 40, check
    assert name["width"] >= 300, name
    assert name["height"] <= 2 * line + 16, (name, line)  # one or two lines, not 3-5
    table = page.locator("#run-history").bounding_box()
    assert table["x"] + table["width"] <= 1280  # no horizontal scrolling
