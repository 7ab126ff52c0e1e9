"""The Django project: settings, the root URL map, the WSGI/ASGI applications and the environment readers
settings use. It wires the apps together and sits above all of them; no app imports it."""
