from django.urls import path

from catalog import stage_views

urlpatterns = [
    path("<str:stage>/files", stage_views.upload, name="stage_upload"),
]
