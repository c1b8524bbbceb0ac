"""`python -m workers`: an RQ worker on this installation's queue, with the app loaded once.

The worker's main process also runs the reconciler (workers/ticker.py): at start-up and
every RECONCILE_SECONDS, on one machine per interval, and polls the IMAP mailboxes that
are due every INBOX_POLL_SECONDS and writes buffered tracking hits every
TRACKING_FLUSH_SECONDS and runs the scheduler's tick every SCHEDULER_TICK_SECONDS the
same way. In --burst mode it runs once, at
start, so that work Redis lost is queued before the worker looks at the queue.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from rq import SimpleWorker, Worker
from rq.serializers import JSONSerializer


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m workers", description="Run an RQ worker for the campaign queue."
    )
    parser.add_argument(
        "--burst", action="store_true", help="Work until the queue is empty, then exit."
    )
    parser.add_argument(
        "--simple",
        action="store_true",
        help="Run jobs in this process instead of a forked child (for a debugger; "
        "no hard job timeouts).",
    )
    parser.add_argument("--name", default=None, help="Worker name shown by `rq info`.")
    parser.add_argument("--log-level", default="INFO", help="Python logging level (INFO).")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    from campaign import create_app
    from campaign.config import ConfigError
    from campaign.extensions import db
    from campaign.queue import get_queue, get_redis
    from workers.context import set_app
    from workers.jobs import flush_tracking, poll_inboxes, reconcile, run_scheduler
    from workers.ticker import Reconciler

    try:
        app = create_app()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # Import and configure once; every job then gets a fresh app context from workers.context.
    set_app(app)

    with app.app_context():
        engine = db.engine
        # A forked work horse must not reuse the parent's pooled database connections.
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
        connection = get_redis()
        queue = get_queue()
        worker_class = SimpleWorker if args.simple else Worker
        worker = worker_class(
            [queue], connection=connection, serializer=JSONSerializer, name=args.name
        )
        if args.burst:
            try:
                reconcile()
            except Exception:
                # The queue may still hold work; the next worker's reconcile catches up.
                logging.getLogger("workers").exception("the start-up reconcile failed")
            worker.work(burst=True, logging_level=args.log_level)
            return 0
        reconciler = Reconciler(app, reconcile)
        reconciler.start()
        inbox_poller = Reconciler(
            app, poll_inboxes, name="poll-inboxes", interval_key="INBOX_POLL_SECONDS"
        )
        inbox_poller.start()
        tracking_flusher = Reconciler(
            app, flush_tracking, name="flush-tracking", interval_key="TRACKING_FLUSH_SECONDS"
        )
        tracking_flusher.start()
        scheduler = Reconciler(
            app, run_scheduler, name="scheduler-tick", interval_key="SCHEDULER_TICK_SECONDS"
        )
        scheduler.start()
        try:
            worker.work(logging_level=args.log_level)
        finally:
            reconciler.stop()
            inbox_poller.stop()
            tracking_flusher.stop()
            scheduler.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
