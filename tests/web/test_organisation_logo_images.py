"""The letterhead logo after review (issue 14, item 8): scaled down to 600 px and re-encoded
on upload (so every letter stays small), metadata dropped; phone JPEGs (trailing data after
the image, MPO from iPhones) accepted; the size rule checked on each side, as it reads."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from campaign.extensions import db
from campaign.models import InstallationSetting, Role, User
from campaign.services.statements import organisation
from tests.pages import html_of
from tests.web.test_organisation import _form, _post

Login = Callable[[Role], User]


@pytest.fixture(autouse=True)
def weasyprint_loaded() -> None:
    """As in production and after any PDF test: importing WeasyPrint turns on Pillow's
    LOAD_TRUNCATED_IMAGES for the whole process; a cut-off logo is refused all the same."""
    import weasyprint  # noqa: F401


def _save(image: Image.Image, kind: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def _noisy(width: int, height: int) -> Image.Image:
    # Something that does not compress to nothing, like a real logo or photo.
    small = Image.effect_noise((width // 40, height // 40), 60).convert("RGB")
    return small.resize((width, height), Image.Resampling.BILINEAR)


def _stored(app: Flask) -> tuple[Image.Image, bytes, dict[str, Any]]:
    path = organisation.logo_path()
    assert path is not None
    data = path.read_bytes()
    row = db.session.get(InstallationSetting, organisation.SETTING)
    assert row is not None
    image = Image.open(io.BytesIO(data))
    return image, data, json.loads(row.value)


def test_a_large_png_is_scaled_to_600_pixels_and_stays_png(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    upload = _save(_noisy(2400, 800), "PNG")
    login(Role.ADMIN)
    response = _post(client, _form(logo=(io.BytesIO(upload), "logo.png")))
    assert response.status_code == 302, html_of(response)
    image, data, setting = _stored(app)
    assert image.format == "PNG" and image.size == (600, 200)
    assert len(data) < len(upload) / 4
    assert setting["logo_bytes"] == len(data) and setting["logo_type"] == "image/png"


def test_a_phone_jpeg_is_scaled_turned_upright_and_loses_its_metadata(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0112] = 6  # Orientation: the camera was turned; viewers rotate 90°
    upload = _save(_noisy(3000, 2000), "JPEG", quality=95, exif=exif) + b"\0" * 5000
    login(Role.ADMIN)
    response = _post(client, _form(logo=(io.BytesIO(upload), "photo.jpg")))
    assert response.status_code == 302, html_of(response)
    image, data, setting = _stored(app)
    assert image.format == "JPEG" and image.size == (400, 600)
    assert dict(image.getexif()) == {}
    assert len(data) < len(upload) / 4
    assert setting["logo_type"] == "image/jpeg"


def test_an_iphone_mpo_is_accepted_as_its_first_frame(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    first, second = Image.new("RGB", (300, 100), "red"), Image.new("RGB", (300, 100), "blue")
    upload = _save(first, "MPO", save_all=True, append_images=[second])
    login(Role.ADMIN)
    response = _post(client, _form(logo=(io.BytesIO(upload), "IMG_0001.jpg")))
    assert response.status_code == 302, html_of(response)
    image, _data, _setting = _stored(app)
    assert image.format == "JPEG" and getattr(image, "n_frames", 1) == 1
    red, _green, blue = image.convert("RGB").getpixel((150, 50))  # type: ignore[misc]
    assert red > 200 and blue < 60


def test_each_side_is_checked_and_the_message_says_the_rule(
    client: FlaskClient, login: Login, app: Flask
) -> None:
    login(Role.ADMIN)
    wide = _save(Image.new("1", (16000, 1000)), "PNG")
    response = _post(client, _form(logo=(io.BytesIO(wide), "wide.png")))
    assert response.status_code == 422
    assert "16000 × 1000 pixels" in html_of(response)
    assert "at most 4000 pixels on each side" in html_of(response)
    assert db.session.get(InstallationSetting, organisation.SETTING) is None


def test_a_cut_off_jpeg_is_still_refused(client: FlaskClient, login: Login, app: Flask) -> None:
    whole = _save(_noisy(400, 200), "JPEG", quality=90)
    login(Role.ADMIN)
    response = _post(client, _form(logo=(io.BytesIO(whole[: len(whole) // 2]), "cut.jpg")))
    assert response.status_code == 422
    assert "damaged or incomplete" in html_of(response)
