"""The import wizard in the page: upload, columns, preview, start, progress and rejected rows."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from campaign.extensions import db
from campaign.models import AuditEvent, Contact, ContactImport, ContactList, ImportMapping, Role
from campaign.queue import get_queue
from workers import context, jobs

# The packaged copy of ../shared/domain/sample_contacts.csv (CI has no fixed shared/ path).
SAMPLE = Path(__file__).resolve().parents[2] / "campaign" / "demo" / "data" / "sample_contacts.csv"
BAD_ROWS = (
    "First name,Last name,E-mail,Country\n"
    "Anna,Muster,anna@example.org,DE\n"
    "Bob,Bad,a@b@c.org,FR\n"
    "Carl,Probe,carl@example.org,France\n"
    "Dora,Beispiel,ANNA@example.org,DE\n"
)


def upload(client: FlaskClient, content: bytes, name: str = "contacts.csv") -> Any:
    # Encoded here, in memory: for large bodies the test client would otherwise spool to a
    # temporary file that it never closes when the app refuses the body (ResourceWarning).
    values = MultiDict({"file": FileStorage(io.BytesIO(content), filename=name)})
    boundary, body = encode_multipart(values)
    return client.post(
        "/imports/", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def import_id_from(response: Any) -> int:
    match = re.search(r"/imports/(\d+)/", response.headers["Location"])
    assert match, response.headers["Location"]
    return int(match.group(1))


def queued_import_jobs(queue: Queue) -> list[list[Any]]:
    return [job.args for job in queue.get_jobs() if job.func_name == "workers.jobs.import_contacts"]


def count() -> int:
    return int(db.session.scalar(select(func.count(Contact.id))) or 0)


def test_the_whole_wizard_imports_and_shows_each_rejected_row(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.EDITOR)
    assert "CSV or Excel" in client.get("/imports/").get_data(as_text=True)
    uploaded = upload(client, BAD_ROWS.encode("cp1252"))
    assert uploaded.status_code == 302
    import_id = import_id_from(uploaded)

    page = client.get(f"/imports/{import_id}/mapping").get_data(as_text=True)
    assert "Columns were matched by their names" in page
    assert re.search(r'<option value="email" selected>', page)
    assert "anna@example.org" in page  # example values help the choice

    mapped = client.post(
        f"/imports/{import_id}/mapping",
        data={
            "map-0": "given_name",
            "map-1": "family_name",
            "map-2": "email",
            "map-3": "country",
            "on_duplicate": "skip",
            "list_name": "Press",
        },
    )
    assert mapped.headers["Location"].endswith(f"/imports/{import_id}/preview")
    preview = client.get(f"/imports/{import_id}/preview").get_data(as_text=True)
    assert "Nothing has been saved yet" in preview
    assert "New contact" in preview
    assert "is not a valid email address" in preview
    assert "already on line 2" in preview
    assert count() == 0

    get_queue().empty()
    started = client.post(f"/imports/{import_id}/start")
    assert started.headers["Location"].endswith(f"/imports/{import_id}")
    assert queued_import_jobs(get_queue()) == [[import_id]]
    waiting = client.get(f"/imports/{import_id}").get_data(as_text=True)
    assert "<progress" in waiting and "/progress" in waiting
    assert client.get(f"/imports/{import_id}/progress").get_json()["is_done"] is False

    context.set_app(app)
    jobs.import_contacts(import_id)

    state = client.get(f"/imports/{import_id}/progress").get_json()
    assert state["is_done"] and state["percent"] == 100
    assert (state["imported"], state["rejected"]) == (1, 3)
    done = client.get(f"/imports/{import_id}").get_data(as_text=True)
    assert "imported 1, updated 0, skipped 0, rejected 3" in done
    rejects = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", done)
    assert [(line, column) for line, column, _ in rejects] == [
        ("3", "E-mail"),
        ("4", "Country"),
        ("5", ""),
    ]
    assert "a@b@c.org" in rejects[0][2]
    assert "not a country code the country table knows" in rejects[1][2]
    assert "already on line 2" in rejects[2][2]
    download = client.get(f"/imports/{import_id}/rejects.csv")
    assert download.status_code == 200
    assert "attachment" in download.headers["Content-Disposition"]
    text = download.get_data().decode("utf-8-sig")
    download.close()
    assert text.splitlines()[0] == "line,column,reason,First name,Last name,E-mail,Country"
    assert "Bob,Bad,a@b@c.org,FR" in text
    db.session.expire_all()
    press = db.session.scalar(select(ContactList).where(ContactList.name == "Press"))
    assert press is not None and press.contacts.count() == 1
    assert count() == 1


def test_the_mapping_is_remembered_for_the_next_file(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.EDITOR)
    content = b"Vorname;Wer;Adresse\nAnna;Muster;a@example.org\n"
    first = import_id_from(upload(client, content))
    client.post(
        f"/imports/{first}/mapping",
        data={"map-0": "given_name", "map-1": "family_name", "map-2": "email"},
    )
    assert db.session.scalar(select(func.count(ImportMapping.id))) == 1
    second = import_id_from(upload(client, content))
    page = client.get(f"/imports/{second}/mapping").get_data(as_text=True)
    assert "The choices you made last time" in page
    assert re.search(r'<option value="family_name" selected>', page)


def test_a_mapping_without_email_is_explained(app: Flask, client: FlaskClient, login: Any) -> None:
    login(Role.EDITOR)
    import_id = import_id_from(upload(client, SAMPLE.read_bytes()))
    response = client.post(f"/imports/{import_id}/mapping", data={"map-0": "given_name"})
    assert response.status_code == 400
    assert "no column is mapped to email" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        (b"", "empty.csv", "is empty"),
        (b"given_name,family_name,email\n", "header.csv", "no data rows"),
        (b"a#b#c\n1#2#3\n", "hash.csv", "could not tell how the columns are separated"),
        (b"x", "notes.pdf", "only CSV"),
    ],
)
def test_an_unreadable_file_is_refused_on_the_upload_page(
    app: Flask, client: FlaskClient, login: Any, content: bytes, name: str, message: str
) -> None:
    login(Role.EDITOR)
    response = upload(client, content, name)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count(ContactImport.id))) == 0
    uploads = Path(app.instance_path) / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    return {**app_overrides, "IMPORT_MAX_MB": 1}


@pytest.mark.parametrize("size", [1024 * 1024 + 10, 3 * 1024 * 1024])
def test_a_file_over_the_size_cap_gets_a_clear_message(
    app: Flask, client: FlaskClient, login: Any, size: int
) -> None:
    login(Role.EDITOR)
    header = b"given_name,family_name,email\n"
    content = header + b"Anna,Muster,a@example.org\n" * (size // 26)
    response = upload(client, content[:size])
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "larger than the 1 MB" in page and "CAMPAIGN_IMPORT_MAX_MB" in page
    assert db.session.scalar(select(func.count(ContactImport.id))) == 0


def test_an_xlsx_upload_imports(app: Flask, client: FlaskClient, login: Any) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Email", "Organisation"])
    sheet.append(["office@example.org", "Mission of Nowhere to the EU"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    login(Role.EDITOR)
    import_id = import_id_from(upload(client, buffer.getvalue(), "people.xlsx"))
    client.post(
        f"/imports/{import_id}/mapping",
        data={"map-0": "email", "map-1": "organisation", "on_duplicate": "update"},
    )
    client.post(f"/imports/{import_id}/start")
    context.set_app(app)
    jobs.import_contacts(import_id)
    page = client.get(f"/imports/{import_id}").get_data(as_text=True)
    assert "imported 1, updated 0, skipped 0, rejected 0" in page
    assert "Rejected rows" not in page


def test_a_failed_import_shows_why(app: Flask, client: FlaskClient, login: Any) -> None:
    login(Role.EDITOR)
    import_id = import_id_from(upload(client, SAMPLE.read_bytes()))
    client.post(
        f"/imports/{import_id}/mapping",
        data={f"map-{i}": "" for i in range(13)} | {"map-9": "email", "map-1": "family_name"},
    )
    client.post(f"/imports/{import_id}/start")
    record = db.session.get(ContactImport, import_id)
    assert record is not None
    Path(record.stored_path).write_bytes(b"")  # the file vanished or was damaged meanwhile
    context.set_app(app)
    jobs.import_contacts(import_id)
    page = client.get(f"/imports/{import_id}").get_data(as_text=True)
    assert "The import failed" in page and "is empty" in page
    assert count() == 0


def test_viewers_cannot_import(app: Flask, client: FlaskClient, login: Any) -> None:
    login(Role.VIEWER)
    assert client.get("/imports/").status_code == 403
    assert upload(client, SAMPLE.read_bytes()).status_code == 403


def test_rejects_of_an_unknown_import_are_not_found(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.EDITOR)
    assert client.get("/imports/999/rejects.csv").status_code == 404
    assert client.get("/imports/999").status_code == 404


def _mapped_upload(client: FlaskClient, content: bytes = BAD_ROWS.encode()) -> int:
    import_id = import_id_from(upload(client, content))
    client.post(
        f"/imports/{import_id}/mapping",
        data={"map-0": "given_name", "map-1": "family_name", "map-2": "email", "map-3": ""},
    )
    return import_id


def test_starting_twice_queues_one_job_that_runs_once(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.EDITOR)
    import_id = _mapped_upload(client)
    queue = get_queue()
    queue.empty()
    client.post(f"/imports/{import_id}/start")
    client.post(f"/imports/{import_id}/start")  # a double click, or a second tab
    jobs_queued = [j for j in queue.get_jobs() if j.func_name == "workers.jobs.import_contacts"]
    assert [(j.id, j.args) for j in jobs_queued] == [(f"contact-import-{import_id}", [import_id])]
    assert jobs_queued[0].timeout is not None and jobs_queued[0].timeout >= 600

    # Two workers get the job (RQ may deliver it twice): only the first claim runs it.
    context.set_app(app)
    jobs.import_contacts(import_id)
    jobs.import_contacts(import_id)
    db.session.expire_all()
    record = db.session.get(ContactImport, import_id)
    assert record is not None and record.status == "finished"
    assert (record.imported_count, record.rejected_count) == (2, 2)
    assert count() == 2
    imports_logged = db.session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "contacts.import")
    )
    assert imports_logged == 1


def test_a_job_whose_import_another_worker_claimed_does_nothing(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    from campaign.services.contacts import importing

    login(Role.EDITOR)
    import_id = _mapped_upload(client)
    client.post(f"/imports/{import_id}/start")
    assert importing.claim_import(import_id) is True  # the other worker
    db.session.commit()
    assert importing.claim_import(import_id) is False
    db.session.rollback()
    context.set_app(app)
    jobs.import_contacts(import_id)
    db.session.expire_all()
    record = db.session.get(ContactImport, import_id)
    assert record is not None and record.status == "running"
    assert count() == 0


def test_an_import_whose_job_died_is_shown_as_failed_not_running_forever(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.EDITOR)
    import_id = _mapped_upload(client)
    client.post(f"/imports/{import_id}/start")
    assert client.get(f"/imports/{import_id}/progress").get_json()["is_done"] is False
    # The worker was killed and Redis lost the job (or it timed out and was cleaned up).
    get_queue().empty()
    progress = client.get(f"/imports/{import_id}/progress").get_json()
    assert progress["is_done"] is True and progress["status"] == "failed"
    page = client.get(f"/imports/{import_id}").get_data(as_text=True)
    assert "stopped before finishing; no contact was changed" in page
    assert count() == 0
    # A worker that picks the job up late does nothing with a failed import.
    context.set_app(app)
    jobs.import_contacts(import_id)
    assert count() == 0


def test_a_running_import_silent_for_longer_than_its_timeout_is_failed(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    from campaign.services.contacts import importing

    login(Role.EDITOR)
    import_id = _mapped_upload(client)
    client.post(f"/imports/{import_id}/start")
    assert importing.claim_import(import_id)  # a worker took it, then hung
    db.session.commit()
    record = db.session.get(ContactImport, import_id)
    assert record is not None
    db.session.refresh(record)
    # The job still exists in Redis: within its timeout the import is left alone.
    soon = datetime.now(UTC) + timedelta(seconds=record.job_timeout_seconds - 60)
    assert importing.fail_if_stopped(record, now=soon) is False
    assert record.status == "running"
    later = datetime.now(UTC) + timedelta(seconds=record.job_timeout_seconds + 60)
    assert importing.fail_if_stopped(record, now=later) is True
    db.session.commit()
    page = client.get(f"/imports/{import_id}").get_data(as_text=True)
    assert "The import failed" in page and "start it again" in page.lower()


def test_messages_are_not_taken_from_the_address_bar(
    app: Flask, client: FlaskClient, login: Any
) -> None:
    login(Role.EDITOR)
    import_id = import_id_from(upload(client, BAD_ROWS.encode()))
    page = client.get(f"/imports/{import_id}/mapping?error=Your+account+is+suspended")
    assert page.status_code == 200 and "<h1>Match the columns of" in page.get_data(as_text=True)
    assert "Your account is suspended" not in page.get_data(as_text=True)
