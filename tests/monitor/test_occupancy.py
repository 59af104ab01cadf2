"""Requests in flight (finephrase/monitor/occupancy.py): means over time, and stragglers named by document id."""

from finephrase.monitor.occupancy import InFlight, in_flight_line


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_means_and_stragglers():
    clock = Clock()
    f = InFlight(target=8, clock=clock)
    keys = [f.begin(f"d{i}", "faq", i // 4) for i in range(8)]
    f.sample()  # 8 in flight
    assert f.recent_mean() == 8 and f.take_since_commit() == 8
    assert f.stragglers() == []  # no median yet: nobody is called a straggler
    for k in keys[1:]:  # 7 answers after 1 s each; d0 stays out
        clock.t = 1.0
        f.end(k)
    for i in range(20):  # 20 more quick ones (0.5 s): the median is known now
        k = f.begin(f"e{i}", "faq", 9)
        clock.t += 0.5
        f.end(k)
        f.sample()
    assert f.median_latency() == 0.5 and f.threshold() == 2.5
    late = f.stragglers()
    assert [(s["id"], s["chunk"]) for s in late] == [("d0", 0)] and late[0]["seconds"] == clock.t
    assert 0 < f.session_mean() < 8 and f.take_since_commit() == 1.0  # only d0 was out at the last 20 samples
    clock.t += 5
    f.end(keys[0])
    assert f.slowest[0]["id"] == "d0" and len(f) == 0
    snap = f.snapshot()
    assert snap["target"] == 8 and snap["now"] == 0 and snap["stragglers"] == [] and snap["slowest"][0]["id"] == "d0"


def test_in_flight_line():
    assert in_flight_line(1987.4, 2048) == "in flight 1,987/2,048 (97%)"
    assert in_flight_line(None, 4) == "in flight ?/4"
