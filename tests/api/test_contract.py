"""The API keeps its OpenAPI contract, checked by Schemathesis against the live app.

Every operation that /api/v1/openapi.json lists when the test runs (nothing here names a
resource) is called over HTTP on a real server thread, on SQLite and on PostgreSQL, with
requests Schemathesis generates from the document (a fixed seed, a few examples each):

- never a 500, and every answer has a documented status, content type and headers and a
  body that matches its schema (`not_a_server_error`, `status_code_conformance`,
  `content_type_conformance`, `response_headers_conformance`,
  `response_schema_conformance`);
- no request with a missing or foreign key succeeds: each operation is also called with no
  Authorization, a key this server never issued, a revoked key, an expired key and a live
  key without the operation's scope (the scope the document names for the operation), and
  must answer 401 or 403. Public operations (`security: []`) are exempt.

The calls use an admin's key with every scope, against a few seeded rows (contacts, a list,
a statement with a sign-on page and a signature, a draft and a launched campaign, a reply,
a case) so that reads find things: in most calls the generated integer ids are replaced by
1–3, the ids of those rows, and a string path parameter by a value of the same name an
earlier answer held (`{token}`, `{language}`). Operations run reads first and deletions
last. The statuses each operation got are printed (`-s`). Decision 0069.
"""

from __future__ import annotations

import gc
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Delivery, Role
from campaign.services.accounts import api_keys
from campaign.services.sign_on import signatures
from campaign.services.sign_on.pages import open_sign_on
from tests.api.helpers import bearer, new_key
from tests.factories import (
    CampaignFactory,
    CaseFactory,
    ContactFactory,
    ContactListFactory,
    InboundMessageFactory,
    StatementFactory,
)
from tests.servers import serve

#: Examples per operation and the seed they come from: the same requests at every run.
MAX_EXAMPLES = 6
NEGATIVE_EXAMPLES = 3
SEED = 17
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
DOCUMENT = "/api/v1/openapi.json"


@pytest.fixture
def live(app: Flask) -> Iterator[str]:
    # A few hundred calls a minute from one key: the rate limit is tested in test_core.py.
    app.config["API_RATE_LIMIT_PER_MINUTE"] = 0
    with serve(app) as url:
        yield url


def _seed() -> None:
    """Rows for reads to find; most get ids 1–3 on the fresh database of each test."""
    people = [
        ContactFactory(email=f"contract{n}@example.org", given_name=f"Ann{n}") for n in range(3)
    ]
    contact_list = ContactListFactory(contacts=people)
    statement: Any = StatementFactory(title="Contract letter")
    sign_on = open_sign_on(statement)
    signatures.submit_signature(
        sign_on,
        {
            "kind": "individual",
            "name": "Dilnoza Karimova",
            "organisation": "Bar of Tashkent",
            "country": "Uzbekistan",
            "publish_as": "full",
            "email": "dilnoza@example.org",
            "consent": "yes",
        },
        language="en",
        client_ip="203.0.113.7",
    )
    CampaignFactory(name="Draft", contact_list=contact_list)
    launched: Any = CampaignFactory(name="Launched", contact_list=contact_list, launched=True)
    delivery = db.session.scalars(
        select(Delivery).where(Delivery.campaign_id == launched.id).order_by(Delivery.id)
    ).first()
    InboundMessageFactory(delivery=delivery, subject="Re: Launched")
    CaseFactory()
    db.session.commit()


class Keys:
    """The admin's key with every scope, and the keys that must not get in."""

    def __init__(self) -> None:
        self.admin, _ = new_key(Role.ADMIN)
        revoked, revoked_key = new_key(Role.ADMIN)
        api_keys.revoke_key(revoked_key, by=revoked_key.user)
        expired, expired_key = new_key(Role.ADMIN, expires_in_days=1)
        expired_key.expires_at = datetime.now(UTC) - timedelta(minutes=1)
        db.session.commit()
        foreign = f"{api_keys.TOKEN_START}{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
        self.refused: dict[str, str | None] = {
            "no key": None,
            "a key never issued": foreign,
            "a revoked key": revoked,
            "an expired key": expired,
        }
        self._without: dict[str, str] = {}

    def without(self, scope: str) -> str:
        """A live admin key with every scope except those of `scope`'s group."""
        group = scope.partition(":")[0]
        if group not in self._without:
            others = [s for s in api_keys.all_scopes() if s.partition(":")[0] != group]
            self._without[group], _ = new_key(Role.ADMIN, others)
        return self._without[group]


def _security(document: dict[str, Any], path: str, method: str) -> list[Any] | None:
    found = document["paths"][path][method.lower()].get("security")
    return found if found is not None else document.get("security")


def _required_scope(security: list[Any] | None) -> str:
    """The scope the document names for an operation ("" for any live key)."""
    for requirement in security or []:
        for scope in requirement.get("bearer", []):
            return str(scope)
    return ""


def _send(session: requests.Session, case: Any, base_url: str, token: str | None) -> Any:
    """The case's request as generated, with only its Authorization replaced."""
    kwargs = case.as_transport_kwargs(base_url=base_url)
    headers = {k: v for k, v in kwargs.pop("headers", {}).items() if k.lower() != "authorization"}
    if token is not None:
        headers.update(bearer(token))
    return session.request(headers=headers, timeout=30, **kwargs)


