"""`python -m workers`: an RQ worker on this installation's queues, with the app loaded once.

It takes jobs from QUEUE_NAME first and from QUEUE_NAME-webhooks (webhook deliveries) only
when the first is empty (campaign.queue.queue_names).

The worker's main process also runs the reconciler (workers/ticker.py): at start-up and
every RECONCILE_SECONDS, on one machine per interval, and polls the IMAP mailboxes that
are due every INBOX_POLL_SECONDS and writes buffered tracking hits every
TRACKING_FLUSH_SECONDS and runs the scheduler's tick every SCHEDULER_TICK_SECONDS the
same way. In --burst mode it runs once, at
start, so that work Redis lost is queued before the worker looks at the queue.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue, SimpleWorker, Worker
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus
from sqlalchemy.orm import configure_mappers

from campaign.services.sending.batches import give_up_leases, wait_for_lease_threads
from campaign.services.sending.deliveries import SEND_JOB
from campaign.smtp import abort_all
from workers.context import request_job_stop, request_stop

log = logging.getLogger("workers")


class _PromptUnsubscribe:
    """Stop RQ's command listener before unsubscribing, so a stopping worker never hangs.

    RQ sends UNSUBSCRIBE and only then stops its pubsub thread, whose stop() waits for it.
    When the thread read the UNSUBSCRIBE reply before the stop flag was set, it went back
    to a 60-second read and the worker hung that long on exit (seen under load: a burst
    worker's test timed out). With the flag down first, that reply ends the thread's read.
    """

    pubsub_thread: Any

    def unsubscribe(self) -> None:
        if self.pubsub_thread is not None:
            self.pubsub_thread.stop(timeout=0)  # the flag only; the reply wakes the thread
        super().unsubscribe()  # type: ignore[misc]


# What the worker sends its work horse on a warm shutdown: "finish the letter in hand, then
# stop". RQ itself only waits for the whole job, and a batch of 200 paced letters outlasted
# every stop timeout (Ctrl-C on scripts/run: "did not stop in 15 s; killing it").
STOP_SOON_SIGNAL = signal.SIGUSR1


# Held by the background threads (reconciler, inbox poller, scheduler tick ...) while they
# use a SQLite database, and by the worker while it forks a work horse. SQLite keeps
# process-wide mutexes: a horse forked while a thread was inside SQLite inherited the mutex
# locked and hung at its first query, for ever (the job never ended, so a stop waited for
# it until it was killed). None with PostgreSQL, whose client library has no such state.
_fork_lock: threading.Lock | None = None
# The longest a SQLite statement waits for a lock (campaign/config.py: connect timeout 30 s).
SQLITE_BUSY_WAIT = 30.0


def _without_fork(run: Any) -> Any:
    """`run`, made to hold the fork lock (when there is one) while it runs."""

    def guarded() -> None:
        if _fork_lock is None:
            run()
            return
        with _fork_lock:
            run()

    guarded.__name__ = getattr(run, "__name__", "run")
    return guarded


# Jobs the forking worker runs in its own process, as --simple does, instead of in a work
# horse forked for each one (decision 0077): a send batch then finds the letter caches, the
# compiled templates and the pooled connections the previous batch left warm, and pays no
# fork. A crash of such a job is a crash of the worker, which the send loop's ledger already
# survives (every outcome is committed before the next letter; leases come back by
# themselves); the other jobs (imports, checks, webhooks, bulk edits) keep their horse.
IN_PROCESS_JOBS = frozenset({SEND_JOB})

# A job run in this process has no parent to SIGKILL it at its timeout + 60 s, as RQ does a
# horse. RQ's SIGALRM ends it at its timeout; should it still run this long after (its
# unwinding held by a server, the timeout swallowed), a watchdog cuts every SMTP connection
# of the process and stops renewing its leases (the rows come back after their lease, the
# letter in flight in doubt); and this long after, it ends the worker (os._exit: systemd's
# Restart=always starts it again), as the horse's SIGKILL did.
IN_PROCESS_ABORT_AFTER = 10.0
IN_PROCESS_EXIT_AFTER = 60.0


def _watch(job_id: str, timeout: float, done: threading.Event) -> None:
    if done.wait(timeout + IN_PROCESS_ABORT_AFTER):
        return
    cut, keepers = abort_all(), give_up_leases()
    log.error(
        "job %s still runs %.0f s after its %.0f s timeout: %d SMTP connection(s) cut, "
        "%d lease(s) no longer renewed",
        job_id,
        IN_PROCESS_ABORT_AFTER,
        timeout,
        cut,
        keepers,
    )
    if done.wait(IN_PROCESS_EXIT_AFTER - IN_PROCESS_ABORT_AFTER):
        return
    log.critical(
        "job %s still runs %.0f s after its timeout: the worker ends itself",
        job_id,
        IN_PROCESS_EXIT_AFTER,
    )
    logging.shutdown()
    os._exit(70)  # EX_SOFTWARE; the rows come back after their lease, as after a kill


class CampaignWorker(_PromptUnsubscribe, Worker):
    """RQ's forking worker (a work horse per job, send jobs in-process), stopping promptly."""

    def execute_job(self, job: Any, queue: Any) -> None:
        if job.func_name not in IN_PROCESS_JOBS:
            super().execute_job(job, queue)
            return
        # SimpleWorker.execute_job: the job runs here, under RQ's own timeout (SIGALRM),
        # and a watchdog for when that is not enough.
        timeout = job.timeout or self.queue_class.DEFAULT_TIMEOUT
        done = threading.Event()
        if timeout and timeout > 0:
            threading.Thread(
                target=_watch,
                args=(job.id, float(timeout), done),
                name="job-watchdog",
                daemon=True,
            ).start()
        try:
            execution = self.prepare_execution(job)
            self.perform_job(job, queue, execution)
        finally:
            done.set()
        self.set_state(WorkerStatus.IDLE)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.horse_pid:
            super().kill_horse(sig)
            return
        # The job runs in this very process (a send batch): RQ's kill_horse would be
        # os.killpg(os.getpgid(0), ...), this worker's whole process group. RQ's stop-job
        # and stop-execution commands call it unchecked; the job ends cooperatively instead,
        # after the letter in hand, giving the rest of its rows back.
        log.warning("worker %s: no work horse to kill; the current job is asked to stop", self.name)
        request_job_stop()

    def get_heartbeat_ttl(self, job: Any, working_time: float = 0.0) -> int:
        if job.func_name in IN_PROCESS_JOBS:
            # No monitoring loop renews it while the job runs here: cover the whole job.
            return int(SimpleWorker.get_heartbeat_ttl(self, job, working_time))  # type: ignore[arg-type]
        return int(super().get_heartbeat_ttl(job, working_time))

    def fork_work_horse(self, job: Any, queue: Any) -> None:
        if _fork_lock is None:
            super().fork_work_horse(job, queue)
            return
        with _fork_lock:  # the horse never returns from here; the parent releases the lock
            # A send batch run in this process may have left its lease thread finishing a
            # renewal in SQLite (it is given a little while after the batch).
            wait_for_lease_threads(timeout=SQLITE_BUSY_WAIT)
            super().fork_work_horse(job, queue)

    def setup_work_horse_signals(self) -> None:
        super().setup_work_horse_signals()
        signal.signal(STOP_SOON_SIGNAL, lambda *_args: request_stop())

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        # Here too: a horse forked from now on (the stop came while this process waited for
        # the fork lock) starts with the stop already asked, since fork copies the flag.
        request_stop()
        if self.horse_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.horse_pid, STOP_SOON_SIGNAL)


