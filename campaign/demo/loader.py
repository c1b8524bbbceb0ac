"""Demo data: the fictional sample contacts, a few hundred generated ones, lists and segments.

Then a draft campaign, and a finished one with its answers (campaign.demo.answers).
Everything goes through the public services, as a user's own data would: the contacts
through the import (one CSV file, the rules of the edit form), the lists and segments
through their services. Only what no service makes, the past, is written directly (each
place says so): it sends nothing and needs no Redis.
"""

from __future__ import annotations

import csv
import io
import random
import secrets
import tempfile
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from campaign.extensions import db
from campaign.models import Contact, Role, Statement, User
from campaign.services.accounts.audit import record_event
from campaign.services.accounts.users import create_user
from campaign.services.contacts import importing, lists, segments
from campaign.services.contacts.contacts import count_contacts

DEMO_ADMIN_EMAIL = "admin@example.org"
DEFAULT_GENERATED = 400
DEFAULT_SEED = 2024
# Dates are drawn relative to a fixed day so the same seed gives the same data every year.
_BASE_DAY = date(2026, 1, 15)


@dataclass(frozen=True)
class DemoResult:
    contacts: int
    lists: int
    segments: int
    statements: int = 0
    # Set only when this call created the admin account.
    admin_email: str | None = None
    admin_password: str | None = None


@dataclass(frozen=True)
class AdminAccount:
    user: User
    # The password in clear, only when the account was created by this call.
    password: str | None


def ensure_admin(password: str | None = None) -> AdminAccount:
    """Create admin@example.org when there is no user at all; return the first admin."""
    existing = db.session.scalar(
        select(User).where(User.role == Role.ADMIN.value).order_by(User.id).limit(1)
    )
    if existing is not None:
        return AdminAccount(existing, None)
    if db.session.scalar(select(func.count(User.id))):
        # Someone set up accounts by hand and chose no admin; do not add one behind their back.
        any_user = db.session.scalar(select(User).order_by(User.id).limit(1))
        assert any_user is not None
        return AdminAccount(any_user, None)
    chosen = password or secrets.token_urlsafe(12)
    user = create_user(DEMO_ADMIN_EMAIL, chosen, Role.ADMIN, display_name="Demo administrator")
    return AdminAccount(user, chosen)


def load_demo(
    *,
    admin_password: str | None = None,
    generated: int = DEFAULT_GENERATED,
    seed: int = DEFAULT_SEED,
) -> DemoResult:
    """Load the demo contacts, lists and segments unless there are contacts already."""
    admin = ensure_admin(admin_password)
    created_admin = admin.password is not None
    admin_fields: dict[str, Any] = (
        {"admin_email": admin.user.email, "admin_password": admin.password} if created_admin else {}
    )
    if count_contacts():
        return DemoResult(0, 0, 0, **admin_fields)

    rows = [*sample_contact_rows(), *generated_contact_rows(generated, seed)]
    imported = _import_contacts(rows, actor=admin.user)
    list_count = _create_lists()
    segment_count = _create_segments()
    _refresh_statistics()  # the demo's campaigns below count and launch their audiences
    from campaign.demo.statements import load_seed_statements

    seeded = load_seed_statements()
    demo_campaign = _create_demo_campaign()
    from campaign.demo.answers import create_finished_campaign

    finished = create_finished_campaign(actor=admin.user, seed=seed)
    from campaign.demo.schedules import load_demo_schedules

    scheduled = load_demo_schedules(actor=admin.user)
    from campaign.demo.sign_on import load_demo_sign_on

    load_demo_sign_on(actor=admin.user)  # the joint letter's open sign-on page
    record_event(
        "demo.load",
        detail={
            "contacts": imported,
            "lists": list_count,
            "segments": segment_count,
            "statements": seeded,
            "draft_campaign": demo_campaign,
            "finished_campaign": finished.campaign_id if finished else None,
            "inbound": finished.inbound if finished else {},
            "yearly_campaign": scheduled.yearly_campaign_id,
            "case": scheduled.case_id,
            "event": scheduled.event_id,
        },
    )
    _refresh_statistics()
    # The seed statements and the letters the demo's campaigns added (the follow-up letter).
    statement_count = db.session.scalar(select(func.count(Statement.id))) or 0
    return DemoResult(imported, list_count, segment_count, statement_count, **admin_fields)