def _check_refusals(
    session: requests.Session, case: Any, base_url: str, keys: Keys, scope: str
) -> list[str]:
    """Every wrong key is refused (401/403) and the refusal keeps the contract too."""
    generated = dict(case.path_parameters or {})
    # An id that matches the route (a negative one would be a 404 of the routing, before any
    # key is read): the refusal must come before the row is looked up.
    for name, value in generated.items():
        if isinstance(value, int):
            case.path_parameters[name] = 1
    attempts = dict(keys.refused)
    if scope:
        attempts[f"a key without {scope}"] = keys.without(scope)
    problems = []
    for label, token in attempts.items():
        response = _send(session, case, base_url, token)
        if response.status_code not in (401, 403):
            problems.append(
                f"with {label}: answered {response.status_code} "
                f"{response.text[:300]!r}\n    {case.as_curl_command()}"
            )
            continue
        try:
            case.validate_response(response, checks=_checks())
        except (Exception, BaseExceptionGroup) as error:
            problems.append(f"with {label}: {error}")
    if generated:
        case.path_parameters.update(generated)
    return problems


def _checks() -> list[Any]:
    from schemathesis.checks import CHECKS as REGISTERED
    from schemathesis.checks import load_all_checks

    load_all_checks()
    return list(REGISTERED.get_by_names(list(CHECKS)))


# Reads first, then creations and actions, then updates, deletions last: a DELETE run early
# would leave the reads nothing to find.
METHOD_ORDER = {"get": 0, "post": 1, "put": 2, "patch": 2, "delete": 3}


class Run:
    """What the whole run shares: the server, the keys, the document, one HTTP session."""

    def __init__(self, base_url: str, keys: Keys, session: requests.Session) -> None:
        self.base_url = base_url
        self.keys = keys
        self.session = session
        self.document = session.get(base_url + DOCUMENT, timeout=30).json()
        self.checks = _checks()
        self.calls = 0
        #: "GET /api/v1/me" → the statuses its generated calls got (the refusals not counted).
        self.statuses: dict[str, Counter[int]] = {}
        #: Values the API answered, by field name ("token", "language"): a path parameter of
        #: the same name is given one of them half the time, so that `/sign-on/{token}`
        #: reaches a page that exists. Integer ids get 1–3 instead (the seeded rows).
        self.known: dict[str, set[str]] = {}

    def harvest(self, response: Any) -> None:
        """Remember the short strings a successful JSON answer holds, by field name."""
        if not 200 <= response.status_code < 300 or "json" not in response.headers.get(
            "Content-Type", ""
        ):
            return
        stack = [response.json()]
        while stack:
            value = stack.pop()
            if isinstance(value, list):
                stack.extend(value)
            elif isinstance(value, dict):
                for name, item in value.items():
                    if isinstance(item, str) and 0 < len(item) <= 100:
                        self.known.setdefault(name, set()).add(item)
                    elif isinstance(item, dict | list):
                        stack.append(item)

    def discover(self, operations: list[Any]) -> None:
        """Read every GET whose path takes only ids, with the seeded ids, to learn values."""
        for operation in operations:
            if operation.method.lower() != "get":
                continue
            described = self.document["paths"][operation.path]["get"].get("parameters", [])
            parameters = [p for p in described if p.get("in") == "path"]
            if any(p.get("schema", {}).get("type") != "integer" for p in parameters):
                continue
            for known_id in (1, 2):
                path = operation.path
                for parameter in parameters:
                    path = path.replace("{" + parameter["name"] + "}", str(known_id))
                response = self.session.get(
                    self.base_url + path, headers=bearer(self.keys.admin), timeout=30
                )
                self.calls += 1
                self.harvest(response)

    def use_known_values(self, case: Any, pick: int) -> None:
        """Path parameters become seeded ids or values the API gave out (`pick` 0: as
        generated)."""
        if not pick:
            return
        for name, value in list((case.path_parameters or {}).items()):
            if isinstance(value, int):
                case.path_parameters[name] = pick
            elif isinstance(value, str) and self.known.get(name):
                choices = sorted(self.known[name])
                case.path_parameters[name] = choices[(pick - 1) % len(choices)]

    def exercise(self, operation: Any) -> None:
        """The refusals, then MAX_EXAMPLES valid and NEGATIVE_EXAMPLES invalid requests."""
        from hypothesis import HealthCheck, Phase, given, seed, settings
        from hypothesis import strategies as st
        from hypothesis.errors import Unsatisfiable
        from schemathesis import GenerationMode

        label = f"{operation.method.upper()} {operation.path}"
        item = self.document["paths"][operation.path]
        security = _security(self.document, operation.path, operation.method)
        scope = _required_scope(security)
        # Updates need If-Match: half the calls send the ETag a GET of the same path gives.
        needs_etag = "428" in item[operation.method.lower()].get("responses", {}) and "get" in item

        def refuse(case: Any) -> None:
            refusals = _check_refusals(self.session, case, self.base_url, self.keys, scope)
            self.calls += len(self.keys.refused) + bool(scope)
            if refusals:
                raise AssertionError("\n  ".join(["a wrong key got in:", *refusals]))

        def call(case: Any, known_id: int, fresh_etag: bool) -> None:
            self.use_known_values(case, known_id)
            headers = bearer(self.keys.admin)
            if needs_etag and fresh_etag:
                etag = self._etag_of(case)
                if etag:
                    headers["If-Match"] = etag
            self.calls += 1
            response = case.call(base_url=self.base_url, session=self.session, headers=headers)
            self.statuses.setdefault(label, Counter())[response.status_code] += 1
            case.validate_response(response, checks=self.checks)
            self.harvest(response)

        extra = {"known_id": st.sampled_from((0, 1, 2, 3)), "fresh_etag": st.booleans()}
        passes: list[tuple[Callable[..., None], GenerationMode, int, dict[str, Any]]] = [
            (refuse, GenerationMode.POSITIVE, 1, {}),
            (call, GenerationMode.POSITIVE, MAX_EXAMPLES, extra),
            (call, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, extra),
        ]
        if security == []:  # public: no key needed, nothing to refuse
            passes = passes[1:]
        for function, mode, examples, strategies in passes:
            test = given(case=operation.as_strategy(generation_mode=mode), **strategies)(function)
            test = settings(
                max_examples=examples,
                deadline=None,
                database=None,
                # No shrinking: the first failing request is reported as it was sent.
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
                report_multiple_bugs=False,
            )(test)
            try:
                seed(SEED)(test)()
            except Unsatisfiable:
                # Every request the document allows is valid (a lone free-text path
                # parameter): there is no invalid one to send.
                if mode is not GenerationMode.NEGATIVE:
                    raise

    def _etag_of(self, case: Any) -> str:
        """The ETag a GET of the case's path answers now ("" when there is none)."""
        url = self.base_url + case.formatted_path
        response = self.session.get(url, headers=bearer(self.keys.admin), timeout=30)
        self.calls += 1
        return response.headers.get("ETag", "") if response.status_code == 200 else ""


