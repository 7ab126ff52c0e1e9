from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from studio import views, worksheet

urlpatterns = [
    path("", views.home, name="home"),
    path("jobs/<str:job_id>/", views.job_detail, name="job_detail"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v2/", include("sqlapi.urls")),
    path("worksheets/", worksheet.worksheet, name="worksheet"),
    path("api/v2/stages/", include("catalog.stage_urls")),
]
