from django.contrib import admin

from access.models import Role

admin.site.register(Role)
