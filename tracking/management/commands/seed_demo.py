from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from tracking.models import Membership, Project, Team

DEMO_USER, DEMO_PASSWORD = "demo", "demo-pass-123"


class Command(BaseCommand):
    help = "Create the demo team, project and login (idempotent)."

    def handle(self, *args, **options):
        user, created = get_user_model().objects.get_or_create(
            username=DEMO_USER, defaults={"email": "demo@localhost", "is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        team, _ = Team.objects.get_or_create(name="Demo team")
        Membership.objects.get_or_create(team=team, user=user, defaults={"role": Membership.ADMIN})
        project, _ = Project.objects.get_or_create(team=team, name="demo", defaults={"description": "Try a run here."})
        self.register_examples(project, user)
        self.stdout.write(f"demo login: {DEMO_USER} / {DEMO_PASSWORD}")

    def register_examples(self, project, user):
        """The examples/ MLflow projects as the demo project's code (when CODE_ROOT holds them)."""
        from tracking.code.mlproject import MLprojectError
        from tracking.code.services import code_register

        for name in ("pytorch-plain", "lightning", "hf-trainer"):
            if project.codes.filter(name=name).exists():
                continue
            try:
                code_register(project=project, user=user, name=name, path=name)
            except MLprojectError as exc:
                self.stderr.write(f"example {name} not registered: {exc}")
