"""Keeping both xdist workers busy to the end.

The suite runs with `--dist loadfile`: a file's tests stay on one worker. xdist hands out the files with the most
tests first, but the number of tests says little about a file's time (a few tests can need many whole-program
runs), and a long file handed out last leaves the other worker idle until it ends. The controller records each
test's seconds in pytest's cache at the end of a session, and the next session hands out the files that took
longest first (longest processing time first: what is left at the end are short files). A test without a record
(new, renamed) counts as the median test.

At the end the controller reports each worker's busy seconds and when it finished, so an idle tail shows."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Mapping
from typing import Any

import pytest

RECORD = "adplatform/test-seconds"


def file_seconds(tests: Iterable[str], recorded: Mapping[str, float]) -> float:
    """The expected seconds of a file's tests (node ids) from the last sessions' record."""
    typical = statistics.median(recorded.values()) if recorded else 0.0
    return sum(recorded.get(test, typical) for test in tests)


def longest_first(workqueue: dict[str, Any], recorded: Mapping[str, float]) -> list[str]:
    """The files (xdist's work units: file -> its tests) in the order to hand them out; xdist's order where the
    record does not tell them apart (sorted() is stable)."""
    return sorted(workqueue, key=lambda file: -file_seconds(workqueue[file], recorded))


def make_scheduler(config: pytest.Config, log: Any, recorded: Mapping[str, float]) -> Any:
    """xdist's loadfile scheduler, handing out the files in longest_first() order."""
    from xdist.scheduler import LoadFileScheduling

    class LongestFirst(LoadFileScheduling):
        ordered = False

        def _assign_work_unit(self, node: Any) -> None:
            if not self.ordered:  # the first assignment: the work queue is complete
                self.ordered = True
                units = dict(self.workqueue)
                self.workqueue.clear()
                self.workqueue.update((file, units[file]) for file in longest_first(units, recorded))
            super()._assign_work_unit(node)

    return LongestFirst(config, log)


class Timings:
    """Collects the reports the workers send the controller: seconds per test, busy seconds per worker and when
    each worker finished its last test."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}
        self.busy: dict[str, float] = {}
        self.finished: dict[str, float] = {}

    def add(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration
        worker = getattr(getattr(report, "node", None), "gateway", None)
        if worker is not None:
            self.busy[worker.id] = self.busy.get(worker.id, 0.0) + report.duration
            self.finished[worker.id] = time.monotonic() - self.started

    def merged(self, recorded: Mapping[str, float]) -> dict[str, float]:
        """The record with this session's tests replaced (a session that ran some tests keeps the others')."""
        return {**recorded, **{test: round(seconds, 3) for test, seconds in self.seconds.items()}}

    def summary(self) -> list[str]:
        return [f"{worker}: busy {self.busy[worker]:.0f} s, last test done at {self.finished[worker]:.0f} s"
                for worker in sorted(self.busy)]
