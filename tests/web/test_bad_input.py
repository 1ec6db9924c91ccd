"""Bad input never gives a 500: garbage query strings, and a diverged run's NaN and inf metrics."""
import json
import math

from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.web.conftest import make_run
from tracking import selectors
from tracking.models import MetricSeries, Run


def test_garbage_query_parameters_are_ignored_or_refused_cleanly(member_client, team_users):
    p = team_users["project"]
    run = make_run(p, team_users["admin"], with_series=False)
    for params in ({"owner": "abc", "status": "zzz", "tag": "-1", "page": "x", "size": "-5", "sort": "';drop"},
                   {"page": "99999", "size": "100000"}, {"optimizer": "<script>"}):
        assert member_client.get(f"/projects/{p.pk}/", params).status_code == 200, params
    assert member_client.get(f"/projects/{p.pk}/compare/", {"runs": ["a", "b"]}).status_code == 302
    assert member_client.get(f"/projects/{p.pk}/compare/", {"runs": [run.pk, 10**12]}).status_code == 404
    assert member_client.post(f"/runs/{run.pk}/annotate/", {"note": "x", "tags": "t," * 400}).status_code == 302


def test_a_diverged_runs_nan_and_inf_reach_the_page_and_the_api_as_valid_json(member_client, team_users):
    run = make_run(team_users["project"], team_users["admin"], status=Run.Status.DIVERGED)
    # The database refuses a bare NaN in JSON (JSON_VALID, jsonb): the worker stores them as strings.
    Run.objects.filter(pk=run.pk).update(latest_metrics={"train_loss": "nan", "grad_norm": "inf"},
                                         diverged_step=12, status_reason="train_loss became NaN at step 12")
    run.refresh_from_db()
    run.eta_seconds = math.inf  # a float field in memory: still written as valid JSON
    assert json.loads(json.dumps(selectors.run_chart_data(run), allow_nan=False))["eta_seconds"] == "inf"
    MetricSeries.objects.filter(run=run, key="train_loss").update(points=[[0, 2.3], [11, 40.0], [12, "nan"]])
    data = json.loads(member_client.get(f"/runs/{run.pk}/data.json").content)  # strict: no bare NaN
    assert data["latest_metrics"] == {"train_loss": "nan", "grad_norm": "inf"}
    assert data["series"]["train_loss"]["points"][-1] == [12, "nan"] and data["diverged_step"] == 12
    page = member_client.get(f"/runs/{run.pk}/").content.decode()
    embedded = page.split('<script id="run-data" type="application/json">')[1].split("</script>")[0]
    json.loads(embedded, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=team_users['member']).key}")
    response = api.get(f"/api/runs/{run.pk}/")
    assert response.status_code == 200 and response.json()["latest_metrics"]["train_loss"] == "nan"
