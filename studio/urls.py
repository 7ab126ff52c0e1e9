"""The Studio's pages: the fine-tune wizard, jobs, models, data, the playground, worksheets and the account."""
from django.contrib.auth import views as auth_views
from django.urls import path

from studio import account, data_views, jobs_views, models_views, playground, views, worksheet
from studio.wizard import views as wizard

urlpatterns = [
    path("", views.home, name="home"),
    path("studio/fine-tune/", wizard.start, name="wizard"),
    path("studio/fine-tune/start-over", wizard.start_over, name="wizard_start_over"),
    path("studio/fine-tune/check-name", wizard.check_name, name="wizard_check_name"),
    path("studio/fine-tune/preview/rows", wizard.preview_rows, name="wizard_preview_rows"),
    path("studio/fine-tune/preview/examples", wizard.preview_examples, name="wizard_preview_examples"),
    path("studio/fine-tune/started/<str:job_id>/", wizard.started, name="wizard_started"),
    path("studio/fine-tune/<slug:step>/", wizard.step_view, name="wizard_step"),
    path("jobs/", jobs_views.job_list, name="jobs"),
    path("jobs/<str:job_id>/", jobs_views.job_detail, name="job_detail"),
    path("jobs/<str:job_id>/cancel", jobs_views.job_cancel, name="job_cancel"),
    path("models/", models_views.model_list, name="models"),
    path("models/<ident:name>/", models_views.model_detail, name="model_detail"),
    path("models/<ident:name>/grant", models_views.model_grant, name="model_grant"),
    path("models/<ident:name>/revoke", models_views.model_revoke, name="model_revoke"),
    path("data/", data_views.data, name="data"),
    path("data/tables/<ident:database>/<ident:schema>/<ident:table>/", data_views.table_page, name="data_table"),
    path("data/upload", data_views.upload, name="data_upload"),
    path("data/databases/<ident:database>/refresh", data_views.refresh_database, name="data_refresh"),
    path("playground/", playground.playground, name="playground"),
    path("playground/stream", playground.playground_stream, name="playground_stream"),
    path("playground/clear", playground.playground_clear, name="playground_clear"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("account/tokens/", account.api_tokens, name="api_tokens"),
    path("account/tokens/<int:pk>/revoke", account.revoke_api_token, name="revoke_api_token"),
    path("session/role", account.switch_role, name="switch_role"),
    path("session/warehouse", account.switch_warehouse, name="switch_warehouse"),
    path("worksheets/", worksheet.worksheet, name="worksheet"),
    path("worksheets/saved/", worksheet.save, name="worksheet_save"),
    path("worksheets/saved/<int:pk>/", worksheet.open_saved, name="worksheet_open"),
    path("worksheets/saved/<int:pk>/rename", worksheet.rename, name="worksheet_rename"),
    path("worksheets/saved/<int:pk>/delete", worksheet.delete, name="worksheet_delete"),
]
