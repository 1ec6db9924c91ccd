"""JSON API of registered code: list and read code (entry points with typed parameters), and
start a run of an entry point. A bad parameter answers 400 naming it, as the form does:
{"field": "lr", "detail": "lr: expected a number, got 'abc' (float)"}; nothing is queued."""
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from tracking.serializers import RunSerializer

from . import services
from .access import code_or_404
from .mlproject import MLprojectError
from .models import Code


class CodeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Code
        fields = ["id", "project", "name", "source", "path", "git_url", "git_ref", "commit", "entry_points",
                  "created_at"]
        read_only_fields = fields


class CodeRunCreateSerializer(serializers.Serializer):
    entry_point = serializers.CharField(default="main")
    parameters = serializers.DictField(child=serializers.JSONField(), default=dict)
    name = serializers.CharField(required=False, allow_blank=True, default="")
    queue = serializers.CharField(default="cpu")
    stop_on_diagnosis = serializers.BooleanField(default=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), default=list)
    note = serializers.CharField(required=False, allow_blank=True, default="")


class CodeList(generics.ListAPIView):
    """Code registered in the caller's teams' projects."""

    serializer_class = CodeSerializer

    def get_queryset(self):
        return Code.objects.filter(project__team__memberships__user=self.request.user).order_by("pk")


class CodeDetail(generics.RetrieveAPIView):
    """One registered code: its entry points and their typed parameters."""

    serializer_class = CodeSerializer

    def get_object(self):
        return code_or_404(self.request.user, self.kwargs["pk"])


class CodeRunCreate(APIView):
    """Start a run of an entry point with these parameters (validated against the MLproject)."""

    @extend_schema(request=CodeRunCreateSerializer, responses={201: RunSerializer})
    def post(self, request, pk):
        code = code_or_404(request.user, pk)
        data = CodeRunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            run = services.code_run_create(code=code, owner=request.user, **data.validated_data)
        except MLprojectError as exc:
            return Response({"field": exc.field, "detail": f"{exc.field}: {exc.message}"},
                            status=status.HTTP_400_BAD_REQUEST)
        return Response(RunSerializer(run, context={"request": request}).data, status=status.HTTP_201_CREATED)
