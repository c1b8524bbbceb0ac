"""The suite's slow-first order (tests/slow_first.py, decision 0081) runs every test once."""

from __future__ import annotations

from tests.slow_first import _shares, slow_first


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