def _refresh_statistics() -> None:
    """ANALYZE on PostgreSQL: it plans the audience queries from table statistics.

    Tables just filled have none until autovacuum comes by; an audience count with the
    suppression list then took a nested-loop plan that ran for minutes (a CI run hung on
    the demo's yearly launch). ANALYZE in this transaction sees its own new rows.
    """
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("ANALYZE"))


def _create_demo_campaign() -> int | None:
    """A draft campaign ready to launch: the joint letter to the UN special procedures list."""
    from campaign.models import Statement
    from campaign.services.contacts.lists import find_list
    from campaign.services.sending import campaigns

    statement = db.session.scalar(select(Statement).order_by(Statement.id).limit(1))
    audience = find_list("UN special procedures")
    if statement is None or audience is None:
        return None
    campaign = campaigns.create_campaign(
        statement,
        name=f"Demo: {statement.title}",
        audience=campaigns.AudienceSpec((f"list:{audience.id}",)),
    )
    return int(campaign.id)


DEMO_FILE_NAME = "demo_contacts.csv"


def _import_contacts(rows: list[dict[str, str]], *, actor: User) -> int:
    """Import the rows as a user imports a file: one CSV, each column named by its field.

    The import checks each row with the edit form's rules and writes them in bulk (one
    statement per thousand rows); it records one "contacts.import" event, sends nothing.
    """
    headers = list(dict.fromkeys(name for row in rows for name in row))

    def refuse(row: importing.RowResult) -> None:
        # Demo data is ours: a row the contact rules refuse is a bug in this module.
        address = dict(zip(headers, row.cells, strict=False)).get("email", "")
        raise ValueError(f"demo contact on line {row.line} ({address}): {row.reason}")

    with tempfile.TemporaryDirectory(prefix="campaign-demo-") as folder:
        path = Path(folder) / DEMO_FILE_NAME
        with path.open("w", encoding="utf-8", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=headers, restval="")
            writer.writeheader()
            writer.writerows(rows)
        result = importing.import_contacts(
            path,
            {header: header for header in headers},
            filename=DEMO_FILE_NAME,
            actor=actor,
            on_reject=refuse,
        )
    return result.imported


# --- The sample contacts from the domain notes ------------------------------------------


def sample_contact_rows() -> list[dict[str, str]]:
    """The fictional contacts of sample_contacts.csv, as contact form fields."""
    text = resources.files("campaign.demo.data").joinpath("sample_contacts.csv").read_text("utf-8")
    rows = []
    for record in csv.DictReader(io.StringIO(text)):
        row = {key: (value or "").strip() for key, value in record.items() if key}
        row["cc_emails"] = row.pop("secretariat_email", "")
        # A working group is a mandate, not a person: it has no given name in the file.
        if row.get("role_type") == "un_wg" and not row.get("given_name"):
            row["kind"] = "mandate"
        row["consent_basis"] = "legitimate interest (public role)"
        row["last_verified_on"] = (_BASE_DAY - timedelta(days=30)).isoformat()
        rows.append(row)
    return rows


# --- Generated contacts --------------------------------------------------------------------

