from django.contrib import admin

from .models import (Invite, Membership, MetricSeries, NotificationSetting, OutboxEmail, Project, Recommendation,
                     Run, Tag, Team)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["team", "user", "role", "joined_at"]
    list_filter = ["role"]
    list_select_related = ["team", "user"]


@admin.register(Invite)
class InviteAdmin(admin.ModelAdmin):
    list_display = ["team", "created_by", "created_at", "used_by", "used_at"]
    list_select_related = ["team", "created_by", "used_by"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "created_at"]
    list_select_related = ["team"]
    search_fields = ["name"]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "project"]
    list_select_related = ["project"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "project", "owner", "status", "queue", "best_val_loss", "created_at"]
    list_filter = ["status", "queue", "kind"]
    list_select_related = ["project", "owner"]
    search_fields = ["name", "mlflow_run_id"]
    raw_id_fields = ["parent", "applied_recommendation", "owner"]
    filter_horizontal = ["tags"]


@admin.register(MetricSeries)
class MetricSeriesAdmin(admin.ModelAdmin):
    list_display = ["run", "key", "count", "last_step", "updated_at"]
    raw_id_fields = ["run"]
    exclude = ["points"]


@admin.register(Recommendation)
class RecommendationAdmin(admin.ModelAdmin):
    list_display = ["run", "rule", "diagnosis", "confidence", "state", "helped"]
    list_filter = ["state", "diagnosis"]
    raw_id_fields = ["run"]


@admin.register(NotificationSetting)
class NotificationSettingAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "mode", "include_stopped"]


@admin.register(OutboxEmail)
class OutboxEmailAdmin(admin.ModelAdmin):
    list_display = ["key", "kind", "recipient", "state", "attempts", "created_at", "sent_at"]
    list_filter = ["state", "kind"]
    raw_id_fields = ["run"]
