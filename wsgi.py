"""WSGI entry point: `gunicorn wsgi:app` or any WSGI server."""

from campaign import create_app

app = create_app()
