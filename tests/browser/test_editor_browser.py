"""The preview and the statement editor through Chromium (issue 15, items 5 and 6): search the
recipients, step to the next one, type in the editor and watch the letter follow."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, Route, expect
from sqlalchemy import select

from campaign.extensions import db
from campaign.models import Role, User
from campaign.queue import get_redis
from campaign.services.contacts import lists
from campaign.services.contacts.contacts import create_contact
from campaign.services.statements import previews, statements
from tests.browser.conftest import LiveServer

BODY = "{{ salutation }}\n\nWe write about the trial.\n\n{{ closing }}\n\nAnna Sample\n"
PEOPLE = [
    ("Amara", "Sample", "un_sr", "en", "OHCHR"),
    ("Claire", "Exemple", "minister", "fr", "Ministère des Affaires étrangères"),
    ("Berdi", "Misalov", "ambassador", "ru", "Embassy of Uzbekistan"),
]


def _setup(live_server: LiveServer) -> dict[str, int]:
    with live_server.app.app_context():
        statement = statements.create_statement(
            "Trial letter", language="en", subject="The trial", body=BODY
        )
        people = {
            given: create_contact(
                {
                    "given_name": given,
                    "family_name": family,
                    "role_type": role,
                    "grammatical_gender": "f",
                    "languages": language,
                    "organisation": organisation,
                    "email": f"{given.lower()}@example.org",
                }
            )
            for given, family, role, language, organisation in PEOPLE
        }
        summit = lists.create_list("Summit")
        lists.add_contacts(summit, [p.id for p in people.values()])
        db.session.commit()
        ids = {given: person.id for given, person in people.items()}
        ids |= {"statement": statement.id, "list": summit.id}
        db.session.remove()
    return ids


def test_preview_search_and_next_then_the_editor_with_its_live_letter(
    signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    ids = _setup(live_server)
    page = signed_in_page(Role.EDITOR, "editor-e@example.org")

    # Preview: the search narrows the list as one types; no button.
    page.goto(f"/statements/{ids['statement']}/preview/?audience=list:{ids['list']}")
    links = page.locator("#preview-recipients a[data-contact-id]")
    expect(links).to_have_count(3)
    page.get_by_label("Search recipients").fill("ambassador")
    expect(links).to_have_count(1)
    expect(links).to_have_text("Berdi Misalov")
    page.get_by_label("Search recipients").fill("")
    expect(links).to_have_count(3)
    links.first.click()  # by name: Exemple, Misalov, Sample
    expect(page.locator("#preview-text")).to_contain_text("Dear Minister,")
    expect(page.locator("#preview-warnings")).to_contain_text("Not in the contact's language")
    page.locator("#preview-next").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#preview-text")).to_contain_text("Dear Ambassador Misalov,")
    current = page.locator("#preview-recipients a[aria-current]")
    expect(current).to_have_attribute("data-contact-id", str(ids["Berdi"]))

    # The editor: the letter beside the text follows the typing.
    answers: list[int] = []
    page.on("response", lambda r: answers.append(r.status) if r.url.endswith("/live") else None)
    page.goto(f"/statements/{ids['statement']}")
    page.get_by_label("Reader of the letter shown beside the text").select_option(str(ids["Amara"]))
    live = page.frame_locator("#live-text iframe")
    expect(live.get_by_text("Dear Special Rapporteur,")).to_be_visible()
    body = page.locator("#f-text-body")
    body.fill(BODY.replace("the trial", "the **unfair** trial"))
    expect(live.locator("strong", has_text="unfair")).to_be_visible()
    # The toolbar's footnote: the reference where the caret is, the definition at the end.
    body.focus()
    page.keyboard.press("Control+End")
    toolbar = page.locator('.editor-toolbar[data-target="f-text-body"]')
    toolbar.get_by_role("button", name="Footnote").click()
    value = body.input_value()
    assert value.count("[^1]") == 2 and value.rstrip().endswith("[^1]:"), value
    page.keyboard.type("Article 159.")
    expect(live.get_by_text("Article 159.")).to_be_visible()

    # While a render of this user's is still running the next one waits, then comes by itself.
    with live_server.app.app_context():
        user = db.session.scalars(select(User).filter_by(email="editor-e@example.org")).one()
        busy = previews.busy_key(user.id)
        get_redis().set(busy, "another render", ex=30)
        db.session.remove()
    page.keyboard.type(" Second note.")
    expect(page.locator("#live-text .live-status")).to_contain_text(
        "Still drawing the previous letter"
    )
    with live_server.app.app_context():
        get_redis().delete(busy)
    expect(live.get_by_text("Article 159. Second note.")).to_be_visible()
    expect(page.locator("#live-text .live-status")).not_to_contain_text("Still drawing")

    # A new translation opens blank beside the source text.
    page.locator("#add-language summary").click()
    expect(page.locator("#source-text")).to_contain_text("We write about the")
    expect(page.locator("#f-language-body")).to_have_value("")
    # The closed translation form, whose language is not typed yet, asked for no letter when
    # the reader changed; neither does it when opened.
    assert 422 not in answers, answers
    page.locator("#f-language-language").fill("fr")
    page.locator("#f-language-body").fill("{{ salutation }}\n\nNous écrivons.\n")
    translation = page.frame_locator("#live-language iframe")
    expect(translation.get_by_text("Nous écrivons.")).to_be_visible()

    # At 390 px the text and the letter are stacked, the letter below.
    page.set_viewport_size({"width": 390, "height": 844})
    text_box = body.bounding_box()
    letter_box = page.locator("#live-text").bounding_box()
    assert text_box and letter_box and letter_box["y"] >= text_box["y"] + text_box["height"]
    assert letter_box["x"] + letter_box["width"] <= 390


def test_the_add_a_language_form_stays_where_it_is_when_the_letter_arrives(
    signed_in_page: Callable[..., Page], live_server: LiveServer
) -> None:
    """The live letter's room is kept from the start: a click aimed at "Add a language" while
    the letter is still being drawn lands on it (it used to jump 60 % of a screen down)."""
    ids = _setup(live_server)
    page = signed_in_page(Role.EDITOR, "editor-s@example.org")
    held: list[Route] = []
    # Hold the letter's answer until the form's place has been read: the letter arrives after.
    page.route("**/live", lambda route: held.append(route))
    page.goto(f"/statements/{ids['statement']}")
    summary = page.locator("#add-language summary")
    expect(summary).to_be_visible()
    while not held:
        page.wait_for_timeout(50)
    before = summary.bounding_box()
    for route in held:
        route.continue_()
    page.unroute("**/live")
    expect(
        page.frame_locator("#live-text iframe").get_by_text("We write about the trial.")
    ).to_be_visible()
    after = summary.bounding_box()
    assert before and after
    assert after["y"] == pytest.approx(before["y"], abs=2), (before, after)
