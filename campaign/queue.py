"""RQ adapter: the Redis connection, a JSON serializer, and enqueue-after-commit."""

from __future__ import annotations

from typing import Any

from flask import current_app
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer
from sqlalchemy import event
from sqlalchemy.orm import Session

from campaign.embedded_redis import embedded_redis_url

_PENDING_KEY = "campaign_pending_jobs"


def redis_url() -> str:
    """The configured Redis URL, or the embedded server's (started if needed)."""
    return current_app.config["REDIS_URL"] or embedded_redis_url(current_app.config)


def get_redis() -> Redis:
    ext = current_app.extensions
    if "campaign_redis" not in ext:
        ext["campaign_redis"] = Redis.from_url(redis_url())
    connection: Redis = ext["campaign_redis"]
    return connection


# Webhook deliveries wait on a queue of their own, which workers take only when the sending
# queue is empty: a slow receiver must not hold up the letters (decision 0068).
WEBHOOKS = "webhooks"


def queue_names(config: Any) -> list[str]:
    """The queues a worker listens to, the sending queue first: QUEUE_NAME, QUEUE_NAME-webhooks."""
    base = str(config["QUEUE_NAME"])
    return [base, f"{base}-{WEBHOOKS}"]


def get_queue(kind: str | None = None) -> Queue:
    """The installation's queue, or (kind=WEBHOOKS) its webhook deliveries' queue."""
    names = queue_names(current_app.config)
    # JSON, never pickle: write access to Redis must not mean code execution in workers.
    return Queue(
        names[1] if kind == WEBHOOKS else names[0],
        connection=get_redis(),
        serializer=JSONSerializer,
    )


def enqueue_after_commit(
    session: Session,
    func: str,
    *args: Any,
    job_id: str | None = None,
    job_timeout: int | None = None,
    retry: Any = None,
    queue: str | None = None,
    **kwargs: Any,
) -> None:
    """Enqueue job `func` (dotted name) with JSON-able args once `session` commits.

    A rolled-back transaction enqueues nothing, so no job ever sees rows that do not exist.
    `job_id` and `job_timeout` (seconds) are RQ's own options, not arguments of the job;
    `queue=WEBHOOKS` puts it on the webhook deliveries' queue.
    """
    pending: list[tuple[str, tuple[Any, ...], dict[str, Any], dict[str, Any], str | None]]
    pending = session.info.setdefault(_PENDING_KEY, [])
    options = {"job_id": job_id, "timeout": job_timeout}
    if retry is not None:
        options["retry"] = retry  # an rq.Retry: how often and when RQ tries a failed job again
    pending.append((func, args, kwargs, options, queue))


def discard_pending_jobs(session: Session, func: str, *args: Any) -> None:
    """Forget jobs `func(*args)` that `session` would enqueue at its commit (nothing else)."""
    pending = session.info.get(_PENDING_KEY, [])
    session.info[_PENDING_KEY] = [job for job in pending if not (job[0] == func and job[1] == args)]


def install_commit_hooks(session_factory: Any) -> None:
    """Queue a session's pending jobs when it commits, drop them when it rolls back.

    Once per session factory, however many apps share it (an app per test would otherwise
    add a pair of hooks per test, each run at every commit).
    """
    for name, hook in (("after_commit", _flush_jobs), ("after_rollback", _drop_jobs)):
        if not event.contains(session_factory, name, hook):
            event.listen(session_factory, name, hook)


def _flush_jobs(session: Session) -> None:
    pending = session.info.pop(_PENDING_KEY, [])
    if not pending:
        return
    for kind in dict.fromkeys(job[4] for job in pending):
        get_queue(kind).enqueue_many(
            [
                Queue.prepare_data(func, args=args, kwargs=kwargs, **options)
                for func, args, kwargs, options, queue in pending
                if queue == kind
            ]
        )


def _drop_jobs(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)