def _import_as_they_are(*packages: str) -> None:
    """Let pytest import `packages` without rewriting their asserts.

    pytest rewrites the asserts of every module of a package that declares a pytest plugin,
    the plugin disabled or not (hypothesis and schemathesis both declare one): a parse and a
    compile of each module, kept only where bytecode may be written (never under
    PYTHONDONTWRITEBYTECODE, not on a fresh clone's first run). Measured in a test process:
    hypothesis 1.8-2.3 s (73 modules), schemathesis 2.4-4.7 s (205), against 0.15 s and
    0.3 s in plain Python (decision 0069, amendment). Their asserts still run; a failing
    one inside these libraries only loses pytest's detailed message. A pytest without these
    attributes rewrites as before.
    """
    for finder in sys.meta_path:
        marked = getattr(finder, "_must_rewrite", None)
        cache = getattr(finder, "_marked_for_rewrite_cache", None)
        if isinstance(marked, set) and isinstance(cache, dict):
            marked.difference_update(packages)
            cache.clear()


def test_every_operation_keeps_its_contract(app: Flask, live: str) -> None:
    # Imported here, not at collection: every test process of the suite collects this file,
    # and only the one that runs this test needs them.
    _import_as_they_are("hypothesis", "schemathesis")
    import schemathesis
    from schemathesis.core.result import Ok

    _seed()
    keys = Keys()
    started = time.perf_counter()
    schema = schemathesis.openapi.from_url(live + DOCUMENT)
    failures: list[str] = []
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Ok):
            operations.append(result.ok())
        else:  # an operation whose description Schemathesis cannot read
            failures.append(f"the document is not valid: {result.err()}")
    operations.sort(key=lambda o: (METHOD_ORDER.get(o.method.lower(), 9), o.path))
    # What the process holds so far (the app, the libraries) is left out of the garbage
    # collector's full passes while the ~800 requests are generated and answered: they
    # allocate a lot, and each full pass walked all of it (decision 0069, amendment).
    gc.collect()
    gc.freeze()
    try:
        with requests.Session() as session:
            # Loopback only: no proxy or .netrc lookup from the environment on each call.
            session.trust_env = False
            run = Run(live, keys, session)
            run.discover(operations)
            for operation in operations:
                try:
                    run.exercise(operation)
                except (Exception, BaseExceptionGroup) as error:
                    failures.append(f"{operation.method.upper()} {operation.path}\n{error}")
    finally:
        gc.unfreeze()
    seconds = time.perf_counter() - started
    # Shown with -s: what the generated calls got, to see that reads found the seeded rows.
    print(f"\n{len(operations)} operations, {run.calls} calls in {seconds:.1f} s")
    for label, statuses in run.statuses.items():
        print(f"  {label}: " + ", ".join(f"{s}×{n}" for s, n in sorted(statuses.items())))
    assert operations, "the document lists no operation"
    assert not failures, (
        f"{len(failures)} of {len(operations)} operations broke the contract:\n\n"
        + ("\n\n".join(failures))
    )
