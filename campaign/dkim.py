"""DKIM (RFC 6376, RFC 8463): keys, the DNS record to publish, and signing built messages.

dkimpy reads the message, canonicalises it (relaxed/relaxed), picks and hashes the signed
header fields and folds the DKIM-Signature field; the private-key operation itself goes
through `cryptography` (OpenSSL) with a key parsed once per account and kept: dkimpy's own
RSA is pure Python (~6 ms a letter) and would parse the PEM again for every letter
(docs/decisions/0042-dkim.md).
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dkim as dkimpy
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import (
    CanonicalizationPolicy,
    correct_empty_body,
    strip_trailing_lines,
)
from rq.timeouts import BaseTimeoutException

RSA = "rsa"
ED25519 = "ed25519"
ALGORITHMS = (RSA, ED25519)
RSA_BITS = 2048  # the size generated; smaller keys are refused (RFC 8301: 1024 is weak)
# Signed when present, in this order; From, To, Subject, Date and Message-ID are listed once
# more so that a second one added on the way breaks the signature (RFC 6376 8.15).
SIGNED_HEADERS = (
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "in-reply-to",
    "references",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
    "content-type",
    "mime-version",
    "content-language",
)
OVERSIGNED = ("from", "to", "subject", "date", "message-id")
# A selector is one DNS label or several (RFC 6376 3.1); we keep to one label, so that a
# selector never hides a dot typed by mistake ("2026.06" would make a sub-domain).
_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DOMAIN_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_CANON = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")


class DkimError(ValueError):
    """A key, selector or domain that cannot be used; `field` names it (selector, domain, key)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class DkimSigningError(RuntimeError):
    """A message could not be signed; it must not go out unsigned."""


def _(text: str, **values: Any) -> str:
    # The adapter speaks through gettext when an app is there (web, CLI), plain otherwise.
    from flask import has_app_context

    if has_app_context():
        from flask_babel import gettext

        return str(gettext(text, **values))
    return text % values if values else text


# --- checks --------------------------------------------------------------------------------


def check_selector(selector: str) -> str:
    """Return the selector (lower-cased), or raise DkimError saying what is wrong with it."""
    value = selector.strip()
    if not value:
        raise DkimError(_("Selector: a selector is required, e.g. “campaign2026”"), "selector")
    if any(c.isspace() for c in value) or "." in value:
        raise DkimError(
            _(
                "Selector: “%(selector)s” holds a dot or a space; a selector is one DNS label "
                "(letters, digits and hyphens), e.g. “campaign2026”",
                selector=value,
            ),
            "selector",
        )
    if not _SELECTOR.fullmatch(value):
        raise DkimError(
            _(
                "Selector: “%(selector)s” is not a DNS label (letters, digits and hyphens, at "
                "most 63, not starting or ending with a hyphen)",
                selector=value,
            ),
            "selector",
        )
    return value.lower()


def default_selector() -> str:
    """A new selector for every key: the month it was made, "campaign202607"."""
    return "campaign" + time.strftime("%Y%m", time.gmtime())


def check_domain(domain: str) -> str:
    """Return the signing domain in ASCII (IDNA) form, or raise DkimError."""
    value = domain.strip().rstrip(".").lower()
    if not value.isascii():
        try:
            import idna

            value = idna.encode(value, uts46=True).decode("ascii")
        except (UnicodeError, ValueError):
            value = "\x00"
    labels = value.split(".")
    if len(labels) < 2 or len(value) > 253 or not all(map(_DOMAIN_LABEL.fullmatch, labels)):
        raise DkimError(
            _("Domain: “%(domain)s” is not an internet domain", domain=domain.strip()),
            "domain",
        )
    if organisational_domain(value) is None:
        raise DkimError(
            _(
                "Domain: “%(domain)s” is a public suffix (like .org or co.uk), shared by many "
                "owners: no receiver counts a signature for it; give your own domain, e.g. "
                "example.org",
                domain=value,
            ),
            "domain",
        )
    return value


# --- keys ----------------------------------------------------------------------------------


PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def generate_key(algorithm: str = RSA) -> str:
    """A new private key as unencrypted PKCS#8 PEM: RSA 2048 bits or Ed25519 (RFC 8463)."""
    key: PrivateKey
    if algorithm == RSA:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    elif algorithm == ED25519:
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise DkimError(_("Algorithm: choose rsa or ed25519"), "algorithm")
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def load_key(pem: str | bytes, *, source: str = "") -> tuple[str, PrivateKey]:
    """(algorithm, key) from a PEM private key; DkimError for anything we would not sign with."""
    where = source or _("the key")
    data = pem.encode("utf-8", "replace") if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise DkimError(
            _(
                "%(source)s: the private key is protected by a passphrase; export it without "
                "one (openssl pkey -in KEY -out PLAIN.pem)",
                source=where,
            ),
            "key",
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise DkimError(
            _(
                "%(source)s: this is not a PEM private key (a file starting "
                "“-----BEGIN PRIVATE KEY-----” or “-----BEGIN RSA PRIVATE KEY-----”)",
                source=where,
            ),
            "key",
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < RSA_BITS:
            raise DkimError(
                _(
                    "%(source)s: an RSA key of %(bits)s bits is refused: keys under 2048 bits "
                    "can be broken and receivers such as Gmail treat their signatures as "
                    "absent (RFC 8301); generate a new key",
                    source=where,
                    bits=key.key_size,
                ),
                "key",
            )
        return RSA, key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return ED25519, key
    raise DkimError(
        _(
            "%(source)s: DKIM signs with RSA or Ed25519 keys only, not %(kind)s",
            source=where,
            kind=type(key).__name__.removeprefix("_").removesuffix("PrivateKey") or "this kind",
        ),
        "key",
    )


def public_key_b64(key: PrivateKey) -> str:
    """The p= value of the DNS record: SubjectPublicKeyInfo (RSA) or the raw 32 bytes (Ed25519)."""
    public = key.public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        raw = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return base64.b64encode(raw).decode("ascii")


def record_value(algorithm: str, public_b64: str) -> str:
    """The TXT record's text, as DNS resolvers give it back (strings joined)."""
    return f"v=DKIM1; k={algorithm}; p={public_b64}"


def record_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def txt_record(selector: str, domain: str, algorithm: str, public_b64: str) -> str:
    """The record to publish, zone-file style, its text split into strings of 255 octets."""
    value = record_value(algorithm, public_b64)
    strings = " ".join(f'"{value[i : i + 255]}"' for i in range(0, len(value), 255))
    return f"{record_name(selector, domain)}. IN TXT ( {strings} )"


# --- signing -------------------------------------------------------------------------------

# Tabs, and runs of two blanks or more: the only white space relaxed canonicalisation
# changes. dkimpy's pattern also matches every single space and rewrites it as itself,
# which took 7 ms of a 90 kB letter; the result is the same (tests/test_dkim.py).
_WSP_TO_COMPRESS = re.compile(rb"(?: [\t ]|\t)[\t ]*")


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4 for a body with CRLF line ends only (what campaign.mail writes)."""
    if b"\t" in body or b"  " in body:  # most letters have neither: no scan at all
        body = _WSP_TO_COMPRESS.sub(b" ", body)
    body = body.replace(b" \r\n", b"\r\n")
    return correct_empty_body(strip_trailing_lines(body))


@dataclass(frozen=True)
class DkimSigner:
    """One domain's key, parsed once; `sign` puts a DKIM-Signature on top of a message."""

    domain: str
    selector: str
    algorithm: str
    key: PrivateKey = field(repr=False)

    @property
    def public_b64(self) -> str:
        return public_key_b64(self.key)

    @property
    def record(self) -> str:
        return txt_record(self.selector, self.domain, self.algorithm, self.public_b64)

    def sign(self, message: bytes, *, now: float | None = None) -> bytes:
        """Return message with its DKIM-Signature field first; raise DkimSigningError."""
        try:
            message = _crlf_only(message)
            return self._signature(message, now) + message
        except (DkimSigningError, BaseTimeoutException):
            raise  # the job's timeout is RQ's Exception: it ends the job, not the signature
        except Exception as error:  # dkimpy's parse errors, OpenSSL's: never send unsigned
            raise DkimSigningError(
                f"the DKIM signature could not be made ({type(error).__name__}: {error})"
            ) from error

    def _signature(self, message: bytes, now: float | None) -> bytes:
        head, separator, body = message.partition(b"\r\n\r\n")
        if not separator:
            # A message without a body: dkimpy's own reading, slower.
            parsed = dkimpy.DKIM(message)
            headers, canonical_body = parsed.headers, _CANON.canonicalize_body(parsed.body)
        else:
            # Only the head goes through dkimpy's parser; the body is canonicalised below.
            headers = dkimpy.rfc822_parse(head + b"\r\n\r\n")[0]
            canonical_body = relaxed_body(body)
        present = {name.lower() for name, _value in headers}
        if b"from" not in present:
            raise DkimSigningError("the DKIM signature could not be made: the message has no From")
        signed = [name.encode() for name in SIGNED_HEADERS if name.encode() in present]
        signed += [name.encode() for name in OVERSIGNED if name.encode() in present]
        body_hash = base64.b64encode(hashlib.sha256(canonical_body).digest())
        algorithm = b"rsa-sha256" if self.algorithm == RSA else b"ed25519-sha256"
        fields = [
            (b"v", b"1"),
            (b"a", algorithm),
            (b"c", b"relaxed/relaxed"),
            (b"d", self.domain.encode("ascii")),
            (b"s", self.selector.encode("ascii")),
            (b"t", str(int(time.time() if now is None else now)).encode("ascii")),
            # " : " lets the folding break between names, never inside one (dkimpy does so too).
            (b"h", b" : ".join(signed)),
            (b"bh", body_hash),
            (b"b", b""),
        ]
        name = b"DKIM-Signature"
        unsigned = dkimpy.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(name))
        hasher = hashlib.sha256()
        dkimpy.hash_headers(
            hasher,
            _CANON,
            _CANON.canonicalize_headers(headers),
            signed,
            (name, b" " + unsigned),
            dict(fields),
        )
        digest = hasher.digest()
        if isinstance(self.key, rsa.RSAPrivateKey):
            raw = self.key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        else:
            # RFC 8463: Ed25519 signs the SHA-256 hash of the canonical header data.
            raw = self.key.sign(digest)
        fields[-1] = (b"b", base64.b64encode(raw))
        value = dkimpy.fold(b"; ".join(b"=".join(f) for f in fields), namelen=len(name))
        return name + b": " + value + b"\r\n"


_BARE_LF = re.compile(rb"(?<!\r)\n")


def _crlf_only(message: bytes) -> bytes:
    """The message with CRLF line ends only, as it will travel (SMTP writes CRLF).

    Signing a head read one way and a body read another breaks the signature (a head of
    bare LF and a CRLF body was signed over the wrong fields): anything not CRLF-only is
    made so first, and the signature is put on top of that text.
    """
    if b"\n" not in message or not _BARE_LF.search(message):
        return message
    return _BARE_LF.sub(b"\r\n", message)


def signer_from_pem(
    domain: str, selector: str, pem: str | bytes, *, source: str = ""
) -> DkimSigner:
    algorithm, key = load_key(pem, source=source)
    return DkimSigner(check_domain(domain), check_selector(selector), algorithm, key)


# --- the default account's key, from the configuration --------------------------------------

_default_cache: dict[tuple[str, str, str, float], DkimSigner] = {}
_default_lock = threading.Lock()


def default_signer(config: Mapping[str, Any]) -> DkimSigner | None:
    """The signer of the default account (CAMPAIGN_DKIM_*), or None when it signs nothing.

    Raises DkimError when the keys are set but unusable (a missing or bad key file): mail
    that was to be signed must not leave unsigned.
    """
    path = str(config.get("DKIM_PRIVATE_KEY_FILE") or "").strip()
    domain = str(config.get("DKIM_DOMAIN") or "").strip()
    selector = str(config.get("DKIM_SELECTOR") or "").strip()
    if not (path or domain or selector):
        return None
    if not (path and domain and selector):
        raise DkimError(
            _(
                "CAMPAIGN_DKIM_DOMAIN, CAMPAIGN_DKIM_SELECTOR and CAMPAIGN_DKIM_PRIVATE_KEY_FILE "
                "are set together or not at all"
            ),
            "key",
        )
    try:
        mtime = Path(path).stat().st_mtime
    except OSError as error:
        raise DkimError(
            _(
                "CAMPAIGN_DKIM_PRIVATE_KEY_FILE: %(path)s cannot be read (%(reason)s)",
                path=path,
                reason=error.strerror or type(error).__name__,
            ),
            "key",
        ) from None
    cache_key = (path, domain, selector, mtime)
    with _default_lock:
        found = _default_cache.get(cache_key)
        if found is None:
            pem = Path(path).read_bytes()
            found = signer_from_pem(domain, selector, pem, source=path)
            _default_cache.clear()
            _default_cache[cache_key] = found
        return found


_suffixes: Any = None


def organisational_domain(domain: str) -> str | None:
    """The registered ("organisational", RFC 7489 3.2) domain of `domain` by the Public
    Suffix List shipped with `publicsuffixlist` (no network), or None for a public suffix
    itself ("co.uk", "org", "github.io")."""
    global _suffixes
    if _suffixes is None:
        from publicsuffixlist import PublicSuffixList

        _suffixes = PublicSuffixList()
    value = domain.lower().rstrip(".")
    if not value:
        return None
    found = _suffixes.privatesuffix(value)
    return str(found) if found else None


def aligned(dkim_domain: str, from_domain: str) -> bool:
    """Relaxed DMARC alignment (RFC 7489 3.1.1): both domains have the same organisational
    domain ("mail.example.org" signs for "news.example.org"); a public suffix never aligns."""
    d = organisational_domain(dkim_domain)
    return d is not None and d == organisational_domain(from_domain)
