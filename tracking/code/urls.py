from django.urls import path

from . import api, views

urlpatterns = [
    path("projects/<int:project_id>/code/", views.code_index, name="code-index"),
    path("projects/<int:project_id>/code/register/", views.code_register, name="code-register"),
    path("projects/<int:project_id>/follow/", views.experiment_follow, name="experiment-follow"),
    path("followed/<int:followed_id>/unfollow/", views.experiment_unfollow, name="experiment-unfollow"),
    path("code/<int:code_id>/", views.code_detail, name="code"),
    path("code/<int:code_id>/runs/new/", views.code_run_new, name="code-run-new"),
    path("runs/<int:run_id>/code-clone/", views.code_run_clone, name="code-run-clone"),
    path("runs/<int:run_id>/output.json", views.run_output, name="run-output"),
    path("api/code/", api.CodeList.as_view(), name="api-code-list"),
    path("api/code/<int:pk>/", api.CodeDetail.as_view(), name="api-code"),
    path("api/code/<int:pk>/runs/", api.CodeRunCreate.as_view(), name="api-code-runs"),
]
