"""Guard a file-deleting function with Airlock: it runs only once a person says yes.

Against the quick start's server (``make serve``, i.e. ``airlock serve --demo``), from the repository, with
``TOKEN`` (approver and admin) and ``AGENT`` (role agent) as in the README's step 1:

1. A policy that holds any call deleting more than 3 files, and lets the approver trim the list::

       curl -s -X POST localhost:8081/internal/policies/new -H "Authorization: Bearer $TOKEN" \\
         -H "Content-Type: application/json" \\
         -d '{"name": "file_deletes", "scope_type": "tool", "enforcement": "require_approval",
              "allow_edits": true, "description": "A person approves deleting more than 3 files",
              "evaluator": {"plugin": "bulk_operation", "config": {"threshold": 3, "items_keys": ["files"]}}}'

2. Run this example; it makes 5 scratch files and asks to delete them, then waits::

       AGENT=$AGENT .venv/bin/python examples/guarded_delete.py

3. In another shell, find the hold and decide it (or use the dashboard)::

       AIRLOCK_TOKEN=$TOKEN .venv/bin/airlock approvals list
       AIRLOCK_TOKEN=$TOKEN .venv/bin/airlock approvals approve APPROVAL_ID
       # or keep two of them: --arguments '{"files": ["<first path>", "<second path>"]}'
       # or say no:          AIRLOCK_TOKEN=$TOKEN .venv/bin/airlock approvals deny APPROVAL_ID --reason "not today"

The example prints what was deleted, or why nothing was: ``ApprovalDenied`` (with who and why),
``ApprovalExpired``, ``ActionBlocked`` (naming the policy) are all ``ActionRefused``. ``AIRLOCK_MESH_URL``
points it at another mesh (default ``http://127.0.0.1:8080``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from airlock.client import ActionRefused, AirlockError, Guard

guard = Guard(
    os.environ.get("AIRLOCK_MESH_URL", "http://127.0.0.1:8080"),
    os.environ.get("AGENT", ""),
    agent="file-cleaner",
    timeout="15m",
)


@guard.require_approval()
def delete_files(files: list[str]) -> int:
    """Delete ``files``; Airlock sees the call as the tool ``delete_files`` with ``{"files": [...]}``."""
    for name in files:
        Path(name).unlink()
    return len(files)


def main() -> int:
    if not os.environ.get("AGENT"):
        print("set AGENT to an agent's token: AGENT=$(.venv/bin/airlock token --sub bot --role agent)")
        return 2
    with tempfile.TemporaryDirectory(prefix="airlock-example-") as scratch:
        files = []
        for i in range(5):
            path = Path(scratch, f"report-{i}.csv")
            path.write_text("id,value\n")
            files.append(str(path))
        print(f"asking to delete {len(files)} files in {scratch}; waiting for a decision (up to 15 minutes)…")
        try:
            deleted = delete_files(files)
        except ActionRefused as refused:
            print(f"nothing deleted: {refused}")
            return 1
        except AirlockError as error:  # a wrong token, no server, no decision in time
            print(f"could not ask Airlock: {error}")
            return 1
        left = sorted(p.name for p in Path(scratch).iterdir())
        print(f"deleted {deleted} files; left: {left or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
