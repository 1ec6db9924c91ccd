"""The web app under gunicorn with webapp/gunicorn.conf.py (what docker-compose and the Dockerfile
run): it serves, and its hooks freeze the start-up heap so that full collections skip it."""
import gc
import os
import runpy
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent.parent
CONF = ROOT / "webapp" / "gunicorn.conf.py"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_serves_the_app_with_the_projects_config(tmp_path):
    port = free_port()
    log = tmp_path / "gunicorn.log"
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(CONF), "webapp.wsgi",
                             "--bind", f"127.0.0.1:{port}", "--workers", "1"],
                            cwd=ROOT, env=dict(os.environ), stdout=open(log, "wb"), stderr=subprocess.STDOUT)

    def login_page():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=5) as resp:
                return resp.status == 200
        except OSError:
            return proc.poll() is not None  # exited: fail below with its log

    try:
        wait_for(login_page, 60, "gunicorn's login page", log=lambda: log.read_text(errors="replace"))
        assert proc.poll() is None, log.read_text(errors="replace")
        for _ in range(3):  # the requests that trigger a worker's freezes
            assert login_page()
    finally:
        proc.terminate()
        proc.wait(30)
    assert "Traceback" not in log.read_text(errors="replace")


def test_the_hooks_freeze_the_heap_at_start_and_after_a_workers_first_requests():
    conf = runpy.run_path(str(CONF))
    assert conf["preload_app"] is True
    gc.unfreeze()
    try:
        conf["when_ready"](None)
        assert gc.get_freeze_count() > 0
        gc.unfreeze()

        class Worker:
            pass

        worker = Worker()
        conf["post_fork"](None, worker)
        frozen_after = []
        for _ in range(12):
            conf["post_request"](worker, None, {}, None)
            frozen_after.append(gc.get_freeze_count() > 0)
            gc.unfreeze()
        assert [i + 1 for i, f in enumerate(frozen_after) if f] == [1, 10]
    finally:
        gc.unfreeze()
