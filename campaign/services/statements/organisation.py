"""The organisation's letterhead: postal address, contact lines and logo (admins set them).

Values live in installation_settings (one JSON row, changed at run time, no restart); the
logo is a PNG or JPEG file in the instance folder, readable by this user only. The name
stays CAMPAIGN_ORGANISATION_NAME (else the sender's display name), as e-mails use it too.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from flask_babel import gettext as _

from campaign.extensions import db
from campaign.letters.pdf import Letterhead
from campaign.models import InstallationSetting, User
from campaign.services.accounts.audit import record_event

SETTING = "organisation.letterhead"
LOGO_MAX_BYTES = 1024 * 1024
LOGO_MAX_SIDE = 4000  # pixels a side accepted on upload (decompression bombs refused)
LOGO_MAX_PIXELS = LOGO_MAX_SIDE * LOGO_MAX_SIDE
LOGO_MAX_SIDE_STORED = 600  # the long side kept: ~5 cm at 300 dpi on the letterhead
LOGO_TYPES = {"PNG": ("image/png", "png"), "JPEG": ("image/jpeg", "jpg")}
MAX_ADDRESS_LINES = 6
MAX_LINE = 120
TEXT_FIELDS = ("address", "phone", "email", "website")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_PHONE = re.compile(r"\+?[0-9][0-9 ().\-/]*[0-9]( ?(ext\.?|x) ?[0-9]+)?", re.IGNORECASE)
_WEBSITE = re.compile(
    r"(https?://)?([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}(:[0-9]{1,5})?(/[^\s]*)?",
    re.IGNORECASE,
)


class OrganisationError(ValueError):
    """A letterhead value or logo was refused; `field` names the form field."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class LetterheadSettings:
    address_lines: tuple[str, ...] = ()
    phone: str = ""
    email: str = ""
    website: str = ""
    # The stored logo: file name in the logo folder, content type, size in bytes.
    logo_file: str = ""
    logo_type: str = ""
    logo_bytes: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def as_form(self) -> dict[str, str]:
        return {
            "address": "\n".join(self.address_lines),
            "phone": self.phone,
            "email": self.email,
            "website": self.website,
        }


def logo_folder() -> Path:
    return Path(current_app.instance_path) / "organisation"


def letterhead_settings() -> LetterheadSettings:
    """The stored letterhead values (empty ones when nothing was set)."""
    row = db.session.get(InstallationSetting, SETTING)
    if row is None or not row.value:
        return LetterheadSettings()
    try:
        data = json.loads(row.value)
    except ValueError:
        return LetterheadSettings()
    return LetterheadSettings(
        address_lines=tuple(str(line) for line in data.get("address_lines") or ()),
        phone=str(data.get("phone") or ""),
        email=str(data.get("email") or ""),
        website=str(data.get("website") or ""),
        logo_file=str(data.get("logo_file") or ""),
        logo_type=str(data.get("logo_type") or ""),
        logo_bytes=int(data.get("logo_bytes") or 0),
    )


def logo_path(settings: LetterheadSettings | None = None) -> Path | None:
    """The stored logo file, or None (no logo, or a stored name leading elsewhere)."""
    settings = settings or letterhead_settings()
    if not settings.logo_file:
        return None
    folder = logo_folder().resolve()
    path = (folder / settings.logo_file).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        return None
    return path


def letterhead(name: str) -> Letterhead:
    """What the PDF's letterhead shows: `name` and the Organisation page's values."""
    settings = letterhead_settings()
    path = logo_path(settings)
    logo = path.read_bytes() if path is not None else None
    return Letterhead(
        name=name,
        address_lines=settings.address_lines,
        phone=settings.phone,
        email=settings.email,
        website=_shown_website(settings.website),
        logo=logo,
        logo_type=settings.logo_type if logo else "",
    )


def _shown_website(url: str) -> str:
    # A printed letter shows the address a reader types: no scheme, no trailing slash.
    return re.sub(r"^https?://", "", url, flags=re.IGNORECASE).rstrip("/")


# --- Checking what an admin enters ----------------------------------------------------------


def _one_line(value: str, field: str, label: str) -> str:
    value = " ".join(value.split())
    if _CONTROL.search(value):
        raise OrganisationError(_("%(field)s contains a control character.", field=label), field)
    if len(value) > MAX_LINE:
        raise OrganisationError(
            _("%(field)s is longer than %(limit)d characters.", field=label, limit=MAX_LINE),
            field,
        )
    return value


