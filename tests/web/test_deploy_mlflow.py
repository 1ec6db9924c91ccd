"""MLflow and the mail catcher are closed in the deployment: docker-compose.yml publishes only the
web app to the network, MLflow runs its basic-auth app (Runwise logs in with its own account),
Mailpit's inbox needs a login; and a real `mlflow server` started with the deployment's
command and mlflow-auth.ini refuses anonymous reads and writes of runs and artifacts."""
import configparser
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
ADMIN, PASSWORD = "runwise", "test-admin-pw-0123456789"


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def published(port) -> tuple[str, str]:
    """(host ip, host port) of a compose port mapping, short or long form; "" ip = all interfaces."""
    if isinstance(port, dict):
        return port.get("host_ip", ""), str(port.get("published", ""))
    parts = str(port).split(":")
    if len(parts) == 1:
        return "", parts[0]  # container port only: a random host port on every interface
    return (parts[0] if len(parts) == 3 else ""), parts[-2]


def test_only_the_web_app_is_published_beyond_this_host():
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            ip, host_port = published(port)
            if name == "web":
                continue
            assert ip in ("127.0.0.1", "::1"), f"{name} publishes {port} on every interface"
    ports = {name: [published(p) for p in s.get("ports", [])] for name, s in compose()["services"].items()}
    assert ports["mlflow"] == [("127.0.0.1", "5000")] and ports["mail"] == [("127.0.0.1", "8025")]
    assert not ports["redis"] and not ports["postgres"]


