"""The tuning pages: sweep form and page (table, scatters, border flag), autopilot start and
lineage tree, LR-test start; bad input names the field, outsiders get 404."""
import pytest
from django.utils import timezone

from tracking import autopilot, sweeps
from tracking.config import validate_config
from tracking.models import Autopilot, Recommendation, Run, Sweep

pytestmark = pytest.mark.django_db


@pytest.fixture
def source(team_users):
    return Run.objects.create(project=team_users["project"], owner=team_users["admin"], name="base run",
                              config=validate_config({"dataset": "digits", "momentum": 0.9, "epochs": 6}),
                              status="succeeded", best_val_loss=0.9, analysed_at=timezone.now())


def form(**over):
    data = {"name": "lr and wd", "lr_on": "on", "lr_low": "0.001", "lr_high": "1", "lr_log": "on",
            "weight_decay_on": "on", "weight_decay_low": "1e-6", "weight_decay_high": "1e-2", "weight_decay_log": "on",
            "batch_size_on": "on", "batch_size_choices": "16, 32, 64",
            "stage1_trials": "4", "stage1_epochs": "1", "stage2_trials": "2"}
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def test_a_member_starts_a_sweep_from_a_run_and_sees_its_trials(client, team_users, source):
    client.force_login(team_users["member"])
    assert client.get(f"/runs/{source.pk}/sweep/new/").status_code == 200
    response = client.post(f"/runs/{source.pk}/sweep/new/", form())
    sweep = Sweep.objects.get()
    assert response.status_code == 302 and response["Location"] == sweep.get_absolute_url()
    assert set(sweep.space) == {"lr", "weight_decay", "batch_size"} and sweep.space["lr"]["log"] is True
    assert sweep.trials.count() == 4 and all(t.run.config["epochs"] == 1 for t in sweep.trials.all())
    trials = list(sweep.trials.all())
    for i, t in enumerate(trials):
        Run.objects.filter(pk=t.run_id).update(status="succeeded", best_val_loss=1.0 + i)
    sweeps.Trial.objects.filter(pk=trials[0].pk).update(params={**trials[0].params, "lr": 0.999})
    for t in trials:
        sweeps.on_run_ended(t.run_id)
    page = client.get(sweep.get_absolute_url())
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="trials"' in html and html.count("<tr") >= 1 + 6  # header + 4 stage-1 + 2 stage-2 trials
    assert 'id="scatter-lr"' in html and 'id="scatter-weight_decay"' in html
    assert 'class="error border-flag" data-param="lr"' in html and "high border" in html
    assert page.context["data"]["params"]["lr"]["log"] is True


@pytest.mark.parametrize("over, field", [
    ({"lr_low": "abc"}, "lr_low"),
    ({"lr_low": "0"}, "lr"),
    ({"batch_size_choices": "16, x"}, "batch_size"),
    ({"stage1_epochs": "5"}, "stage1_epochs"),
])
def test_a_bad_sweep_form_names_the_field_and_starts_nothing(client, team_users, source, over, field):
    client.force_login(team_users["admin"])
    response = client.post(f"/runs/{source.pk}/sweep/new/", form(**over))
    assert response.status_code == 400
    assert f"{field}:" in response.content.decode()
    assert not Sweep.objects.exists() and Run.objects.count() == 1


def test_tune_this_run_starts_the_autopilot_and_draws_the_lineage(client, team_users, source):
    Recommendation.objects.create(run=source, rule="overfitting.raise_weight_decay", diagnosis="overfitting",
                                  change={"weight_decay": 0.001}, rationale="r", confidence=0.8)
    client.force_login(team_users["member"])
    response = client.post(f"/runs/{source.pk}/autopilot/", {"max_rounds": "3"})
    pilot = Autopilot.objects.get()
    assert response["Location"] == pilot.get_absolute_url() and pilot.max_rounds == 3
    round1 = pilot.current_run
    Run.objects.filter(pk=round1.pk).update(status="succeeded", best_val_loss=0.7, analysed_at=timezone.now())
    autopilot.on_run_analysed(round1.pk)
    page = client.get(pilot.get_absolute_url()).content.decode()
    assert f'data-run="{source.pk}"' in page and f'data-run="{round1.pk}"' in page
    assert "overfitting.raise_weight_decay" in page and "weight_decay=0.001" in page
    assert "0.7" in page and "improved" in page
    assert "no recommendation left" in page


