"""Shared fixtures: real redis-server, real Celery worker process, real MLflow store,
and a team with an admin, a member and an outsider."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis as redis_lib

from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent

# Rough cost of a test in seconds, for the order below: a `slow` one (real training, worker, server
# or browser) takes 10-100 s on CI, a browser page a few more, the others well under a second.
SLOW_TEST_SECONDS, BROWSER_TEST_SECONDS, OTHER_TEST_SECONDS = 20, 3, 0.3


def pytest_collection_modifyitems(items):
    """The files with the longest estimated time first, their tests in their own order. `make test`
    hands whole files to its two processes in this order (`--dist loadfile --no-loadscope-reorder`),
    so the run ends on short files, never on one long file running alone while the other process idles."""
    def cost(item):
        seconds = SLOW_TEST_SECONDS if item.get_closest_marker("slow") else OTHER_TEST_SECONDS
        return seconds + (BROWSER_TEST_SECONDS if "browser" in item.fixturenames else 0)

    per_file, first = {}, {}
    for index, item in enumerate(items):
        per_file[item.path] = per_file.get(item.path, 0) + cost(item)
        first.setdefault(item.path, index)
    items.sort(key=lambda item: (-per_file[item.path], first[item.path]))  # stable: a file's tests keep their order


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hasher():
    """Django's advice for test suites: a fast hasher for the passwords tests set (a PBKDF2 hash takes
    ~0.45 s here; a test team's three users cost 1.4 s of every test that makes them). PBKDF2 stays in
    the list, so a password hashed by it still checks. Only this process: no server or worker
    process a test starts checks a password."""
    from django.conf import settings
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher",
                                             *settings.PASSWORD_HASHERS]):
        yield


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on this session's own port (see the root conftest)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed: run `make test`, which installs it")
    port = int(os.environ["RUNWISE_TEST_REDIS_PORT"])
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis_lib.Redis(port=port)

    def up():
        try:
            return client.ping()
        except redis_lib.ConnectionError:
            return False

    wait_for(up, 10, "redis-server")
    server = {"url": os.environ["REDIS_URL"], "port": port, "client": client, "proc": proc}
    yield server
    server["proc"].terminate()  # the one running now: a test may have restarted Redis
    server["proc"].wait(10)


@pytest.fixture(scope="session")
def django_db_modify_db_settings_xdist_suffix():
    """pytest-xdist: each process already has its own VAR_DIR (the root conftest), so the test database
    keeps its name there (VAR_DIR/test-db.sqlite3, which the worker processes that tests start open)."""


@pytest.fixture(autouse=True)
def _empty_broker(request):
    """Each test that uses Redis starts on an empty broker: a task left queued by an earlier test
    (whose run ids the next test's database reuses) must not reach this test's worker."""
    if "redis_server" in request.fixturenames:
        client = request.getfixturevalue("redis_server")["client"]
        for key in client.scan_iter():  # queues and unacked messages; kombu's bindings stay
            if not key.startswith(b"_kombu.binding."):
                client.delete(key)


class WorkerProcess:
    """A real `celery worker` subprocess on the test database; can be killed and restarted."""

    def __init__(self, queues, log_path):
        self.queues = queues
        self.log_path = log_path
        self.proc = None

    def start(self):
        env = dict(os.environ, DATABASE_URL=f"sqlite:///{os.environ['VAR_DIR']}/test-db.sqlite3",
                   PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
        log = open(self.log_path, "ab")
        since = log.tell()  # a restarted worker's log goes on after its earlier "ready"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-P", "solo", "-Q", self.queues,
             "-l", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"test-{os.getpid()}-{time.monotonic_ns()}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        wait_for(lambda: "ready" in self.log(since) or self.proc.poll() is not None,
                  60, "celery worker")
        if self.proc.poll() is not None:
            raise RuntimeError("celery worker exited:\n" + Path(self.log_path).read_text()[-3000:])
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def stop(self):
        """At a test's end: SIGKILL, not Celery's warm shutdown (~3 s of joins at exit); its training
        children and writer end with it (parent-death pipe and signal), and the next test starts on
        an empty broker."""
        self.kill(signal.SIGKILL)

    def log(self, since=0):
        """Its output, from byte `since` on."""
        with open(self.log_path, "rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")


class WorkerSeenByOneTest:
    """A module's shared worker as one test sees it: its log from that test's start on."""

    def __init__(self, worker):
        self.worker = worker
        self.since = Path(worker.log_path).stat().st_size

    @property
    def proc(self):
        return self.worker.proc

    def kill(self, sig=signal.SIGKILL):
        self.worker.kill(sig)

    def log(self):
        return self.worker.log(self.since)


@pytest.fixture(scope="module")
def _module_worker(redis_server, django_db_setup, tmp_path_factory):
    worker = WorkerProcess("cpu,gpu,default", tmp_path_factory.mktemp("worker") / "worker.log")
    yield worker
    worker.stop()


@pytest.fixture
def celery_worker_process(_module_worker, transactional_db):
    """A real worker consuming every queue, on the same (file) test database.

    The tests of a module take turns on one worker process: a start costs ~24 s of CPU here (Celery,
    the MLflow writer, the forkserver importing torch), which the suite paid ~20 times over. It is
    started at the first test that needs it (after that test's own fixtures, e.g. an environment),
    started again after a test killed it, and stopped after a test that left a run queued or
    running, so that no run trains into the next test."""
    worker = _module_worker
    if worker.proc is None or worker.proc.poll() is not None:
        worker.start()
    yield WorkerSeenByOneTest(worker)
    from tracking.models import Run

    if Run.objects.exclude(status__in=Run.FINAL).exists():
        worker.stop()


@pytest.fixture
def team_users(db, django_user_model):
    """A team with an admin and a member, and an outsider in another team."""
    from tracking.models import Membership, Project, Team

    team = Team.objects.create(name="Vision")
    other = Team.objects.create(name="Other")
    admin = django_user_model.objects.create_user("alice", "alice@example.com", "pw-alice-123")
    member = django_user_model.objects.create_user("bob", "bob@example.com", "pw-bob-123")
    outsider = django_user_model.objects.create_user("eve", "eve@example.com", "pw-eve-123")
    Membership.objects.create(team=team, user=admin, role=Membership.ADMIN)
    Membership.objects.create(team=team, user=member)
    Membership.objects.create(team=other, user=outsider, role=Membership.ADMIN)
    project = Project.objects.create(team=team, name="vision")
    other_project = Project.objects.create(team=other, name="secret")
    return dict(team=team, other=other, admin=admin, member=member, outsider=outsider,
                project=project, other_project=other_project)


# Playwright driving Debian's Chromium (never `playwright install`).
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()
