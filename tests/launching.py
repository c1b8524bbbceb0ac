"""Launching a campaign through its confirmation page, as a person does (decision 0046)."""

from __future__ import annotations

import html
import re
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse


def confirmation_token(client: FlaskClient, campaign_id: int) -> str:
    """The signed token of what the confirmation page shows now."""
    page = client.get(f"/campaigns/{campaign_id}/launch").get_data(as_text=True)
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found, "the confirmation page offers no launch"
    return html.unescape(found.group(1))


def confirm_launch(client: FlaskClient, campaign_id: int, **data: Any) -> TestResponse:
    """Open the confirmation, tick the box and press the button (following the redirect)."""
    token = confirmation_token(client, campaign_id)
    return client.post(
        f"/campaigns/{campaign_id}/launch",
        data={"token": token, "confirm": "1", **data},
        follow_redirects=True,
    )