class CampaignSimpleWorker(_PromptUnsubscribe, SimpleWorker):
    """RQ's in-process worker (--simple), stopping promptly."""

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()
        request_stop()  # the job runs in this very process


# Waits between attempts to reach Redis again after it went away: 1 s, 2, 4 … at most 30.
RECONNECT_FIRST = 1.0
RECONNECT_MAX = 30.0


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
        help="Run every job in this process instead of a forked child (send batches always "
        "run here; for a debugger; no hard job timeouts).",
    )
    parser.add_argument("--name", default=None, help="Worker name shown by `rq info`.")
    parser.add_argument("--log-level", default="INFO", help="Python logging level (INFO).")
    return parser.parse_args(argv)


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_name(connection: Redis, name: str | None, worker_class: Any) -> str | None:
    """The name to register under: `name`, its stale registration cleaned, or `name-PID`.

    RQ refuses a worker whose name is still registered, and a SIGKILLed worker's entry stays
    for minutes: a unit restarted by systemd (`--name %H-%i`) would be refused again and
    again. An entry left by a dead process on this machine (or by this very process, before
    Redis went away) is cleaned; a name held by a live worker gets this process's id added.
    """
    if not name:
        return name
    key = worker_class.redis_worker_namespace_prefix + name
    found: dict[bytes, bytes] = connection.hgetall(key)  # type: ignore[assignment]
    if not found or b"death" in found:
        return name
    hostname = found.get(b"hostname", b"").decode()
    try:
        pid = int(found.get(b"pid", b"0"))
    except ValueError:
        pid = 0
    if hostname == socket.gethostname() and (pid == os.getpid() or not _is_alive(pid)):
        stale = worker_class.find_by_key(key, connection=connection, serializer=JSONSerializer)
        if stale is not None:
            stale.register_death()
        connection.delete(key)
        log.info("worker %s: cleaned the registration its lost process %s left", name, pid)
        return name
    return f"{name}-{os.getpid()}"


