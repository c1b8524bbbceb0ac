"""The reconciler's clock: one background thread per worker process, one run per interval overall.

Every worker runs the thread, so the reconciler survives any machine being down; a Redis
lock (SET NX EX) lets only one of them do the work in each interval.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flask import Flask

from campaign.queue import get_redis

log = logging.getLogger(__name__)


def lock_key(app: Flask, name: str = "reconcile") -> str:
    return f"campaign:{app.config['QUEUE_NAME']}:{name}-lock"


def run_if_due(
    app: Flask,
    run: Callable[[], None],
    *,
    name: str = "reconcile",
    interval_key: str = "RECONCILE_SECONDS",
) -> bool:
    """Run `run` unless another worker did in this interval; True if it ran here."""
    interval = max(1, int(app.config[interval_key]))
    with app.app_context():
        # Expires by itself: a worker that dies mid-run does not block the next interval.
        taken = get_redis().set(lock_key(app, name), "1", nx=True, ex=interval)
    if not taken:
        return False
    run()
    return True


class Reconciler(threading.Thread):
    """Calls `run` (the reconcile job by default) now and then every interval until stopped.

    The inbox poller uses it too, with name="poll-inboxes" and INBOX_POLL_SECONDS.
    """

    def __init__(
        self,
        app: Flask,
        run: Callable[[], None],
        *,
        name: str = "reconcile",
        interval_key: str = "RECONCILE_SECONDS",
    ) -> None:
        super().__init__(name=f"campaign-{name}", daemon=True)
        self.app = app
        self.run_job = run
        self.job_name = name
        self.interval_key = interval_key
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = max(1, int(self.app.config[self.interval_key]))
        while not self.stopped.is_set():
            try:
                run_if_due(
                    self.app, self.run_job, name=self.job_name, interval_key=self.interval_key
                )
            except Exception:
                # Redis or the database may be away for a moment; the next tick tries again.
                log.exception("%s failed; trying again in %s s", self.job_name, interval)
            self.stopped.wait(interval)

    def stop(self) -> None:
        self.stopped.set()
