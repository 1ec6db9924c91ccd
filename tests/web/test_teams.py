"""Teams: invites, joining, removing members, and seeing only one's own teams."""
from django.test import Client

from tracking.models import Invite, Membership, Project, Team


def test_a_signed_in_user_creates_a_team_and_becomes_its_admin(member_client, team_users):
    response = member_client.post("/teams/new/", {"name": "Audio"})
    team = Team.objects.get(name="Audio")
    assert response.status_code == 302 and response["Location"] == f"/teams/{team.pk}/"
    assert Membership.objects.get(team=team, user=team_users["member"]).role == Membership.ADMIN


def test_an_admin_creates_an_invite_link_that_another_user_opens_and_accepts(admin_client_, team_users):
    team = team_users["team"]
    admin_client_.post(f"/teams/{team.pk}/invites/new/")
    invite = Invite.objects.get(team=team)
    page = admin_client_.get(f"/teams/{team.pk}/")
    assert f"/invites/{invite.token}/" in page.content.decode()

    newcomer = Client()
    newcomer.force_login(team_users["outsider"])
    opened = newcomer.get(f"/invites/{invite.token}/")
    assert opened.status_code == 200 and "Join the team" in opened.content.decode()
    assert not Membership.objects.filter(team=team, user=team_users["outsider"]).exists()  # GET changes nothing

    newcomer.post(f"/invites/{invite.token}/accept/")
    assert Membership.objects.get(team=team, user=team_users["outsider"]).role == Membership.MEMBER
    assert newcomer.get(f"/projects/{team_users['project'].pk}/").status_code == 200


def test_an_invite_link_works_only_once(admin_client_, team_users, django_user_model):
    invite = Invite.objects.create(team=team_users["team"], created_by=team_users["admin"])
    first, second = (django_user_model.objects.create_user(n, password="pw-123456") for n in ("carol", "dave"))
    for user in (first, second):
        client = Client()
        client.force_login(user)
        client.post(f"/invites/{invite.token}/accept/", follow=True)
    assert Membership.objects.filter(team=team_users["team"], user=first).exists()
    assert not Membership.objects.filter(team=team_users["team"], user=second).exists()


def test_a_member_cannot_create_invites_or_remove_members(member_client, team_users):
    team = team_users["team"]
    admin_membership = Membership.objects.get(team=team, user=team_users["admin"])
    assert member_client.post(f"/teams/{team.pk}/invites/new/").status_code == 404
    assert member_client.post(f"/teams/{team.pk}/members/{admin_membership.pk}/remove/").status_code == 404
    assert not Invite.objects.exists()
    assert Membership.objects.filter(pk=admin_membership.pk).exists()


def test_an_admin_removes_a_member_who_then_loses_access(admin_client_, member_client, team_users):
    team = team_users["team"]
    membership = Membership.objects.get(team=team, user=team_users["member"])
    admin_client_.post(f"/teams/{team.pk}/members/{membership.pk}/remove/")
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert member_client.get(f"/projects/{team_users['project'].pk}/").status_code == 404


def test_the_last_admin_cannot_be_removed(admin_client_, team_users):
    team = team_users["team"]
    own = Membership.objects.get(team=team, user=team_users["admin"])
    response = admin_client_.post(f"/teams/{team.pk}/members/{own.pk}/remove/", follow=True)
    assert Membership.objects.filter(pk=own.pk).exists()
    assert "at least one admin" in response.content.decode()


def test_home_lists_only_the_users_own_teams_and_projects(member_client, team_users):
    Project.objects.create(team=team_users["other"], name="their-secret-project")
    body = member_client.get("/").content.decode()
    assert "vision" in body and "Vision" in body
    assert "their-secret-project" not in body and "Other" not in body


def test_a_member_creates_a_project_and_a_duplicate_name_is_refused(member_client, team_users):
    team = team_users["team"]
    response = member_client.post(f"/teams/{team.pk}/projects/new/", {"name": "nlp", "description": "text"})
    project = Project.objects.get(team=team, name="nlp")
    assert response["Location"] == f"/projects/{project.pk}/"
    again = member_client.post(f"/teams/{team.pk}/projects/new/", {"name": "nlp"}, follow=True)
    assert Project.objects.filter(team=team, name="nlp").count() == 1
    assert "already has a project" in again.content.decode()