def fields_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """Check the form's text values; raise OrganisationError naming the field."""
    lines = [
        _one_line(line, "address", _("A line of the address"))
        for line in str(form.get("address", "")).splitlines()
    ]
    lines = [line for line in lines if line]
    if len(lines) > MAX_ADDRESS_LINES:
        raise OrganisationError(
            _("The address has more than %(limit)d lines.", limit=MAX_ADDRESS_LINES), "address"
        )
    phone = _one_line(str(form.get("phone", "")), "phone", _("The telephone number"))
    if phone and not _PHONE.fullmatch(phone):
        raise OrganisationError(
            _(
                "The telephone number may hold only digits, spaces, + ( ) . - / "
                "and an extension, e.g. +33 1 23 45 67 89."
            ),
            "phone",
        )
    email = _one_line(str(form.get("email", "")), "email", _("The e-mail address"))
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as error:
            raise OrganisationError(
                _("The e-mail address is not valid: %(reason)s", reason=str(error)), "email"
            ) from None
    website = _one_line(str(form.get("website", "")), "website", _("The web address"))
    if website:
        if not _WEBSITE.fullmatch(website):
            raise OrganisationError(
                _("The web address is not valid; write it as www.example.org or https://…"),
                "website",
            )
        if not website.lower().startswith(("http://", "https://")):
            website = "https://" + website
    return {"address_lines": lines, "phone": phone, "email": email, "website": website}


def check_logo(data: bytes) -> tuple[str, str]:
    """Return (content type, file suffix) of an acceptable logo, or OrganisationError."""
    _data, content_type, suffix = prepare_logo(data)
    return content_type, suffix