def test_a_bad_round_count_is_refused_with_its_name(client, team_users, source):
    client.force_login(team_users["admin"])
    response = client.post(f"/runs/{source.pk}/autopilot/", {"max_rounds": "0"}, follow=True)
    assert response.status_code == 200 and "max_rounds:" in response.content.decode()
    assert not Autopilot.objects.exists()


def test_find_the_learning_rate_queues_an_lr_find_run(client, team_users, source):
    client.force_login(team_users["member"])
    response = client.post(f"/runs/{source.pk}/lr-find/start/", {"lr_min": "1e-6", "lr_max": "1", "lr_find_steps": "50"})
    run = Run.objects.get(kind=Run.Kind.LR_FIND)
    assert response["Location"] == f"/lr-find/{run.pk}/"
    assert run.config["lr_min"] == 1e-6 and run.config["lr_find_steps"] == 50 and run.parent == source
    assert client.get(f"/lr-find/{run.pk}/").status_code == 200
    bad = client.post(f"/runs/{source.pk}/lr-find/start/", {"lr_min": "1", "lr_max": "0.1"}, follow=True)
    assert "lr_max:" in bad.content.decode() and Run.objects.filter(kind=Run.Kind.LR_FIND).count() == 1


def test_outsiders_get_404_everywhere(client, team_users, source):
    sweep = sweeps.sweep_create(project=team_users["project"], owner=team_users["admin"],
                                base_config=source.config, space={"lr": {"low": 1e-3, "high": 1, "log": True}},
                                stage1_trials=2)
    pilot = autopilot.autopilot_start(run=source, owner=team_users["admin"])
    client.force_login(team_users["outsider"])
    for url in (f"/sweeps/{sweep.pk}/", f"/autopilots/{pilot.pk}/", f"/runs/{source.pk}/sweep/new/",
                f"/projects/{team_users['project'].pk}/tuning/"):
        assert client.get(url).status_code == 404, url
    for url in (f"/runs/{source.pk}/autopilot/", f"/autopilots/{pilot.pk}/stop/", f"/runs/{source.pk}/lr-find/start/"):
        assert client.post(url).status_code == 404, url
    assert Autopilot.objects.get().state == Autopilot.State.DONE  # finished at once: no recommendation
    assert Run.objects.filter(kind=Run.Kind.LR_FIND).count() == 0


def test_the_tuning_index_lists_sweeps_autopilots_and_lr_tests(client, team_users, source):
    autopilot.autopilot_start(run=source, owner=team_users["admin"])
    client.force_login(team_users["member"])
    page = client.get(f"/projects/{team_users['project'].pk}/tuning/")
    assert page.status_code == 200 and "base run" in page.content.decode()


def test_the_tuning_actions_fragment_links_a_run_to_its_tools(team_users, source, rf):
    """The fragment the run page includes ({% include "tracking/_tuning_actions.html" %})."""
    from django.template.loader import render_to_string

    html = render_to_string("tracking/_tuning_actions.html", {"run": source}, request=rf.get("/"))
    for url in (f"/runs/{source.pk}/lr-find/start/", f"/runs/{source.pk}/sweep/new/",
                f"/runs/{source.pk}/autopilot/", f"/projects/{source.project_id}/tuning/"):
        assert url in html
    lr_test = Run.objects.create(project=source.project, owner=source.owner, name="t", kind="lr_find",
                                 config=source.config)
    assert f"/lr-find/{lr_test.pk}/" in render_to_string("tracking/_tuning_actions.html", {"run": lr_test})


def test_the_run_page_offers_the_tuning_tools(client, team_users, source):
    client.force_login(team_users["member"])
    html = client.get(f"/runs/{source.pk}/").content.decode()
    assert "Tune this run" in html and f"/runs/{source.pk}/sweep/new/" in html
    assert f"/runs/{source.pk}/lr-find/start/" in html
