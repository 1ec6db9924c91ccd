"""Registering code: only team admins; MLproject read (nothing run); bad input refused naming the field."""
import pytest
from django.test import Client

from tracking.code.mlproject import MLprojectError
from tracking.code.services import code_register
from tracking.models import Code, Run

pytestmark = pytest.mark.django_db


def client_for(user):
    client = Client()
    client.force_login(user)
    return client


def test_an_admin_registers_a_directory_and_its_entry_points_are_listed(team_users):
    admin = client_for(team_users["admin"])
    project = team_users["project"]
    response = admin.post(f"/projects/{project.pk}/code/register/", {"name": "plain", "path": "pytorch-plain"})
    code = Code.objects.get(name="plain")
    assert response.status_code == 302 and response["Location"] == f"/code/{code.pk}/"
    assert code.entry_points["main"]["parameters"]["lr"] == {"type": "float", "default": 0.02}
    assert code.entry_points["main"]["parameters"]["epochs"] == {"type": "int", "default": 6}
    assert not Run.objects.exists()  # nothing runs at registration
    page = admin.get(f"/code/{code.pk}/").content.decode()
    assert "entry-point-main" in page and "batch_size" in page and "python train.py" in page
    assert "run with their own rights" in page or "own rights" in page


def test_a_member_cannot_register_code(team_users):
    member = client_for(team_users["member"])
    project = team_users["project"]
    response = member.post(f"/projects/{project.pk}/code/register/", {"name": "x", "path": "pytorch-plain"})
    assert response.status_code == 403 and not Code.objects.exists()
    page = member.get(f"/projects/{project.pk}/code/").content.decode()
    assert "Only a team admin can register code" in page and "code-register-form" not in page


@pytest.mark.parametrize("path, message", [
    ("/etc", "outside CODE_ROOT"),
    ("../tracking", "outside CODE_ROOT"),
    ("does-not-exist", "is not a directory"),
])
def test_a_path_outside_code_root_or_missing_is_refused(team_users, path, message):
    admin = client_for(team_users["admin"])
    response = admin.post(f"/projects/{team_users['project'].pk}/code/register/", {"name": "x", "path": path})
    assert response.status_code == 400 and message in response.content.decode()
    assert not Code.objects.exists()


def test_a_directory_without_an_mlproject_or_with_an_invalid_one_is_refused(team_users, settings, tmp_path):
    settings.CODE_ROOT = str(tmp_path)
    (tmp_path / "empty").mkdir()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "MLproject").write_text("name: bad\nentry_points:\n  main:\n    parameters:\n      lr: {type: float, "
                                   "default: fast}\n    command: python t.py {lr}\n")
    typo = tmp_path / "typo"
    typo.mkdir()
    (typo / "MLproject").write_text("entry_points:\n  main:\n    command: python t.py {learning_rate}\n")
    args = dict(project=team_users["project"], user=team_users["admin"])
    with pytest.raises(MLprojectError, match="no MLproject file"):
        code_register(name="a", path="empty", **args)
    with pytest.raises(MLprojectError, match="default of 'lr': expected a number"):
        code_register(name="b", path="bad", **args)
    with pytest.raises(MLprojectError, match="learning_rate"):
        code_register(name="c", path="typo", **args)
    assert not Code.objects.exists()


def test_a_git_ref_is_resolved_to_its_commit_and_a_missing_ref_is_refused(team_users, git_remote):
    url, first, second = git_remote
    args = dict(project=team_users["project"], user=team_users["admin"])
    main = code_register(name="main", git_url=url, git_ref="main", **args)
    tagged = code_register(name="tagged", git_url=url, git_ref="v1", **args)
    by_sha = code_register(name="sha", git_url=url, git_ref=first[:10], **args)
    assert (main.commit, tagged.commit, by_sha.commit) == (second, first, first)
    assert main.entry_points["main"]["parameters"]["epochs"]["default"] == 2
    assert tagged.entry_points["main"]["parameters"]["epochs"]["default"] == 6
    with pytest.raises(MLprojectError) as refused:
        code_register(name="nope", git_url=url, git_ref="no-such-branch", **args)
    assert refused.value.field == "git_ref" and "no-such-branch" in refused.value.message
    with pytest.raises(MLprojectError) as refused:
        code_register(name="nope", git_url=url, git_ref="0" * 40, **args)
    assert refused.value.field == "git_ref"
    with pytest.raises(MLprojectError) as refused:
        code_register(name="nope", git_url="ext::sh -c touch% /tmp/pwned", git_ref="main", **args)
    assert refused.value.field == "git_url"


def test_the_demo_registers_the_examples_once(db):
    from django.core.management import call_command

    from tracking.models import Project

    call_command("seed_demo")
    call_command("seed_demo")
    project = Project.objects.get(name="demo")
    assert sorted(project.codes.values_list("name", flat=True)) == ["hf-trainer", "lightning", "pytorch-plain"]
