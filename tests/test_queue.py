"""Jobs are enqueued only when the transaction that asked for them commits."""

from __future__ import annotations

import json
import zlib

from flask import Flask

from campaign.extensions import db
from campaign.queue import enqueue_after_commit, get_queue
from campaign.services.accounts.audit import record_event


def test_job_is_enqueued_after_commit_as_json(app: Flask) -> None:
    queue = get_queue()
    queue.empty()
    record_event("test.event")
    enqueue_after_commit(db.session, "workers.jobs.example", 42, flag=True)
    assert queue.count == 0, "nothing may be enqueued before the commit"
    db.session.commit()
    assert queue.count == 1
    job = queue.jobs[0]
    assert job.func_name == "workers.jobs.example"
    assert job.args == [42] and job.kwargs == {"flag": True}
    # JSON, not pickle: the (zlib-compressed) payload in Redis decodes as JSON.
    raw = queue.connection.hget(job.key, "data")
    assert raw is not None
    assert json.loads(zlib.decompress(raw))[0] == "workers.jobs.example"


def test_rolled_back_transaction_enqueues_nothing(app: Flask) -> None:
    queue = get_queue()
    queue.empty()
    record_event("test.event")
    enqueue_after_commit(db.session, "workers.jobs.example", 1)
    db.session.rollback()
    db.session.commit()
    assert queue.count == 0
