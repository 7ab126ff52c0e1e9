"""Process supervision: starting, waiting for and stopping the stack's processes (Redis, RQ workers, inference
servers, the web server). `processes` is Django-free, so test fixtures and settings can use it before Django
is set up; `manage.py runstack` starts the whole stack with it."""
