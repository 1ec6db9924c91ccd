"""JSON API for scripts (token auth): list and create runs, read a run's status and metrics.

Creating a run goes through services.run_create, so validation is the web form's; a bad config
field answers 400 naming the field: {"field": "lr", "detail": "lr: ..."}."""
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from . import access, selectors, services
from .config import ConfigError
from .models import Project, Run
from .serializers import ProjectSerializer, RunCreateSerializer, RunMetricsSerializer, RunSerializer


class ProjectList(generics.ListAPIView):
    """Projects of the caller's teams."""

    serializer_class = ProjectSerializer

    def get_queryset(self):
        return Project.objects.filter(team__memberships__user=self.request.user).select_related("team").order_by("pk")


class RunListCreate(generics.ListAPIView):
    """Runs of the caller's teams, newest first (filter with ?project=, ?status=); POST creates and queues one."""

    serializer_class = RunSerializer

    def get_queryset(self):
        qs = (Run.objects.filter(project__team__memberships__user=self.request.user)
              .select_related("owner").prefetch_related("tags").order_by("-created_at", "-pk"))
        if self.request.query_params.get("project", "").isdigit():
            qs = qs.filter(project_id=self.request.query_params["project"])
        if self.request.query_params.get("status"):
            qs = qs.filter(status=self.request.query_params["status"])
        return qs

    @extend_schema(parameters=[OpenApiParameter("project", int), OpenApiParameter("status", str)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(request=RunCreateSerializer, responses={201: RunSerializer})
    def post(self, request):
        data = RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        try:
            project = access.project_or_404(request.user, fields["project"])
            parent = access.run_or_404(request.user, fields["parent"]) if fields["parent"] else None
        except Http404:
            return Response({"field": "project", "detail": "project: no such project (or parent run)"},
                            status=status.HTTP_400_BAD_REQUEST)
        try:
            run = services.run_create(project=project, owner=request.user, config=fields["config"],
                                      name=fields["name"], tags=fields["tags"], note=fields["note"], parent=parent)
        except ConfigError as exc:
            return Response({"field": exc.field, "detail": f"{exc.field}: {exc.message}"},
                            status=status.HTTP_400_BAD_REQUEST)
        return Response(RunSerializer(run, context={"request": request}).data, status=status.HTTP_201_CREATED)


class RunDetail(generics.RetrieveAPIView):
    """One run: status, progress, config and best metrics."""

    serializer_class = RunSerializer

    def get_object(self):
        return access.run_or_404(self.request.user, self.kwargs["pk"])


class RunMetrics(APIView):
    """A run's curves (downsampled to at most ~2,000 points each), progress and diagnoses."""

    @extend_schema(responses=RunMetricsSerializer)
    def get(self, request, pk):
        return Response(selectors.run_chart_data(access.run_or_404(request.user, pk)))


class RunStop(APIView):
    """Ask the worker to stop the run."""

    @extend_schema(request=None, responses=RunSerializer)
    def post(self, request, pk):
        run = services.run_request_stop(run=access.run_or_404(request.user, pk))
        return Response(RunSerializer(run, context={"request": request}).data)
