from django.urls import path

from . import api, views

urlpatterns = [
    path("projects/<id:project_id>/code/", views.code_index, name="code-index"),
    path("projects/<id:project_id>/code/register/", views.code_register, name="code-register"),
    path("projects/<id:project_id>/follow/", views.experiment_follow, name="experiment-follow"),
    path("followed/<id:followed_id>/unfollow/", views.experiment_unfollow, name="experiment-unfollow"),
    path("code/<id:code_id>/", views.code_detail, name="code"),
    path("code/<id:code_id>/runs/new/", views.code_run_new, name="code-run-new"),
    path("runs/<id:run_id>/code-clone/", views.code_run_clone, name="code-run-clone"),
    path("runs/<id:run_id>/output.json", views.run_output, name="run-output"),
    path("api/code/", api.CodeList.as_view(), name="api-code-list"),
    path("api/code/<id:pk>/", api.CodeDetail.as_view(), name="api-code"),
    path("api/code/<id:pk>/runs/", api.CodeRunCreate.as_view(), name="api-code-runs"),
]
