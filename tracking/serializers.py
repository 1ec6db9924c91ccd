from rest_framework import serializers

from .config import ConfigError
from .models import Project, Run
from .services import tag_names_clean
from .selectors import json_safe


class ProjectSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.name", read_only=True)

    class Meta:
        model = Project
        fields = ["id", "name", "description", "team", "created_at"]


class RunSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    tags = serializers.SlugRelatedField(many=True, read_only=True, slug_field="name")
    progress = serializers.FloatField(source="progress_fraction", read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Run
        fields = ["id", "url", "project", "name", "owner", "status", "status_reason", "queue", "config", "tags",
                  "note", "parent", "mlflow_run_id", "device", "worker", "epoch", "step", "total_steps",
                  "progress", "eta_seconds", "latest_metrics", "best_val_loss", "best_val_accuracy",
                  "stop_requested", "created_at", "started_at", "finished_at"]
        read_only_fields = fields

    def to_representation(self, run):
        return json_safe(super().to_representation(run))

    def get_url(self, run) -> str:
        request = self.context.get("request")
        return request.build_absolute_uri(run.get_absolute_url()) if request else run.get_absolute_url()


class RunCreateSerializer(serializers.Serializer):
    """The config is validated by tracking.config.validate_config inside run_create (one validator),
    the tags by services.tag_names_clean (the form's limits). `null` is taken for every optional
    key, so a run as the API returns it can be posted back."""

    project = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    config = serializers.DictField(child=serializers.JSONField(allow_null=True), required=False, default=dict,
                                   allow_null=True)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, allow_null=True, default="")
    tags = serializers.ListField(child=serializers.CharField(allow_blank=True, trim_whitespace=False),
                                 required=False, allow_null=True, default=list)
    note = serializers.CharField(required=False, allow_blank=True, allow_null=True, default="")
    parent = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1,
                                      max_value=2**63 - 1)

    def validate_tags(self, names):
        try:
            return tag_names_clean(names or [])
        except ConfigError as exc:
            raise serializers.ValidationError(exc.message) from None


class MetricSeriesSerializer(serializers.Serializer):
    points = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))
    count = serializers.IntegerField()
    last_step = serializers.IntegerField()


class RunMetricsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    final = serializers.BooleanField()
    epoch = serializers.IntegerField()
    step = serializers.IntegerField()
    total_steps = serializers.IntegerField()
    progress = serializers.FloatField()
    eta_seconds = serializers.FloatField(allow_null=True)
    best_val_loss = serializers.FloatField(allow_null=True)
    best_val_accuracy = serializers.FloatField(allow_null=True)
    diagnoses = serializers.ListField(child=serializers.DictField())
    series = serializers.DictField(child=MetricSeriesSerializer())
