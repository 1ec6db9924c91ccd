"""Access helpers of registered code: the object, or Http404 for a user outside its team."""
from django.shortcuts import get_object_or_404

from .models import Code, FollowedExperiment


def code_or_404(user, code_id) -> Code:
    return get_object_or_404(Code.objects.select_related("project__team"), pk=code_id,
                             project__team__memberships__user=user)


def followed_or_404(user, followed_id) -> FollowedExperiment:
    return get_object_or_404(FollowedExperiment.objects.select_related("project"), pk=followed_id,
                             project__team__memberships__user=user)
