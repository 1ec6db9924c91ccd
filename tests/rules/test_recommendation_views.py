"""Apply (confirm page, then a follow-up run linked both ways) and dismiss, on the run page."""
import pytest
from django.urls import reverse

from tracking.config import validate_config
from tracking.models import Recommendation, Run

ANALYSIS = {"diagnoses": [{"id": "overfitting", "severity": 0.9, "epochs": [9, 30],
                           "evidence": "val_loss rose 35% from its minimum at epoch 9 while train_loss fell 60%"}],
            "recommendations": []}


@pytest.fixture
def analysed(team_users):
    config = validate_config({"dataset": "digits", "optimizer": "sgd", "lr": 0.05, "epochs": 30})
    run = Run.objects.create(project=team_users["project"], owner=team_users["admin"], name="base",
                             config=config, status=Run.Status.SUCCEEDED, analysis=ANALYSIS, best_val_loss=0.3)
    wd = Recommendation.objects.create(run=run, rule="overfitting.raise_weight_decay", diagnosis="overfitting",
                                       change={"weight_decay": 0.001}, rationale="More weight decay.",
                                       confidence=0.74, rank=0)
    drop = Recommendation.objects.create(run=run, rule="overfitting.add_dropout", diagnosis="overfitting",
                                         change={"dropout": 0.3}, rationale="Dropout.", confidence=0.6, rank=1)
    return run, wd, drop


def test_the_run_page_shows_the_evidence_and_the_recommendations(client, team_users, analysed):
    run, wd, drop = analysed
    past = Run.objects.create(project=team_users["project"], owner=team_users["admin"], name="old",
                              config=run.config, status=Run.Status.SUCCEEDED)
    Recommendation.objects.create(run=past, rule=wd.rule, diagnosis="overfitting", change=wd.change,
                                  rationale="", confidence=0.7, state="applied", helped=True)
    client.force_login(team_users["member"])
    html = client.get(reverse("run", args=[run.pk])).content.decode()
    assert "val_loss rose 35% from its minimum at epoch 9" in html
    assert "weight_decay → 0.001" in html and "helped 1 of 1 time in this team" in html
    assert reverse("recommendation_apply", args=[wd.pk]) in html
    assert reverse("recommendation_dismiss", args=[drop.pk]) in html
    assert client.get(reverse("run-data", args=[run.pk])).json()["diagnoses"][0]["epochs"] == [9, 30]


def test_apply_shows_the_change_and_changes_nothing_on_get(client, team_users, analysed):
    run, wd, _ = analysed
    client.force_login(team_users["member"])
    html = client.get(reverse("recommendation_apply", args=[wd.pk])).content.decode()
    assert "weight_decay" in html and "0.001" in html and "Create the follow-up run" in html
    assert Run.objects.count() == 1 and Recommendation.objects.get(pk=wd.pk).state == "new"


def test_apply_creates_the_follow_up_run_linked_both_ways(client, team_users, analysed):
    run, wd, _ = analysed
    client.force_login(team_users["member"])
    response = client.post(reverse("recommendation_apply", args=[wd.pk]))
    child = Run.objects.exclude(pk=run.pk).get()
    assert response.status_code == 302 and response["Location"] == child.get_absolute_url()
    assert child.parent == run and child.applied_recommendation == wd
    assert child.config == {**run.config, "weight_decay": 0.001} and child.status == "queued"
    assert Recommendation.objects.get(pk=wd.pk).state == "applied"
    assert list(wd.follow_ups.all()) == [child] and list(run.children.all()) == [child]


def test_dismiss_hides_the_recommendation(client, team_users, analysed):
    run, _, drop = analysed
    client.force_login(team_users["member"])
    assert client.get(reverse("recommendation_dismiss", args=[drop.pk])).status_code == 405
    client.post(reverse("recommendation_dismiss", args=[drop.pk]))
    assert Recommendation.objects.get(pk=drop.pk).state == "dismissed"
    html = client.get(reverse("run", args=[run.pk])).content.decode()
    assert "dropout → 0.3" not in html


def test_a_change_the_validator_rejects_is_reported_and_creates_nothing(client, team_users, analysed):
    run, _, _ = analysed
    bad = Recommendation.objects.create(run=run, rule="x.bad", diagnosis="unstable", change={"lr": -1},
                                        rationale="", confidence=0.5, rank=2)
    client.force_login(team_users["member"])
    response = client.post(reverse("recommendation_apply", args=[bad.pk]), follow=True)
    assert response.status_code == 200 and "lr" in response.content.decode()
    assert Run.objects.count() == 1 and Recommendation.objects.get(pk=bad.pk).state == "new"


def test_an_outsider_gets_404_on_apply_and_dismiss(client, team_users, analysed):
    _, wd, drop = analysed
    client.force_login(team_users["outsider"])
    assert client.get(reverse("recommendation_apply", args=[wd.pk])).status_code == 404
    assert client.post(reverse("recommendation_apply", args=[wd.pk])).status_code == 404
    assert client.post(reverse("recommendation_dismiss", args=[drop.pk])).status_code == 404
    assert Run.objects.count() == 1 and Recommendation.objects.get(pk=drop.pk).state == "new"


def test_a_run_with_no_confident_change_says_so(client, team_users):
    """A tuned run: the engine abstains (nothing with confidence >= 0.5), and the page says so."""
    config = validate_config({"dataset": "digits", "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 30})
    tuned = {"diagnoses": [{"id": "healthy", "severity": 0.8, "epochs": [1, 30],
                            "evidence": "val_loss fell from 1.2 to 0.1 (minimum 0.1 at epoch 30); no problem found"}],
             "recommendations": []}
    run = Run.objects.create(project=team_users["project"], owner=team_users["admin"], name="tuned",
                             config=config, status=Run.Status.SUCCEEDED, analysis=tuned, best_val_loss=0.1)
    client.force_login(team_users["member"])
    html = client.get(reverse("run", args=[run.pk])).content.decode()
    assert "No confident change." in html and "Recommended next changes" not in html
    Recommendation.objects.create(run=run, rule="plateau.cosine", diagnosis="plateau", change={"scheduler": "cosine"},
                                  rationale="Anneal.", confidence=0.3, rank=0)
    html = client.get(reverse("run", args=[run.pk])).content.decode()
    assert "No confident change." in html and "a confidence under 0.5" in html and "scheduler → cosine" in html


def test_a_confident_change_is_not_called_unconfident(client, team_users, analysed):
    run, _, _ = analysed
    client.force_login(team_users["member"])
    assert "No confident change" not in client.get(reverse("run", args=[run.pk])).content.decode()
