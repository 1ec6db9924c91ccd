"""Registered code: the examples/ projects (CODE_ROOT defaults to examples/), a local bare git
repository as a "remote", and helpers that wait on a real worker."""
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.fixture
def register(team_users):
    """register(example_dir_name, name=...) -> Code, registered by the team's admin."""
    from tracking.code.services import code_register

    def make(example="pytorch-plain", name=None, **kwargs):
        return code_register(project=team_users["project"], user=team_users["admin"], name=name or example,
                             path=example, **kwargs)

    return make


def ended(run_id):
    from tracking.models import Run

    run = Run.objects.get(pk=run_id)
    return run if run.is_final() else None


def wait_end(run, worker, timeout=120):
    return wait_for(lambda: ended(run.pk), timeout, f"end of run {run.pk}", log=worker.log)


@pytest.fixture
def git_remote(tmp_path):
    """A bare repository (the "remote", reached over file://) holding examples/pytorch-plain at
    two commits on main, and a tag v1 on the first. Returns (url, first sha, second sha)."""
    work = tmp_path / "work"
    shutil.copytree(EXAMPLES / "pytorch-plain", work)
    env_cmds = ["-c", "user.name=t", "-c", "user.email=t@example.com"]

    def git(*args, cwd=work):
        return subprocess.run(["git", *env_cmds, *args], cwd=cwd, check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    first = git("rev-parse", "HEAD")
    git("tag", "v1")
    (work / "MLproject").write_text((work / "MLproject").read_text().replace("default: 6", "default: 2"))
    git("commit", "-q", "-am", "two epochs")
    second = git("rev-parse", "HEAD")
    bare = tmp_path / "remote.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    return f"file://{bare}", first, second


@pytest.fixture(scope="session")
def mlflow_client():
    """A client of this session's MLflow SQLite store (created, and migrated, once)."""
    import os

    from workers.mlflow_logging import make_client

    client = make_client(os.environ["MLFLOW_TRACKING_URI"])
    client.search_experiments()
    return client


from tests.web.conftest import page, sign_in  # noqa: E402,F401  (Playwright page on the live server)
