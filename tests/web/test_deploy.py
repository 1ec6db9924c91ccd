"""Deployment: production settings pass `check --deploy`, and docker-compose.yml holds the services,
with web and worker sharing one set of settings."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_production_settings_pass_check_deploy(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}  # set for the browser tests only
    env.update(DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="runwise.example.com",
               VAR_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_debug_false_refuses_the_development_secret_key(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(DEBUG="false", VAR_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr


def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_the_services_of_a_real_deployment():
    services = compose()["services"]
    assert {"web", "worker", "beat", "redis", "postgres", "mlflow", "mail"} <= set(services)
    assert "gunicorn" in services["web"]["command"]
    assert "celery" in services["worker"]["command"] and "worker" in services["worker"]["command"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "--appendonly yes" in services["redis"]["command"]
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    assert any("/var/lib/postgresql/data" in v for v in services["postgres"]["volumes"])
    assert "--artifacts-destination" in services["mlflow"]["command"] and services["mlflow"]["volumes"]
    assert "mailpit" in services["mail"]["image"]
    assert (ROOT / "Dockerfile").exists()


def test_compose_gives_short_tasks_a_worker_and_trains_on_several_cpu_workers():
    services = compose()["services"]

    def queues(name):
        return set(services[name]["command"].split("-Q ")[1].split()[0].split(","))

    assert queues("worker-short") == {"default"}  # analysis, email, tuning steps: never behind a training
    assert "default" not in queues("worker") | queues("worker-cpu")
    assert services["worker-cpu"]["deploy"]["replicas"] == "${TRAIN_WORKERS:-2}"
    assert "-P solo" in services["worker-cpu"]["command"]  # one run at a time per container
    for name in ("worker-cpu", "worker-short"):
        assert services[name]["environment"] == services["web"]["environment"]


def test_web_and_worker_share_the_same_settings():
    services = compose()["services"]
    web, worker, beat = services["web"]["environment"], services["worker"]["environment"], services["beat"]["environment"]
    assert web == worker == beat
    for key in ("DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI", "MLFLOW_ARTIFACT_ROOT", "SECRET_KEY",
                "EMAIL_HOST", "SITE_URL"):
        assert key in web, key
    assert web["DATABASE_URL"].startswith("postgres://") and "@postgres:" in web["DATABASE_URL"]
    assert web["REDIS_URL"].startswith("redis://redis:")
    assert services["web"]["volumes"] == services["worker"]["volumes"]  # uploaded CSVs reach the workers


def test_the_sweeps_optuna_storage_is_the_postgres_service_with_a_driver_sqlalchemy_loads():
    from urllib.parse import urlsplit

    import sqlalchemy

    web = compose()["services"]["web"]["environment"]
    url = sqlalchemy.engine.make_url(web["OPTUNA_STORAGE"].replace("${POSTGRES_PASSWORD:-runwise}", "pw"))
    assert url.get_dialect().name == "postgresql" and url.get_dialect().driver == "psycopg"  # installed driver
    django_db = urlsplit(web["DATABASE_URL"])
    assert (url.host, url.port, url.database) == (django_db.hostname, django_db.port, django_db.path.lstrip("/"))
