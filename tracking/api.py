"""JSON API for scripts (token auth): list and create runs, read a run's status and metrics.

Creating a run goes through services.run_create, so validation is the web form's; a bad config
field answers 400 naming the field: {"field": "lr", "detail": "lr: ..."}."""
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from . import access, selectors, services
from .config import ConfigError
from .models import Project, Run
from .serializers import ProjectSerializer, RunCreateSerializer, RunMetricsSerializer, RunSerializer


def bad_request(field, message):
    """The API's one shape of a 400: {"field": "lr", "detail": "lr: must be > 0"}."""
    return Response({"field": field, "detail": f"{field}: {message}"}, status=status.HTTP_400_BAD_REQUEST)


def exception_handler(exc, context):
    """DRF's handler, with every 400 (a serializer's errors, a body that is not JSON or too large)
    in the {"field", "detail"} shape, naming the first bad field ("body" for the request as a whole)."""
    if isinstance(exc, RequestDataTooBig):  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE: nothing was read
        return bad_request("body", f"larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes")
    if isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        return bad_request("body", str(exc))
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code == 400:
        field, message = _first_error(response.data)
        response.data = {"field": field, "detail": f"{field}: {message}"}
    return response


def _first_error(data, field=""):
    if isinstance(data, dict) and data:
        key, value = next(iter(data.items()))
        if key in ("detail", api_settings.NON_FIELD_ERRORS_KEY) or isinstance(key, int) or str(key).isdigit():
            return _first_error(value, field)  # the request as a whole, or an item of a list: same field
        return _first_error(value, f"{field}.{key}" if field else str(key))
    if isinstance(data, list) and data:
        return _first_error(data[0], field)
    return field or "body", str(data)


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
        if self.request.query_params.get("project") is not None:
            qs = qs.filter(project_id=access.int_param(self.request.query_params["project"]))
        if self.request.query_params.get("status"):
            qs = qs.filter(status=self.request.query_params["status"])
        return qs

    @extend_schema(parameters=[OpenApiParameter("project", int), OpenApiParameter("status", str)])
    def get(self, request, *args, **kwargs):
        project = request.query_params.get("project")
        if project is not None and access.int_param(project) is None:
            return bad_request("project", "must be a project id (digits)")
        return super().get(request, *args, **kwargs)

    @extend_schema(request=RunCreateSerializer, responses={201: RunSerializer})
    def post(self, request):
        data = RunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        try:
            project = access.project_or_404(request.user, fields["project"])
        except Http404:
            return bad_request("project", "no such project")
        try:
            parent = access.run_or_404(request.user, fields["parent"]) if fields["parent"] else None
        except Http404:
            return bad_request("parent", "no such run")
        try:
            run = services.run_create(project=project, owner=request.user, config=fields["config"] or {},
                                      name=fields["name"] or "", tags=fields["tags"], note=fields["note"] or "",
                                      parent=parent)
        except ConfigError as exc:
            return bad_request(exc.field, exc.message)
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