# (given, family, patronymic, given_alt, family_alt, patronymic_alt, gender)
_CYRILLIC_NAMES: list[tuple[str, str, str, str, str, str, str]] = [
    ("Timur", "Ismailov", "Rustamovich", "Тимур", "Исмаилов", "Рустамович", "m"),
    ("Gulnara", "Sadykova", "Bakhtiyarovna", "Гульнара", "Садыкова", "Бахтияровна", "f"),
    ("Aibek", "Toktogulov", "Maratovich", "Айбек", "Токтогулов", "Маратович", "m"),
    ("Madina", "Rakhimova", "Farkhodovna", "Мадина", "Рахимова", "Фарходовна", "f"),
    ("Daniyar", "Seitkali", "Yerlanovich", "Данияр", "Сейткали", "Ерланович", "m"),
    ("Zarina", "Nazarova", "Sharifovna", "Зарина", "Назарова", "Шарифовна", "f"),
    ("Rustam", "Karimov", "Alisherovich", "Рустам", "Каримов", "Алишерович", "m"),
    ("Aizhan", "Zhakupova", "Serikovna", "Айжан", "Жакупова", "Сериковна", "f"),
    ("Bakhtiyor", "Yusupov", "Ilkhomovich", "Бахтиёр", "Юсупов", "Илхомович", "m"),
    ("Nigora", "Khasanova", "Rustamovna", "Нигора", "Хасанова", "Рустамовна", "f"),
    ("Sergei", "Volkov", "Andreyevich", "Сергей", "Волков", "Андреевич", "m"),
    ("Elena", "Smirnova", "Pavlovna", "Елена", "Смирнова", "Павловна", "f"),
    ("Murat", "Abdrakhmanov", "Kairatovich", "Мурат", "Абдрахманов", "Кайратович", "m"),
    ("Dilfuza", "Ergasheva", "Olimovna", "Дилфуза", "Эргашева", "Олимовна", "f"),
    ("Azamat", "Beishenaliev", "Talantovich", "Азамат", "Бейшеналиев", "Талантович", "m"),
    ("Saodat", "Mirzoeva", "Davlatovna", "Саодат", "Мирзоева", "Давлатовна", "f"),
]

# Latin-script names per language: (given, gender).
_GIVEN: dict[str, list[tuple[str, str]]] = {
    "fr": [
        ("Camille", "unknown"),
        ("Julien", "m"),
        ("Sophie", "f"),
        ("Hélène", "f"),
        ("Mathieu", "m"),
        ("Élise", "f"),
        ("Antoine", "m"),
        ("Dominique", "unknown"),
    ],
    "de": [
        ("Katrin", "f"),
        ("Matthias", "m"),
        ("Jürgen", "m"),
        ("Anja", "f"),
        ("Sabine", "f"),
        ("Lukas", "m"),
        ("Andrea", "unknown"),
        ("Felix", "m"),
    ],
    "en": [
        ("Sarah", "f"),
        ("James", "m"),
        ("Alex", "unknown"),
        ("Fiona", "f"),
        ("Owen", "m"),
        ("Priya", "f"),
        ("Daniel", "m"),
        ("Morgan", "unknown"),
    ],
    "nl": [("Sanne", "f"), ("Pieter", "m"), ("Femke", "f"), ("Joost", "m")],
    "sv": [("Ingrid", "f"), ("Erik", "m"), ("Maja", "f"), ("Olof", "m")],
    "pl": [("Agnieszka", "f"), ("Piotr", "m"), ("Zofia", "f"), ("Krzysztof", "m")],
    "it": [("Giulia", "f"), ("Marco", "m"), ("Chiara", "f"), ("Luca", "m")],
    "es": [("Lucía", "f"), ("Javier", "m"), ("Carmen", "f"), ("Andrés", "m")],
}
# Invented family names that read as names of each language without being anyone's.
_FAMILY: dict[str, list[str]] = {
    "fr": ["Exemplaire", "Fictif", "Modèle", "Essai", "Durand-Specimen", "Lemaquette"],
    "de": ["Musterfrau", "Probemann", "Beispielhof", "Testmeier", "Vorlage", "Entwurfs"],
    "en": ["Example", "Sampleton", "Placeholder", "Testwood", "Mockridge", "Draftley"],
    "nl": ["Voorbeeld", "Proefstra", "Testerink", "Monsterman"],
    "sv": ["Exempelsson", "Provberg", "Mallström", "Testqvist"],
    "pl": ["Przykładowa", "Wzorek", "Próbny", "Testowski"],
    "it": ["Esempio", "Campione", "Modellini", "Provetta"],
    "es": ["Ejemplar", "Muestrario", "Pruebas", "Modelado"],
}

