"""tests/balance.py: the files that took longest last time are handed out first, and the record is kept."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests import balance


def test_the_files_that_took_longest_go_first():
    queue = {"a.py": ["a.py::1", "a.py::2", "a.py::3"], "b.py": ["b.py::1"], "c.py": ["c.py::1", "c.py::2"]}
    recorded = {"a.py::1": 0.1, "a.py::2": 0.1, "a.py::3": 0.1, "b.py::1": 30.0, "c.py::1": 2.0}
    assert balance.longest_first(queue, recorded) == ["b.py", "c.py", "a.py"], "c.py::2 counts as the median test"
    assert balance.longest_first(queue, {}) == ["a.py", "b.py", "c.py"], "without a record: xdist's order"


class Worker:
    """Stands in for xdist's WorkerController: what the scheduler sends it."""

    def __init__(self, name: str):
        self.gateway = SimpleNamespace(id=name)
        self.sent: list[list[int]] = []
        self.shutting_down = False

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent.append(indices)

    def shutdown(self) -> None:
        self.shutting_down = True


def test_xdist_hands_out_the_longest_file_first(request, monkeypatch):
    collection = ["a.py::1", "a.py::2", "a.py::3", "b.py::1", "c.py::1", "c.py::2", "d.py::1", "e.py::1"]
    recorded = {**dict.fromkeys(collection, 0.5), "e.py::1": 60.0, "b.py::1": 30.0}
    monkeypatch.setattr(request.config.option, "tx", ["2*popen"])  # two workers, whatever this session runs with
    scheduler = balance.make_scheduler(request.config, None, recorded)
    workers = [Worker("gw0"), Worker("gw1")]
    for worker in workers:
        scheduler.add_node(worker)
        scheduler.add_node_collection(worker, collection)
    scheduler.schedule()
    assert workers[0].sent[0] == [7] and workers[1].sent[0] == [3], "e.py, then b.py; the rest after them"


def test_the_record_keeps_other_tests_and_counts_every_phase():
    timings = balance.Timings()
    for phase, seconds, worker in (("setup", 2.0, "gw0"), ("call", 1.0, "gw0"), ("teardown", 0.5, "gw0"),
                                   ("call", 4.0, "gw1")):
        timings.add(SimpleNamespace(nodeid="x.py::t" if worker == "gw0" else "y.py::t", when=phase,
                                    duration=seconds, node=SimpleNamespace(gateway=SimpleNamespace(id=worker))))
    assert timings.merged({"x.py::t": 9.0, "z.py::t": 1.0}) == {"x.py::t": 3.5, "y.py::t": 4.0, "z.py::t": 1.0}
    assert timings.busy == {"gw0": 3.5, "gw1": 4.0}
    assert [line.split(",")[0] for line in timings.summary()] == ["gw0: busy 4 s", "gw1: busy 4 s"]
