"""The suite's slow-first order (tests/slow_first.py, decision 0081) runs every test once."""

from __future__ import annotations

from tests.slow_first import _shares, planned_order, slow_first, updated_record


def test_every_test_runs_once_and_the_slow_ones_head_the_workers_shares() -> None:
    nodeids = [f"t{n}" for n in range(30)]
    durations = {"t3": 60.0, "t29": 20.0, "t11": 19.0, "t12": 2.5, "t20": 1.9}
    ordered = slow_first(nodeids, durations, workers=3)

    assert sorted(ordered) == sorted(nodeids)  # nothing lost, nothing twice
    assert _shares(30, 3) == [10, 10, 10]
    shares = [ordered[0:10], ordered[10:20], ordered[20:30]]
    # Longest first, each to the share with the least so far: 60 | 20 | 19 + 2.5.
    assert [share[0] for share in shares] == ["t3", "t29", "t11"]
    assert shares[2][1] == "t12"
    # Under 2 s is fast: the fast tests keep their order.
    fast = [nodeid for nodeid in ordered if nodeid not in {"t3", "t29", "t11", "t12"}]
    assert fast == [nodeid for nodeid in nodeids if nodeid in fast]


def test_one_process_or_no_record_keeps_the_collection_order() -> None:
    nodeids = [f"t{n}" for n in range(7)]
    assert slow_first(nodeids, {"t5": 30.0}, workers=1) == nodeids
    assert slow_first(nodeids, {}, workers=3) == nodeids


# The review's case: tests/test_sending_faults.py and tests/test_worker_resilience.py alone
# on 3 workers, every one of the 9 tests slow (seconds as recorded).
REVIEW = {f"f{n}": s for n, s in enumerate([60.6, 18.4, 14.8, 13.6, 7.9, 7.6, 6.4, 5.3, 2.6])}


def test_a_share_never_starts_with_more_slow_tests_than_it_holds() -> None:
    nodeids = list(REVIEW)
    ordered = slow_first(nodeids, REVIEW, workers=3)

    assert sorted(ordered) == sorted(nodeids)
    shares = [ordered[0:3], ordered[3:6], ordered[6:9]]  # as xdist cuts them: 3, 3, 3
    # The three longest open the three shares (before: 60.6, 18.4 and 7.9 s on one worker).
    assert [REVIEW[share[0]] for share in shares] == [60.6, 18.4, 14.8]
    # Longest first to the least loaded share with room: the 60.6 s test gets the two
    # shortest after it (68.5 s), the others 18.4 + 7.9 + 7.6 and 14.8 + 13.6 + 6.4.
    assert shares == [["f0", "f7", "f8"], ["f1", "f4", "f5"], ["f2", "f3", "f6"]]


def test_more_slow_tests_than_fit_still_run_once_each_and_open_every_share() -> None:
    nodeids = [f"t{n}" for n in range(11)]
    durations = {nodeid: 100.0 - n for n, nodeid in enumerate(nodeids) if n != 4}  # t4 fast
    for workers in (2, 3, 4, 10):
        ordered = slow_first(nodeids, durations, workers)
        assert sorted(ordered) == sorted(nodeids)
        starts = [sum(_shares(11, workers)[:n]) for n in range(workers)]
        # The `workers` longest tests, one at the head of each share.
        longest = sorted(durations, key=lambda nodeid: -durations[nodeid])[:workers]
        assert sorted(ordered[start] for start in starts) == sorted(longest)


def test_only_worksteal_without_failures_first_reorders() -> None:
    nodeids = list(REVIEW)
    reordered = planned_order(nodeids, REVIEW, 3, dist="worksteal", failures_first=False)
    assert reordered != nodeids
    for dist in ("load", "loadscope", "loadfile", "no"):  # `load` hands out later shares late
        assert planned_order(nodeids, REVIEW, 3, dist=dist, failures_first=False) == nodeids
    # --ff / --nf: pytest's cache plugin put the last failures (new files) first; they stay.
    assert planned_order(nodeids, REVIEW, 3, dist="worksteal", failures_first=True) == nodeids


def test_the_record_drops_what_is_gone_and_keeps_a_skipped_tests_figure() -> None:
    recorded = {"a.py::slow": 60.0, "a.py::renamed": 9.0, "a.py::skipped": 30.0, "b.py::x": 5.0}
    ran = {"a.py::slow": 58.04, "a.py::skipped": 0.01, "a.py::faster": 0.1, "a.py::new": 3.0}
    collected = {"a.py::slow", "a.py::skipped", "a.py::faster", "a.py::new"}
    kept = updated_record(recorded, ran, {"a.py::skipped"}, collected, whole_files={"a.py"})
    # b.py was not part of the run: its figure stays.
    assert kept == {"a.py::new": 3.0, "a.py::skipped": 30.0, "a.py::slow": 58.0, "b.py::x": 5.0}
