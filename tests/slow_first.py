"""The suite's slow tests start first, one share of them on each xdist worker (decision 0081).

A 60 s test that a worker reaches last makes the whole run 60 s longer. xdist's worksteal
hands each worker one contiguous share of the collection, runs it in order and steals from
the END of a busy worker's share, so a test at the head of a share starts at once and is
never stolen. Here the tests that took `SLOW` seconds or more in a recorded run (their
setup, call and teardown, in tests/durations.json) are dealt out, longest first, to the
worker whose slow tests add up to least, and put at the head of that worker's share; every
other test keeps its place in collection order.

Refresh the record with `scripts/test --record-durations`: the tests that ran get their new
figure in tests/durations.json (kept when `RECORDED` seconds or more), the others keep
theirs. A test missing from it (new, renamed) simply counts as fast.
"""

from __future__ import annotations

import json
import os
from itertools import islice
from pathlib import Path

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
    heads: list[list[str]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for nodeid in slow:
        share = loads.index(min(loads))
        heads[share].append(nodeid)
        loads[share] += durations[nodeid]
    chosen = set(slow)
    rest = iter([nodeid for nodeid in nodeids if nodeid not in chosen])
    ordered: list[str] = []
    for head, size in zip(heads, _shares(len(nodeids), workers), strict=True):
        ordered.extend(head)
        ordered.extend(islice(rest, max(0, size - len(head))))
    ordered.extend(rest)
    return ordered


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    by_id = {item.nodeid: item for item in items}
    if len(by_id) != len(items):
        return  # two items with one id (never seen): leave the order alone
    items[:] = [by_id[nodeid] for nodeid in slow_first(list(by_id), _recorded(), workers)]


class _Recorder:
    def __init__(self) -> None:
        self.durations: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.durations[report.nodeid] = self.durations.get(report.nodeid, 0.0) + report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        # The tests that ran replace their old figures; the others keep theirs.
        kept = _recorded()
        for nodeid, seconds in self.durations.items():
            if seconds >= RECORDED:
                kept[nodeid] = round(seconds, 1)
            else:
                kept.pop(nodeid, None)
        text = json.dumps(dict(sorted(kept.items())), indent=0, ensure_ascii=False)
        DURATIONS.write_text(text + "\n", "utf-8")


def pytest_configure(config: pytest.Config) -> None:
    # Only the process that sees every report records: xdist's controller, or a lone pytest.
    if config.getoption("--record-durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Recorder(), "slow-first-recorder")
