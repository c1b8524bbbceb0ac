"""Tracking tokens: short, round-trip, and refused when anything in them was changed."""

from __future__ import annotations

import base64

import pytest

from campaign.models.tracking import TrackingKind
from campaign.tracking.tokens import TOKEN_LENGTH, make_token, read_token

KEY = "a-test-secret-key"


def test_a_click_token_round_trips_and_is_short() -> None:
    token = make_token(
        TrackingKind.CLICK, campaign_id=7, delivery_id=123_456, link_id=42, secret_key=KEY
    )
    assert len(token) == TOKEN_LENGTH <= 40
    assert token.replace("-", "").replace("_", "").isalnum()  # safe in a URL path as is
    read = read_token(token, secret_key=KEY)
    assert read is not None
    assert (read.kind, read.campaign_id, read.delivery_id, read.link_id) == (
        TrackingKind.CLICK,
        7,
        123_456,
        42,
    )


def test_an_open_token_names_no_link() -> None:
    token = make_token(TrackingKind.OPEN, campaign_id=1, delivery_id=2, secret_key=KEY)
    read = read_token(token, secret_key=KEY)
    assert read is not None and read.kind == TrackingKind.OPEN and read.link_id is None


def test_tokens_of_two_deliveries_differ_and_do_not_reveal_each_other() -> None:
    first = make_token(TrackingKind.OPEN, campaign_id=1, delivery_id=2, secret_key=KEY)
    second = make_token(TrackingKind.OPEN, campaign_id=1, delivery_id=3, secret_key=KEY)
    assert first != second
    # Another installation (another secret key) cannot make or read ours.
    assert read_token(first, secret_key="another-key") is None


def _flip(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize("index", [0, 4, 8, 12, 13, 26])
def test_a_token_with_any_byte_changed_is_refused(index: int) -> None:
    # Bytes 0-12 are kind, campaign, delivery and link; the rest is the MAC.
    token = make_token(TrackingKind.CLICK, campaign_id=7, delivery_id=8, link_id=9, secret_key=KEY)
    assert read_token(_flip(token, index), secret_key=KEY) is None


@pytest.mark.parametrize(
    "garbled",
    ["", "x", "not-a-token", "A" * TOKEN_LENGTH, "=" * TOKEN_LENGTH, "é" * TOKEN_LENGTH, "A" * 400],
)
def test_garbled_tokens_are_refused(garbled: str) -> None:
    assert read_token(garbled, secret_key=KEY) is None


def test_a_signed_click_token_without_a_link_cannot_be_made() -> None:
    with pytest.raises(ValueError):
        make_token(TrackingKind.CLICK, campaign_id=1, delivery_id=2, secret_key=KEY)
