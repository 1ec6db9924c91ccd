"""`manage.py mlflow_store` creates the MLflow tables once, before `make run` starts the MLflow server
and the workers (which otherwise both migrate a new SQLite store and one hits "database is locked")."""
import sqlite3

from django.core.management import call_command

from tests.conftest import ROOT


def test_it_creates_the_tables_of_a_new_sqlite_store_and_is_idempotent(settings, tmp_path):
    path = tmp_path / "mlflow.db"
    settings.MLFLOW_TRACKING_URI = f"sqlite:///{path}"
    call_command("mlflow_store")
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type='table'")}
        version = db.execute("select version_num from alembic_version").fetchone()
    assert {"experiments", "runs", "metrics", "alembic_version"} <= tables and version
    call_command("mlflow_store")  # a second `make run`: nothing to do


def test_make_run_creates_the_store_before_honcho_starts_the_services():
    makefile = (ROOT / "Makefile").read_text()
    demo = makefile.split("\ndemo:")[1].split("\n\n")[0]
    assert "manage.py mlflow_store" in demo
    assert "run: demo" in makefile
