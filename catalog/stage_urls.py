from django.urls import path

from catalog import stage_views

urlpatterns = [
    # The user stage, and any other stage by its (qualified) name as one segment: a quoted name holding a
    # slash writes it ~2F (web/converters.py), as the Studio's own URLs do.
    path("~/files", stage_views.upload, {"stage": "~"}, name="user_stage_upload"),
    path("<ident:stage>/files", stage_views.upload, name="stage_upload"),
]
