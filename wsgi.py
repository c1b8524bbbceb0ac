"""WSGI entry point: `gunicorn wsgi:app` or any WSGI server.

`tracking` serves only the open pixel and click redirects, on gunicorn's asyncio worker:
`gunicorn -k asgi wsgi:tracking` (deploy/systemd/campaign-tracking.service, decision 0076).
"""

from campaign import create_app
from campaign.tracking.asgi import TrackingASGI

app = create_app()
tracking = TrackingASGI(app.wsgi_app)
