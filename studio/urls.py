from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from studio import account, jobs_views, views, worksheet

urlpatterns = [
    path("", views.home, name="home"),
    path("jobs/", jobs_views.job_list, name="jobs"),
    path("jobs/<str:job_id>/", jobs_views.job_detail, name="job_detail"),
    path("jobs/<str:job_id>/cancel", jobs_views.job_cancel, name="job_cancel"),
    path("models/", views.model_list, name="models"),
    path("data/", views.data, name="data"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("account/tokens/", account.api_tokens, name="api_tokens"),
    path("account/tokens/<int:pk>/revoke", account.revoke_api_token, name="revoke_api_token"),
    path("session/role", account.switch_role, name="switch_role"),
    path("session/warehouse", account.switch_warehouse, name="switch_warehouse"),
    path("admin/", admin.site.urls),
    path("api/v2/", include("sqlapi.urls")),
    path("", include("inference.urls")),  # /v1/chat/completions, /v1/models, /api/v2/cortex/inference:complete
    path("worksheets/", worksheet.worksheet, name="worksheet"),
    path("api/v2/stages/", include("catalog.stage_urls")),
]