# EU member states we generate contacts for: code, English name, national language.
_EU_STATES: list[tuple[str, str, str]] = [
    ("FR", "France", "fr"),
    ("DE", "Germany", "de"),
    ("NL", "the Netherlands", "nl"),
    ("SE", "Sweden", "sv"),
    ("PL", "Poland", "pl"),
    ("IT", "Italy", "it"),
    ("ES", "Spain", "es"),
    ("BE", "Belgium", "fr"),
    ("AT", "Austria", "de"),
    ("IE", "Ireland", "en"),
    ("FI", "Finland", "en"),
    ("CZ", "Czechia", "en"),
]
_CENTRAL_ASIA: list[tuple[str, str]] = [
    ("KZ", "Kazakhstan"),
    ("KG", "Kyrgyzstan"),
    ("TJ", "Tajikistan"),
    ("TM", "Turkmenistan"),
    ("UZ", "Uzbekistan"),
]
_TOPICS = [
    "torture",
    "detention",
    "hrd",
    "media-freedom",
    "elections",
    "labour-rights",
    "religious-freedom",
    "trials",
]
_SR_MANDATES = [
    ("freedom of expression", "expression"),
    ("freedom of peaceful assembly and of association", "assembly"),
    ("independence of judges and lawyers", "judges"),
    ("freedom of religion or belief", "religion"),
    ("human rights defenders", "hrd"),
    ("torture and other cruel, inhuman or degrading treatment", "torture"),
    ("contemporary forms of slavery", "slavery"),
    ("extrajudicial, summary or arbitrary executions", "executions"),
]
_WORKING_GROUPS = [
    ("Working Group on Enforced or Involuntary Disappearances", "wgeid"),
    ("Working Group on Business and Human Rights", "wgbhr"),
    ("Working Group on discrimination against women and girls", "wgdaw"),
]
_OUTLETS = [
    "Daily Chronicle (fictional)",
    "Weekly Observer (fictional)",
    "Regional Service of a public broadcaster (fictional)",
    "Independent news site",
    "Exile news outlet",
    "Wire agency (fictional)",
]


