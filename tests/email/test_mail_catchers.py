"""The local mail catchers: `make run`'s Procfile line really catches mail, and docker-compose
has Mailpit wired to the app's EMAIL_HOST."""
import shlex
import smtplib
import subprocess
import time
from pathlib import Path

import yaml

from tests.email.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_procfile_mail_catcher_writes_each_email_to_var_mail(tmp_path):
    [line] = [l for l in (ROOT / "Procfile").read_text().splitlines() if l.startswith("mail:")]
    port = free_port()
    command = line.split(":", 1)[1].replace("127.0.0.1:1025", f"127.0.0.1:{port}").replace(
        "var/mail", str(tmp_path / "mail"))
    proc = subprocess.Popen(shlex.split(command), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        client.sendmail("runwise@localhost", ["bob@example.com"], "Subject: [vision] run 42\r\n\r\nhello\r\n")
        client.quit()
        deadline = time.monotonic() + 5
        while not list((tmp_path / "mail" / "new").glob("*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        [mail] = list((tmp_path / "mail" / "new").glob("*"))
        assert "Subject: [vision] run 42" in mail.read_text()
    finally:
        proc.terminate()
        proc.wait(10)


def test_docker_compose_has_mailpit_as_the_apps_smtp_server():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["x-runwise-env"]
    mail = compose["services"][env["EMAIL_HOST"]]
    assert "mailpit" in mail["image"]
    assert env["EMAIL_PORT"] == "1025"