def _wait_for_redis(connection: Redis, stop: threading.Event) -> bool:
    """Ping Redis with a growing pause until it answers (True) or a stop is asked (False)."""
    wait = RECONNECT_FIRST
    while not stop.is_set():
        try:
            connection.ping()
            return True
        except RedisError as error:
            log.warning("Redis cannot be reached (%s); trying again in %.0f s", error, wait)
        stop.wait(wait)
        wait = min(wait * 2, RECONNECT_MAX)
    return False


def work_until_stopped(
    make_worker: Any, connection: Redis, log_level: str, first: Any = None
) -> None:
    """Run RQ's work loop; when Redis goes away, wait for it and start the loop again.

    RQ's loop gives up on a Redis error (`python -m workers` then exited and stayed down).
    Only SIGTERM or SIGINT ends this one. The rows a job was sending are not at risk: their
    claim lives in the database with its own heartbeat (campaign.services.sending.batches).
    """
    stop = threading.Event()
    while True:
        worker = None
        try:
            worker, first = first or make_worker(), None
            worker.work(logging_level=log_level)
        except (RedisConnectionError, RedisTimeoutError) as error:
            log.warning("the worker lost Redis (%s)", error)
        # RQ marks a stop asked for while busy in _stop_requested, and any SIGTERM/SIGINT in
        # _shutdown_requested_date (an idle worker's loop just ends): both mean "exit".
        asked_to_stop = worker is not None and (
            worker._stop_requested or getattr(worker, "_shutdown_requested_date", None)
        )
        if asked_to_stop or stop.is_set():
            return
        # RQ's handlers stay installed after its loop; ours just end the wait.
        previous = {
            number: signal.signal(number, lambda *_args: stop.set())
            for number in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            # A short pause even when Redis answers: RQ's loop may have quit for another
            # reason, and must not be restarted in a tight loop.
            stop.wait(RECONNECT_FIRST)
            if not _wait_for_redis(connection, stop):
                return
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        log.warning("Redis answers again; the worker goes back to work")


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    from campaign import create_app
    from campaign.config import ConfigError
    from campaign.extensions import db
    from campaign.queue import get_redis, queue_names, redis_url
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
        # Until a horse installs its handler (RQ does it first thing), the signal is ignored
        # rather than fatal: one sent at the moment of the fork must not kill the job.
        signal.signal(STOP_SOON_SIGNAL, signal.SIG_IGN)
        if engine.dialect.name == "sqlite" and not args.simple:
            global _fork_lock
            _fork_lock = threading.Lock()
        # The mappers are configured now, before any thread or fork: a work horse forked
        # while a thread held SQLAlchemy's configuration lock would wait on it forever.
        configure_mappers()
        connection = get_redis()
        # RQ gets a client of its own that nothing else has used: RQ raises the pool's socket
        # timeout to fit its blocking dequeue, but connections opened before keep redis-py's
        # 5 s, and an idle worker's every dequeue then failed ("Timeout reading") and it ran
        # no job. The name check, the pings and the background threads use `connection`.
        rq_connection = Redis.from_url(redis_url())
        # The sending queue first, then the webhook deliveries': RQ takes from the first queue
        # that has a job, so a slow webhook receiver never stands before a letter.
        queues = [
            Queue(name, connection=rq_connection, serializer=JSONSerializer)
            for name in queue_names(app.config)
        ]
        worker_class: Any = CampaignSimpleWorker if args.simple else CampaignWorker

        def make_worker() -> Any:
            return worker_class(
                queues,
                connection=rq_connection,
                serializer=JSONSerializer,
                name=free_name(connection, args.name, worker_class),
            )

        if args.burst:
            worker = make_worker()
            try:
                reconcile()
            except Exception:
                # The queue may still hold work; the next worker's reconcile catches up.
                log.exception("the start-up reconcile failed")
            worker.work(burst=True, logging_level=args.log_level)
            return 0
        first = make_worker()
        reconciler = Reconciler(app, _without_fork(reconcile))
        reconciler.start()
        inbox_poller = Reconciler(
            app, _without_fork(poll_inboxes), name="poll-inboxes", interval_key="INBOX_POLL_SECONDS"
        )
        inbox_poller.start()
        tracking_flusher = Reconciler(
            app,
            _without_fork(flush_tracking),
            name="flush-tracking",
            interval_key="TRACKING_FLUSH_SECONDS",
        )
        tracking_flusher.start()
        scheduler = Reconciler(
            app,
            _without_fork(run_scheduler),
            name="scheduler-tick",
            interval_key="SCHEDULER_TICK_SECONDS",
        )
        scheduler.start()
        try:
            work_until_stopped(make_worker, connection, args.log_level, first)
        finally:
            reconciler.stop()
            inbox_poller.stop()
            tracking_flusher.stop()
            scheduler.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
