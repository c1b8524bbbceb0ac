"""The suite's slow tests start first, one share of them on each xdist worker (decision 0081).

A 60 s test that a worker reaches last makes the whole run 60 s longer. xdist's worksteal
hands each worker one contiguous share of the collection, runs it in order and steals from
the END of a busy worker's share, so a test at the head of a share starts at once and is
never stolen. Here the tests that took `SLOW` seconds or more in a recorded run (their
setup, call and teardown, in tests/durations.json) are dealt out, longest first, to the
worker whose slow tests add up to least, and put at the head of that worker's share; every
other test keeps its place in collection order.

A head holds at most its share's size (more would push the next heads into shares xdist
already cut, so one worker would start with several slow tests in a row). Only under
`--dist worksteal` (plain `load` hands a worker its next tests only when it gets there), and
not with `--ff`/`--nf` (their tests must come first).

Refresh the record with `scripts/test --record-durations`: the tests that ran get their new
figure in tests/durations.json (kept when `RECORDED` seconds or more), a skipped test keeps
its old one, the others keep theirs, and the ids a full run no longer collects go. A test
missing from it (new, renamed) simply counts as fast.
"""

from __future__ import annotations

import json
import os
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

DURATIONS = Path(__file__).parent / "durations.json"
SLOW = 2.0  # seconds: a test at least this long goes to the head of a share
RECORDED = 0.5  # seconds: tests at least this long are kept in the record


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-durations",
        action="store_true",
        default=False,
        help=f"write each test's setup+call+teardown time to {DURATIONS.name} (slow tests first)",
    )


def _shares(total: int, workers: int) -> list[int]:
    """How many tests worksteal first hands each worker (xdist 3.x `check_schedule`)."""
    sizes = []
    left = total
    for remaining in range(workers, 0, -1):
        sizes.append(left // remaining)
        left -= sizes[-1]
    return sizes


def _recorded() -> dict[str, float]:
    try:
        durations: dict[str, float] = json.loads(DURATIONS.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return durations


def slow_first(nodeids: list[str], durations: dict[str, float], workers: int) -> list[str]:
    """`nodeids` reordered: the slow ones at the heads of the `workers` shares, the rest in
    their order. Every id comes back exactly once."""
    if workers < 2 or len(nodeids) < workers:
        return list(nodeids)
    slow = sorted(
        (nodeid for nodeid in nodeids if durations.get(nodeid, 0.0) >= SLOW),
        key=lambda nodeid: (-durations[nodeid], nodeid),
    )
    sizes = _shares(len(nodeids), workers)
    heads: list[list[str]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for nodeid in slow:
        # Longest first, to the least loaded share that still has room: a head never
        # outgrows its share (there is always room: the slow tests are some of the tests).
        share = min((n for n in range(workers) if len(heads[n]) < sizes[n]), key=lambda n: loads[n])
        heads[share].append(nodeid)
        loads[share] += durations[nodeid]
    chosen = set(slow)
    rest = iter([nodeid for nodeid in nodeids if nodeid not in chosen])
    ordered: list[str] = []
    for head, size in zip(heads, sizes, strict=True):
        ordered.extend(head)
        ordered.extend(islice(rest, size - len(head)))
    ordered.extend(rest)  # nothing left (the shares add up to the total): a safeguard
    return ordered


def planned_order(
    nodeids: list[str],
    durations: dict[str, float],
    workers: int,
    *,
    dist: str,
    failures_first: bool,
) -> list[str]:
    """The order to run in: slow first only under worksteal and without --ff/--nf."""
    if dist != "worksteal" or failures_first:
        return list(nodeids)
    return slow_first(nodeids, durations, workers)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    # xdist's workers run with `dist` set to "no": the controller tells them its mode.
    node.workerinput["slow_first_dist"] = node.config.getoption("dist")


def _dist(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return str(workerinput.get("slow_first_dist", "no"))
    return str(config.getoption("dist", "no"))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    by_id = {item.nodeid: item for item in items}
    if len(by_id) != len(items):
        return  # two items with one id (never seen): leave the order alone
    failures_first = bool(
        config.getoption("failedfirst", False) or config.getoption("newfirst", False)
    )
    order = planned_order(
        list(by_id), _recorded(), workers, dist=_dist(config), failures_first=failures_first
    )
    items[:] = [by_id[nodeid] for nodeid in order]


def updated_record(
    recorded: dict[str, float],
    ran: dict[str, float],
    skipped: set[str],
    collected: set[str],
    whole_files: set[str],
) -> dict[str, float]:
    """The record after a run: the ids of `whole_files` (files the run collected whole) that
    it did not collect go; the tests that ran replace their figures, except skipped ones,
    which keep theirs (a skip's 0.0 s says nothing about the test); the others stay."""
    kept = {
        nodeid: seconds
        for nodeid, seconds in recorded.items()
        if nodeid in collected or nodeid.split("::")[0] not in whole_files
    }
    for nodeid, seconds in ran.items():
        if nodeid in skipped:
            continue
        if seconds >= RECORDED:
            kept[nodeid] = round(seconds, 1)
        else:
            kept.pop(nodeid, None)
    return dict(sorted(kept.items()))


_SELECTING = ("keyword", "markexpr", "deselect", "lf", "stepwise")


class _Recorder:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.durations: dict[str, float] = {}
        self.skipped: set[str] = set()
        self.collected: set[str] = set()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.collected.update(item.nodeid for item in session.items)  # one process

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.collected.update(ids)  # xdist's controller: each worker's ids (all the same)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration
        if report.skipped and not hasattr(report, "wasxfail"):
            self.skipped.add(report.nodeid)

    def _whole_files(self, recorded: dict[str, float]) -> set[str]:
        """Files whose every test this run would have collected: gone ones, and collected ones
        under a path given without `::` when nothing narrowed the selection."""
        root = self.config.rootpath
        files = {nodeid.split("::")[0] for nodeid in recorded}
        whole = {name for name in files if not (root / name).exists()}
        if any(self.config.getoption(name, None) for name in _SELECTING):
            return whole
        from_testpaths = self.config.args_source == pytest.Config.ArgsSource.TESTPATHS
        base = root if from_testpaths else self.config.invocation_params.dir
        paths = [(base / arg).resolve() for arg in self.config.args if "::" not in arg]
        seen = {nodeid.split("::")[0] for nodeid in self.collected}
        for name in files & seen:
            path = (root / name).resolve()
            if any(path == top or top in path.parents for top in paths):
                whole.add(name)
        return whole

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        recorded = _recorded()
        kept = updated_record(
            recorded, self.durations, self.skipped, self.collected, self._whole_files(recorded)
        )
        text = json.dumps(kept, indent=0, ensure_ascii=False)
        DURATIONS.write_text(text + "\n", "utf-8")


def pytest_configure(config: pytest.Config) -> None:
    # Only the process that sees every report records: xdist's controller, or a lone pytest.
    if config.getoption("--record-durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(config), "slow-first-recorder")
