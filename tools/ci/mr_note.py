"""`python -m tools.ci.mr_note KEY TITLE FILE [ARTIFACT ...]`: put FILE on the GitLab merge request as one
note per KEY, edited in place on every new push instead of piling up; each ARTIFACT (a path the job keeps
as an artifact, such as build/plan/production.html) is linked above the text.

Runs in a merge-request pipeline; needs `ADPLATFORM_GITLAB_TOKEN` (a project access token with the
`api` scope, stored as a masked CI/CD variable: the job token cannot write notes). Without it (forks,
local runs) it says so and succeeds: the job log and artifacts still carry the text. The token is
sent in a header and never printed.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

LIMIT = 60_000  # characters of output kept in a note (GitLab allows 1,000,000; reviewers read less)
Request = Callable[[str, str, dict[str, Any] | None], Any]


def marker(key: str) -> str:
    return f"<!-- adplatform:{key} -->"


def links(paths: list[str], job_url: str | None) -> str:
    """Markdown links to the job's artifacts (GitLab serves them under <job>/artifacts/file/<path>)."""
    if not job_url:
        return ""
    return "".join(f"- [{Path(p).name}]({job_url}/artifacts/file/{urllib.parse.quote(p)})\n" for p in paths) + "\n"


def body(key: str, title: str, text: str, artifacts: str = "") -> str:
    if len(text) > LIMIT:
        half = LIMIT // 2
        text = f"{text[:half]}\n\n... {len(text) - LIMIT} characters cut: see the job log ...\n\n{text[-half:]}"
    fence = "````"
    return f"{marker(key)}\n#### {title}\n\n{artifacts}{fence}text\n{text.rstrip()}\n{fence}\n"


def upsert(request: Request, notes_path: str, key: str, content: str) -> str:
    """Edit the note carrying KEY's marker, or create it; returns 'updated' or 'created'."""
    page = 1
    while True:
        notes = request("GET", f"{notes_path}?per_page=100&page={page}", None)
        for note in notes:
            if marker(key) in note.get("body", ""):
                request("PUT", f"{notes_path}/{note['id']}", {"body": content})
                return "updated"
        if len(notes) < 100:
            break
        page += 1
    request("POST", notes_path, {"body": content})
    return "created"


def gitlab(api: str, token: str) -> Request:
    def request(method: str, path: str, payload: dict[str, Any] | None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        req = urllib.request.Request(f"{api}{path}", data=data, method=method,
                                     headers={"PRIVATE-TOKEN": token, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as response:  # noqa: S310 (the GitLab API URL)
            return json.loads(response.read() or b"null")
    return request


def main(argv: list[str], env: dict[str, str] | None = None, request: Request | None = None) -> int:
    env = dict(os.environ if env is None else env)
    if len(argv) < 3:
        print("usage: python -m tools.ci.mr_note KEY TITLE FILE [ARTIFACT ...]", file=sys.stderr)
        return 2
    key, title, path = argv[:3]
    text = Path(path).read_text() if Path(path).exists() else f"({path} was not produced: see the job log)"
    token, iid = env.get("ADPLATFORM_GITLAB_TOKEN"), env.get("CI_MERGE_REQUEST_IID")
    if not iid or not (token or request):
        print(f"mr_note: not posting {key} (no merge request or no ADPLATFORM_GITLAB_TOKEN); the text is in {path}")
        return 0
    project = urllib.parse.quote(env["CI_PROJECT_ID"], safe="")
    notes_path = f"/projects/{project}/merge_requests/{iid}/notes"
    done = upsert(request or gitlab(env["CI_API_V4_URL"], token or ""), notes_path, key, body(key, title, text, links(argv[3:], env.get("CI_JOB_URL"))))
    print(f"mr_note: {done} the {key} note on merge request !{iid}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