def _ascii_slug(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    ascii_text = decomposed.encode("ascii", "ignore").decode()
    return "".join(c for c in ascii_text.lower() if c.isalnum() or c in ".-") or "x"


class _Generator:
    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        self.count = 0

    # -- building blocks

    def _address(self, given: str, family: str) -> str:
        self.count += 1
        local = ".".join(p for p in (_ascii_slug(given)[:1], _ascii_slug(family)) if p)
        domain = self.rnd.choice(["example.org", "example.net"])
        # The counter keeps generated addresses unique whatever names repeat.
        return f"{local}.{self.count:03d}@{domain}"

    def _latin_person(self, language: str) -> dict[str, str]:
        given, gender = self.rnd.choice(_GIVEN[language])
        family = self.rnd.choice(_FAMILY[language])
        return {"given_name": given, "family_name": family, "grammatical_gender": gender}

    def _cyrillic_person(self) -> dict[str, str]:
        given, _, patronymic, given_alt, _, patronymic_alt, gender = self.rnd.choice(
            _CYRILLIC_NAMES
        )
        # The family name comes from another person of the same gender (its form is
        # gendered), so a few hundred contacts do not share a handful of full names.
        _, family, _, _, family_alt, _, _ = self.rnd.choice(
            [name for name in _CYRILLIC_NAMES if name[6] == gender]
        )
        return {
            "given_name": given,
            "family_name": family,
            "patronymic": patronymic,
            "given_name_alt": given_alt,
            "family_name_alt": family_alt,
            "patronymic_alt": patronymic_alt,
            "grammatical_gender": gender,
        }

    def _verified(self) -> str:
        return (_BASE_DAY - timedelta(days=self.rnd.randint(0, 700))).isoformat()

    def _term_end(self, low: int, high: int) -> str:
        return (_BASE_DAY + timedelta(days=self.rnd.randint(low, high))).isoformat()

    def _tags(self, *fixed: str, topics: int = 1) -> str:
        chosen = self.rnd.sample(_TOPICS, k=topics)
        return ";".join([*fixed, *chosen])

    def _finish(self, row: dict[str, str]) -> dict[str, str]:
        row.setdefault(
            "email",
            self._address(
                row.get("given_name") or "office", row.get("family_name") or row["organisation"]
            ),
        )
        row.setdefault("last_verified_on", self._verified())
        row.setdefault("consent_basis", "legitimate interest (public role)")
        row.setdefault("risk_level", "public")
        # Some grammatical genders are simply not known; the letters must cope.
        if row.get("kind", "person") == "person" and self.rnd.random() < 0.08:
            row["grammatical_gender"] = "unknown"
        return row

    # -- one builder per kind of contact

    def central_asian_diplomat(self) -> dict[str, str]:
        code, country = self.rnd.choice(_CENTRAL_ASIA)
        _eu_code, host, host_language = self.rnd.choice(_EU_STATES)
        row = self._cyrillic_person()
        is_ambassador = self.rnd.random() < 0.5
        second = host_language if host_language in {"en", "fr", "de"} else "en"
        row.update(
            role_type="ambassador" if is_ambassador else "official",
            style="excellency" if is_ambassador else "none",
            position_title=(
                f"Ambassador of {country} to {host}"
                if is_ambassador
                else self.rnd.choice(["First Secretary", "Counsellor", "Deputy Head of Mission"])
            ),
            organisation=f"Embassy of {country} in {host}",
            country=code,
            languages=f"ru {second}",
            tags=self._tags("diplomat", country.lower()),
        )
        if is_ambassador and self.rnd.random() < 0.6:
            row["cc_emails"] = f"secretariat.{self.count + 1:03d}@example.net"
        return self._finish(row)

    def eu_state_diplomat(self) -> dict[str, str]:
        code, state, language = self.rnd.choice(_EU_STATES)
        _ca_code, posting = self.rnd.choice(_CENTRAL_ASIA)
        row = self._latin_person(language)
        kind = self.rnd.choices(["ambassador", "official", "minister"], weights=[4, 8, 1])[0]
        titles = {
            "ambassador": (
                f"Ambassador of {state} to {posting}",
                f"Embassy of {state} in {posting}",
            ),
            "official": (
                self.rnd.choice(
                    [
                        "Desk officer for Central Asia",
                        "Human rights adviser",
                        "Head of the Eastern Europe and Central Asia unit",
                    ]
                ),
                f"Ministry of Foreign Affairs of {state}",
            ),
            "minister": ("Minister for Foreign Affairs", f"Ministry of Foreign Affairs of {state}"),
        }
        title, organisation = titles[kind]
        languages = language if language == "en" else f"{language} en"
        if self.rnd.random() < 0.25:
            languages += " ru"
        row.update(
            role_type=kind,
            style="excellency" if kind == "ambassador" and self.rnd.random() < 0.5 else "none",
            position_title=title,
            organisation=organisation,
            country=code,
            languages=languages,
            tags=self._tags("diplomat", state.lower().replace("the ", "")),
        )
        if kind == "minister":
            row["cc_emails"] = f"cabinet.{self.count + 1:03d}@example.org"
        return self._finish(row)

    def central_asian_official(self) -> dict[str, str]:
        code, country = self.rnd.choice(_CENTRAL_ASIA)
        row = self._cyrillic_person()
        role = self.rnd.choices(["minister", "official", "head_of_gov"], weights=[4, 10, 1])[0]
        title = {
            "minister": self.rnd.choice(
                [
                    "Minister of Justice",
                    "Minister of Foreign Affairs",
                    "Minister of Internal Affairs",
                ]
            ),
            "official": self.rnd.choice(
                ["Ombudsperson", "Deputy Prosecutor General", "Head of the penitentiary service"]
            ),
            "head_of_gov": "Prime Minister",
        }[role]
        row.update(
            role_type=role,
            style="excellency" if role in {"minister", "head_of_gov"} else "none",
            position_title=f"{title} of {country}",
            organisation=f"Government of {country}",
            country=code,
            languages="ru en" if self.rnd.random() < 0.5 else "ru",
            tags=self._tags("government", country.lower()),
        )
        if role != "official":
            row["cc_emails"] = f"office.{self.count + 1:03d}@example.net"
        return self._finish(row)

    def eu_official(self) -> dict[str, str]:
        code, _state, language = self.rnd.choice(_EU_STATES)
        row = self._latin_person(language)
        is_mep = self.rnd.random() < 0.6
        languages = "en" if language == "en" else f"en {language}"
        if self.rnd.random() < 0.2:
            languages += " ru"
        if is_mep:
            row.update(
                role_type="mep",
                position_title="Member of the European Parliament"
                + self.rnd.choice(
                    [
                        "",
                        ", Subcommittee on Human Rights",
                        ", Delegation for Central Asia",
                        ", Committee on Foreign Affairs",
                    ]
                ),
                organisation="European Parliament",
                country=code,
                term_ends_on="2029-07-15",
                tags=self._tags("eu", "mep"),
            )
        else:
            row.update(
                role_type="official",
                position_title=self.rnd.choice(
                    [
                        "Policy officer, Central Asia",
                        "Human rights focal point",
                        "Deputy Head of Division",
                    ]
                ),
                organisation=self.rnd.choice(
                    [
                        "European External Action Service",
                        "European Commission, DG INTPA",
                        "Council of the EU, COHOM working party",
                    ]
                ),
                country="EU",
                # EU and UN are no country's clock: their offices give theirs explicitly.
                time_zone="Europe/Brussels",
                tags=self._tags("eu"),
            )
        row["languages"] = languages
        return self._finish(row)

    def un_mandate(self) -> dict[str, str]:
        if self.rnd.random() < 0.25:
            name, slug = self.rnd.choice(_WORKING_GROUPS)
            row = {
                "kind": "mandate",
                "family_name": name,
                "role_type": "un_wg",
                "position_title": name,
                "grammatical_gender": "unknown",
                "email": f"{slug}.{self._next():03d}@example.org",
            }
        else:
            mandate, slug = self.rnd.choice(_SR_MANDATES)
            language = self.rnd.choice(["en", "fr", "es", "de"])
            row = self._latin_person(language)
            if self.rnd.random() < 0.4:
                row["honorific"] = self.rnd.choice(["Dr", "Prof."])
            row.update(
                role_type="un_sr",
                position_title=f"Special Rapporteur on {mandate}",
                email=f"sr-{slug}.{self._next():03d}@example.org",
                term_ends_on=self._term_end(100, 2000),
            )
        row.update(
            organisation="OHCHR Special Procedures",
            country="UN",
            time_zone="Europe/Zurich",  # Geneva, where the special procedures sit
            languages=self.rnd.choice(["en", "en fr", "en fr ru", "fr en"]),
            tags=self._tags("un"),
        )
        return self._finish(row)

    def journalist(self) -> dict[str, str]:
        if self.rnd.random() < 0.4:
            code, country = self.rnd.choice(_CENTRAL_ASIA)
            row = self._cyrillic_person()
            row.update(
                country=code,
                languages="ru en",
                risk_level=self.rnd.choice(["elevated", "high", "high"]),
                tags=self._tags("press", country.lower()),
                consent_basis="consent (asked in person)",
            )
        else:
            code, _state, language = self.rnd.choice(_EU_STATES)
            row = self._latin_person(language)
            row.update(
                country=code,
                languages=language if language == "en" else f"{language} en",
                risk_level=self.rnd.choice(["public", "public", "low"]),
                tags=self._tags("press"),
                consent_basis="consent (press list sign-up)",
            )
        row.update(
            role_type="journalist",
            position_title=self.rnd.choice(
                ["Correspondent", "Editor", "Freelance reporter", "Foreign desk reporter"]
            ),
            organisation=self.rnd.choice(_OUTLETS),
        )
        return self._finish(row)

    def partner_ngo(self) -> dict[str, str]:
        if self.rnd.random() < 0.6:
            code, country = self.rnd.choice(_CENTRAL_ASIA)
            row = self._cyrillic_person()
            row.update(
                country=code,
                languages=self.rnd.choice(["ru", "ru en"]),
                organisation=f"Human rights bureau of {country} (fictional)",
                risk_level=self.rnd.choice(["elevated", "high"]),
                tags=self._tags("partner", country.lower(), topics=2),
                notes="Contact only through the agreed channel; never name in public letters.",
            )
        else:
            code, _state, language = self.rnd.choice(_EU_STATES)
            row = self._latin_person(language)
            row.update(
                country=code,
                languages=language if language == "en" else f"{language} en",
                organisation=self.rnd.choice(
                    [
                        "Rights watch network (fictional)",
                        "Legal aid foundation (fictional)",
                        "Press freedom coalition (fictional)",
                    ]
                ),
                risk_level="low",
                tags=self._tags("partner", topics=2),
            )
        row.update(
            role_type="ngo",
            position_title=self.rnd.choice(
                ["Director", "Programme officer", "Lawyer", "Advocacy lead"]
            ),
            consent_basis="consent (partner agreement)",
        )
        return self._finish(row)

    def other(self) -> dict[str, str]:
        code, _state, language = self.rnd.choice(_EU_STATES)
        row = self._latin_person(language)
        title = self.rnd.choice(
            ["Researcher", "Professor of international law", "Parliamentary assistant"]
        )
        row.update(
            role_type="other",
            position_title=title,
            organisation=self.rnd.choice(
                ["University (fictional)", "Think tank (fictional)", "National parliament"]
            ),
            country=code,
            languages=language if language == "en" else f"{language} en",
            tags=self._tags("academia" if title != "Parliamentary assistant" else "parliament"),
        )
        return self._finish(row)

    def _next(self) -> int:
        self.count += 1
        return self.count


# Builders with their share of the generated contacts.
_MIX = [
    ("central_asian_diplomat", 16),
    ("eu_state_diplomat", 18),
    ("central_asian_official", 8),
    ("eu_official", 18),
    ("un_mandate", 10),
    ("journalist", 14),
    ("partner_ngo", 11),
    ("other", 5),
]


def generated_contact_rows(
    count: int = DEFAULT_GENERATED, seed: int = DEFAULT_SEED
) -> list[dict[str, str]]:
    """`count` fictional contacts spread over roles, countries and languages (seeded)."""
    generator = _Generator(seed)
    names = [name for name, _weight in _MIX]
    weights = [weight for _name, weight in _MIX]
    rows = []
    for _ in range(count):
        builder = generator.rnd.choices(names, weights=weights)[0]
        rows.append(getattr(generator, builder)())
    return rows


# --- Lists and segments ----------------------------------------------------------------------

_LISTS: list[tuple[str, str, Any]] = [
    (
        "EU officials",
        "European Parliament, Council, Commission and EEAS contacts.",
        lambda c: (
            c["role_type"] in {"mep", "eu_council_president", "eu_high_rep"}
            or (c["country"] == "EU" and c["role_type"] == "official")
        ),
    ),
    (
        "UN special procedures",
        "Special rapporteurs and working groups.",
        lambda c: c["role_type"] in {"un_sr", "un_wg"},
    ),
    ("Press", "Journalists who take our statements.", lambda c: c["role_type"] == "journalist"),
    (
        "Diplomats",
        "Embassies, missions and foreign ministries.",
        lambda c: "diplomat" in c["tags"].split(),
    ),
    ("Partner NGOs", "Partner organisations.", lambda c: c["role_type"] == "ngo"),
]

# Definitions in the format of campaign.services.contacts.segments.
SEGMENTS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "Russian-speaking diplomats",
        "Diplomats and ministry staff who read Russian.",
        {
            "all": [
                {"field": "language", "op": "is", "value": "ru"},
                {"field": "role_type", "op": "in", "value": ["ambassador", "official", "minister"]},
                {"field": "tag", "op": "is", "value": "diplomat"},
            ]
        },
    ),
    (
        "High-risk contacts",
        "Never copy these in open letters; check the channel before writing.",
        {"any": [{"field": "risk_level", "op": "in", "value": ["elevated", "high"]}]},
    ),
]


def _create_lists() -> int:
    """Each list created and filled as from the contacts page (the demo's contacts only)."""
    contacts = (
        db.session.execute(
            select(Contact.id, Contact.role_type, Contact.country, Contact.tags)
            .where(Contact.deleted_at.is_(None))
            .order_by(Contact.id)
        )
        .mappings()
        .all()
    )
    for name, description, belongs in _LISTS:
        contact_list = lists.create_list(name, description)
        lists.add_contacts(contact_list, [c["id"] for c in contacts if belongs(c)])
    return len(_LISTS)


def _create_segments() -> int:
    for name, description, definition in SEGMENTS:
        segments.save_segment(name, definition, description)
    return len(SEGMENTS)
