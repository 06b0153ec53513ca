"""The one shape of the platform's scheduled Jobs (backups, snapshots, restore drills)."""

from __future__ import annotations

from typing import Any, Mapping


def cronjob_spec(schedule: str, pod: Mapping[str, Any], *, labels: Mapping[str, str], deadline: int,
                 backoff_limit: int = 1, history: int = 1) -> dict[str, Any]:
    """A CronJob spec running `pod` on `schedule` (UTC). Never two runs at once (a backup still uploading, or a drill
    still using its scratch names, is never raced by the next); a run missed by more than an hour is skipped rather
    than started late; `history` finished Jobs of each outcome kept (a finished pod keeps its scratch volume until
    it goes); each run stops after `deadline` seconds and is retried `backoff_limit` times."""
    return {
        "schedule": schedule,
        "timeZone": "Etc/UTC",
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 3600,
        "successfulJobsHistoryLimit": history,
        "failedJobsHistoryLimit": history,
        "jobTemplate": {"spec": {
            "backoffLimit": backoff_limit,
            "activeDeadlineSeconds": deadline,
            "template": {"metadata": {"labels": dict(labels)}, "spec": dict(pod)},
        }},
    }
