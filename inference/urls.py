from django.urls import path

from inference import cortex_rest, openai_api

app_name = "inference"
# Mounted at the site root (project/urls.py): OpenAI clients take base_url=<server>/v1, and Snowflake's
# Cortex REST path sits beside the SQL API's under api/v2/. Neither has a trailing slash.
urlpatterns = [
    path("v1/chat/completions", openai_api.chat_completions, name="openai_chat_completions"),
    path("v1/models", openai_api.models, name="openai_models"),
    path("api/v2/cortex/inference:complete", cortex_rest.complete_view, name="cortex_complete"),
]