def prepare_logo(data: bytes) -> tuple[bytes, str, str]:
    """The logo as stored: (bytes, content type, suffix), or OrganisationError saying why.

    Checked by content with Pillow (PNG or JPEG; an MPO from a phone camera is a JPEG
    with more frames: its first is kept), at most 4000 pixels a side, then turned upright
    (EXIF orientation), scaled to LOGO_MAX_SIDE on its long side and written again without
    metadata: PNG stays PNG, JPEG at quality 85. Every letter's PDF carries it, so it must
    stay small (a 4000-pixel photo made each letter 1 MB heavier).
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise OrganisationError(_("The logo file is empty."), "logo")
    if len(data) > LOGO_MAX_BYTES:
        raise OrganisationError(
            _(
                "The logo is larger than %(size)d MB; save it smaller (a letterhead needs "
                "about 600 pixels wide).",
                size=LOGO_MAX_BYTES // (1024 * 1024),
            ),
            "logo",
        )
    head = data[:512].lstrip().lower()
    if head.startswith((b"<?xml", b"<svg", b"<!doctype svg")) or b"<svg" in head:
        raise OrganisationError(
            _(
                "SVG logos are not accepted: an SVG can carry scripts and links to outside "
                "resources. Export the logo as PNG or JPEG."
            ),
            "logo",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind = "JPEG" if image.format == "MPO" else image.format or ""
                width, height = image.size
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise OrganisationError(
            _("The logo is not an image this page can read; upload a PNG or JPEG file."),
            "logo",
        ) from None
    except (OSError, ValueError, SyntaxError):
        raise _damaged() from None
    if kind not in LOGO_TYPES:
        raise OrganisationError(
            _(
                "The logo is a %(kind)s image; only PNG and JPEG are accepted.",
                kind=kind or "?",
            ),
            "logo",
        )
    if max(width, height) > LOGO_MAX_SIDE or width * height > LOGO_MAX_PIXELS:
        raise OrganisationError(
            _(
                "The logo is %(width)d × %(height)d pixels; at most %(side)d pixels on each "
                "side are accepted (a letterhead needs about 600).",
                width=width,
                height=height,
                side=LOGO_MAX_SIDE,
            ),
            "logo",
        )
    try:
        image = _decode_whole(data, kind)
    except (OSError, ValueError, SyntaxError, EOFError):
        raise _damaged() from None
    content_type, suffix = LOGO_TYPES[kind]
    return _reencode(image, kind), content_type, suffix


def _damaged() -> OrganisationError:
    return OrganisationError(
        _("The logo file is damaged or incomplete; export it again as PNG or JPEG."), "logo"
    )


def _decode_whole(data: bytes, kind: str) -> Any:
    """The first frame, decoded; OSError for a cut-off file.

    WeasyPrint sets Pillow's LOAD_TRUNCATED_IMAGES for the whole process, so a plain
    decode would fill a cut-off logo with grey. PNG: the chunk checksums and the end chunk
    (`verify`). JPEG: its segments are walked to the first image's end-of-image marker
    (`_jpeg_complete`), since Pillow's decoders honour that setting too; whatever follows
    the marker (data phones append, an MPO's other frames) is not read.
    """
    from PIL import Image, ImageFile

    if kind == "PNG":
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        image = Image.open(io.BytesIO(data))
        image.load()
        return image
    if not _jpeg_complete(data):
        raise OSError("the JPEG ends before its end-of-image marker")
    parser = ImageFile.Parser()
    parser.feed(data)
    return parser.close()


def _jpeg_complete(data: bytes) -> bool:
    """Whether the first image of a JPEG reaches its end-of-image marker (FFD9).

    Walks the marker segments by their lengths and the entropy-coded scans to the next
    real marker (FF00 is a stuffed byte, FFD0–FFD7 restart markers, FFFF fill), so an EOI
    inside an embedded EXIF thumbnail is skipped with its segment.
    """
    size = len(data)
    if not data.startswith(b"\xff\xd8"):
        return False
    at = 2
    while at + 2 <= size:
        if data[at] != 0xFF:
            return False
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker == 0xD9:
            return True
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            at += 2
            continue
        if at + 4 > size:
            return False
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
        if marker != 0xDA:
            continue
        while True:  # a scan's coded data runs to the next marker that is not RST or stuffing
            found = data.find(b"\xff", at)
            if found < 0 or found + 1 >= size:
                return False
            following = data[found + 1]
            if following == 0x00 or 0xD0 <= following <= 0xD7:
                at = found + 2
            elif following == 0xFF:
                at = found + 1
            else:
                at = found
                break
    return False


def _reencode(image: Any, kind: str) -> bytes:
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image) or image
    if kind == "JPEG":
        image = image.convert("L" if image.mode in ("1", "L", "LA", "I", "I;16") else "RGB")
    elif image.mode not in ("L", "LA", "RGB", "RGBA"):
        has_alpha = image.mode in ("PA", "RGBa", "La") or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha or image.mode == "P" else "RGB")
    if max(image.size) > LOGO_MAX_SIDE_STORED:
        image.thumbnail((LOGO_MAX_SIDE_STORED, LOGO_MAX_SIDE_STORED), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # No exif, no text chunks, no XMP: nothing of the original file but its pixels.
    if kind == "JPEG":
        image.save(out, "JPEG", quality=85, optimize=True, progressive=False)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def read_logo(stream: IO[bytes]) -> bytes:
    """Read an upload, never more than one byte over the limit."""
    return stream.read(LOGO_MAX_BYTES + 1)


def _store_logo(data: bytes, suffix: str) -> str:
    folder = logo_folder()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"logo-{hashlib.sha256(data).hexdigest()[:16]}.{suffix}"
    target = folder / name
    draft = folder / f".{name}.{os.getpid()}.part"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(draft, target)  # a reader sees the whole file or none
    return name


def save_letterhead(
    fields: Mapping[str, Any],
    *,
    logo: bytes | None = None,
    remove_logo: bool = False,
    actor: User | None = None,
) -> Path | None:
    """Store the letterhead values (and a new logo, checked); audited.

    Returns the previous logo file when it is no longer used: the caller deletes it after
    committing, so a rolled-back request keeps the logo the settings still name.
    """
    before = letterhead_settings()
    logo_file, logo_type, logo_bytes = before.logo_file, before.logo_type, before.logo_bytes
    if logo:
        stored, logo_type, suffix = prepare_logo(logo)
        logo_file, logo_bytes = _store_logo(stored, suffix), len(stored)
    elif remove_logo:
        logo_file, logo_type, logo_bytes = "", "", 0
    value = {
        "address_lines": list(fields.get("address_lines") or ()),
        "phone": str(fields.get("phone") or ""),
        "email": str(fields.get("email") or ""),
        "website": str(fields.get("website") or ""),
        "logo_file": logo_file,
        "logo_type": logo_type,
        "logo_bytes": logo_bytes,
    }
    row = db.session.get(InstallationSetting, SETTING)
    if row is None:
        row = InstallationSetting(name=SETTING)
        db.session.add(row)
    row.value = json.dumps(value, ensure_ascii=False)
    row.updated_by_id = actor.id if actor else None
    db.session.flush()
    old = {
        "address_lines": list(before.address_lines),
        "phone": before.phone,
        "email": before.email,
        "website": before.website,
    }
    changed = sorted(key for key in old if old[key] != value[key])
    if logo_file != before.logo_file:
        changed.append("logo")
    record_event(
        "organisation.letterhead.update",
        actor=actor,
        target_type="organisation",
        target_id="letterhead",
        detail={"changed": changed, "logo_bytes": logo_bytes},
    )
    if before.logo_file and before.logo_file != logo_file:
        return logo_path(before)
    return None