def test_mlflow_runs_its_basic_auth_app_and_runwise_logs_in_with_its_own_account():
    services = compose()["services"]
    mlflow, runwise = services["mlflow"], services["web"]["environment"]
    command = shlex.split(mlflow["command"])
    assert command[command.index("--app-name") + 1] == "basic-auth"
    env = mlflow["environment"]
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?")  # no default password
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"].startswith("${MLFLOW_SECRET_KEY:?")
    assert runwise["MLFLOW_TRACKING_USERNAME"] == env["MLFLOW_AUTH_ADMIN_USERNAME"]
    assert runwise["MLFLOW_TRACKING_PASSWORD"] == env["MLFLOW_AUTH_ADMIN_PASSWORD"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/app/mlflow-auth.ini"  # the Dockerfile copies the repo to /app
    ini = configparser.ConfigParser()
    ini.read(ROOT / "mlflow-auth.ini")
    assert ini["mlflow"]["default_permission"] == "NO_PERMISSIONS"  # other accounts see nothing by default
    assert runwise["MLFLOW_UI_URL"] == "${MLFLOW_UI_URL:-}"  # no MLflow link unless the operator sets one
    assert services["mail"]["environment"]["MP_UI_AUTH"].startswith("${MAILPIT_UI_AUTH:?")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def deployment_command(port, store):
    """The compose service's `mlflow server` command, with this machine's paths and port."""
    args = shlex.split(compose()["services"]["mlflow"]["command"])
    values = {"--host": "127.0.0.1", "--port": str(port), "--workers": "1",
              "--backend-store-uri": f"sqlite:///{store}/mlflow.db", "--artifacts-destination": f"{store}/artifacts"}
    for flag, value in values.items():
        args[args.index(flag) + 1] = value
    hosts = args.index("--allowed-hosts") + 1
    args[hosts] += f",127.0.0.1:{port}"
    assert args[0] == "mlflow"
    return [sys.executable, "-m", "mlflow"] + args[1:]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    store = tmp_path_factory.mktemp("mlflow-deploy")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    service_env = compose()["services"]["mlflow"]["environment"]
    env.update(MLFLOW_AUTH_CONFIG_PATH=str(ROOT / service_env["MLFLOW_AUTH_CONFIG_PATH"].removeprefix("/app/")),
               MLFLOW_AUTH_ADMIN_USERNAME=ADMIN, MLFLOW_AUTH_ADMIN_PASSWORD=PASSWORD,
               MLFLOW_FLASK_SERVER_SECRET_KEY="test-flask-secret-0123456789")
    log = open(store / "server.log", "wb")
    proc = subprocess.Popen(deployment_command(port, store), cwd=store, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, url, store)
        yield {"url": url, "store": store, "port": port}
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(30)


def wait_until_up(proc, url, store):
    deadline = time.monotonic() + 300  # ~6 s on a quiet machine, over a minute on a busy one
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("mlflow server exited:\n" + (store / "server.log").read_text()[-3000:])
        try:
            if requests.get(f"{url}/health", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.5)
    pytest.fail("mlflow server did not start:\n" + (store / "server.log").read_text()[-3000:])


@pytest.fixture(scope="module")
def runwise_run(mlflow_server, tmp_path_factory):
    """A run with an artifact, logged through the server with Runwise's credentials."""
    from mlflow import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN, PASSWORD
    try:
        client = MlflowClient(mlflow_server["url"])
        exp = client.create_experiment("project-1")
        run = client.create_run(exp)
        client.log_param(run.info.run_id, "csv_path", "/data/media/uploads/team-1/secret.csv")
        model = tmp_path_factory.mktemp("model") / "model.pt"
        model.write_bytes(b"weights")
        client.log_artifact(run.info.run_id, str(model), "model")
        downloaded = client.download_artifacts(run.info.run_id, "model/model.pt", str(model.parent / "back"))
        assert Path(downloaded).read_bytes() == b"weights"  # Runwise's own account reads and writes
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]
    return {"experiment_id": exp, "run_id": run.info.run_id}


def artifact_url(server, run):
    return (f"{server['url']}/api/2.0/mlflow-artifacts/artifacts/{run['experiment_id']}/{run['run_id']}"
            "/artifacts/model/model.pt")


def test_anonymous_reads_and_writes_of_runs_and_artifacts_are_refused(mlflow_server, runwise_run):
    api = f"{mlflow_server['url']}/api/2.0/mlflow"
    anonymous = [
        requests.get(f"{api}/experiments/search", params={"max_results": 10}),
        requests.get(f"{api}/runs/get", params={"run_id": runwise_run["run_id"]}),
        requests.post(f"{api}/runs/search", json={"experiment_ids": [runwise_run["experiment_id"]]}),
        requests.get(f"{api}/metrics/get-history", params={"run_id": runwise_run["run_id"], "metric_key": "x"}),
        requests.get(artifact_url(mlflow_server, runwise_run)),
        requests.put(artifact_url(mlflow_server, runwise_run), data=b"planted pickle"),
        requests.post(f"{api}/runs/log-parameter", json={"run_id": runwise_run["run_id"], "key": "k", "value": "v"}),
        requests.get(f"{mlflow_server['url']}/get-artifact", params={"path": "model/model.pt",
                                                                      "run_uuid": runwise_run["run_id"]}),
    ]
    assert [r.status_code for r in anonymous] == [401] * len(anonymous)
    wrong = requests.get(f"{api}/runs/get", params={"run_id": runwise_run["run_id"]}, auth=(ADMIN, "wrong"))
    assert wrong.status_code == 401
    stored = next(mlflow_server["store"].rglob("model.pt"))
    assert stored.read_bytes() == b"weights"  # the anonymous PUT wrote nothing


def test_runwise_reaches_it_by_its_service_name_with_its_credentials(mlflow_server, runwise_run):
    got = requests.get(f"{mlflow_server['url']}/api/2.0/mlflow/runs/get", params={"run_id": runwise_run["run_id"]},
                       auth=(ADMIN, PASSWORD), headers={"Host": "mlflow:5000"})
    assert got.status_code == 200
    assert got.json()["run"]["data"]["params"][0]["key"] == "csv_path"


def test_another_account_sees_only_the_experiments_granted_to_it(mlflow_server, runwise_run):
    api = f"{mlflow_server['url']}/api/2.0/mlflow"
    created = requests.post(f"{api}/users/create", json={"username": "bob", "password": "bob-pw-0123456789"},
                            auth=(ADMIN, PASSWORD))
    assert created.status_code == 200, created.text
    bob = ("bob", "bob-pw-0123456789")
    run = {"run_id": runwise_run["run_id"]}
    assert requests.get(f"{api}/runs/get", params=run, auth=bob).status_code == 403
    assert requests.get(artifact_url(mlflow_server, runwise_run), auth=bob).status_code == 403
    granted = requests.post(f"{mlflow_server['url']}/api/3.0/mlflow/users/permissions/grant", auth=(ADMIN, PASSWORD),
                            json={"username": "bob", "resource_type": "experiment",
                                  "resource_id": runwise_run["experiment_id"], "permission": "READ"})
    assert granted.status_code == 200, granted.text
    assert requests.get(f"{api}/runs/get", params=run, auth=bob).status_code == 200
    assert requests.put(artifact_url(mlflow_server, runwise_run), data=b"x", auth=bob).status_code == 403


def test_a_long_history_is_read_through_the_server_in_pages_and_thinned(mlflow_server, runwise_run, monkeypatch):
    # a script that logs every step of a long run to the shared server: `advise --mlflow-run` and the
    # worker read it in pages and keep an even sample, first and last point included
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from tracking import mlflow_io

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    monkeypatch.setattr(mlflow_io, "HISTORY_POINTS", 300)
    monkeypatch.setattr(mlflow_io, "PAGE_POINTS", 250)
    client = MlflowClient(mlflow_server["url"])
    run_id = client.create_run(runwise_run["experiment_id"]).info.run_id
    now = int(time.time() * 1000)
    for start in range(0, 1200, 600):
        client.log_batch(run_id, metrics=[Metric("loss", 1.0 / (1 + s), now + s, s) for s in range(start, start + 600)])
    pages = []
    store = client._tracking_client.store
    real = store.get_metric_history
    monkeypatch.setattr(store, "get_metric_history", lambda *a, **k: pages.append(k) or real(*a, **k))
    loss = mlflow_io.read_run(run_id, client=client)["metrics"]["loss"]
    assert len(pages) == 5 and all(p["max_results"] == 250 for p in pages)
    assert len(loss) <= 300 and loss[0] == [0, 1.0] and loss[-1][0] == 1199
    assert max(b[0] - a[0] for a, b in zip(loss, loss[1:])) <= 2 * 1200 // 300


def test_make_runs_mlflow_ui_also_needs_its_generated_login():
    line = next(l for l in (ROOT / "Procfile").read_text().splitlines() if l.startswith("mlflow:"))
    assert "--app-name basic-auth" in line and "--host 127.0.0.1" in line
    assert "MLFLOW_AUTH_CONFIG_PATH=$root/mlflow-auth.ini" in line and ". var/mlflow-auth.env" in line
    makefile = (ROOT / "Makefile").read_text()
    assert "run: demo var/mlflow-auth.env" in makefile and "secrets.token_urlsafe" in makefile
    assert "login: admin / $$(sed -n 's/^MLFLOW_AUTH_ADMIN_PASSWORD=//p' var/mlflow-auth.env)" in makefile


@pytest.mark.slow
def test_the_open_in_mlflow_link_shows_the_run_in_the_model_training_view(mlflow_server, runwise_run, browser, settings):
    """Issue 14: MLflow 3 opens a run in its GenAI view unless told otherwise. Runwise's link (the
    target of /runs/<id>/mlflow/) opens it in the model-training view, seen in Chromium, signed in."""
    from tracking.views import mlflow_ui_run_url

    settings.MLFLOW_UI_URL = mlflow_server["url"]
    link = mlflow_ui_run_url(runwise_run["run_id"], runwise_run["experiment_id"])

    def sidebar(url):  # each in a fresh browser profile: MLflow keeps the last view in localStorage
        context = browser.new_context(http_credentials={"username": ADMIN, "password": PASSWORD},
                                      viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.goto(url)
            page.wait_for_selector("text=Model metrics", timeout=60_000)  # the run's page
            page.wait_for_selector("text=Traces", timeout=10_000)
            return page.inner_text("body")
        finally:
            context.close()

    assert "Model registry" not in sidebar(link.split("?")[0])  # the bare link: MLflow's GenAI view
    shown = sidebar(link)
    assert "Model registry" in shown and "Evaluations" not in shown, shown[:500]
