"""The detached snapshot holder: ``python -m pgarrow._hold`` (started by
``pgarrow.plan(..., detached=True)``).

Reads the request (JSON: url, source, is_table, options, hold_timeout, linger) from stdin,
plans, and writes one line of JSON to stdout: ``{"plan": ...}`` or ``{"error": ..., "class":
...}``. It then holds the snapshot while parts are read (see ``pgarrow.plan``), and exits.
SIGTERM (``plan.close()``) ends it, and the snapshot with it.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def main() -> int:
    request = json.loads(sys.stdin.read())
    from . import UsageError, _pgarrow

    try:
        holder = _pgarrow.Holder(
            request["url"], request["source"], request["is_table"], request["options"]
        )
    except Exception as e:  # handed to the caller, which raises it
        classes = (UsageError, _pgarrow.ConnectError, _pgarrow.QueryError, _pgarrow.DecodeError)
        name = next((c.__name__ for c in classes if isinstance(e, c)), "Error")
        if isinstance(e, ValueError) and name == "Error":
            name = "UsageError"
        answer: dict[str, Any] = {"error": str(e), "class": name}
        for attr in ("sqlstate", "server_message", "detail", "hint"):
            answer[attr] = getattr(e, attr, None)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        return 1
    sys.stdout.write(json.dumps({"plan": holder.plan_json()}) + "\n")
    sys.stdout.flush()
    sys.stdout.close()
    try:
        holder.wait(float(request["hold_timeout"]), float(request["linger"]))
    except Exception:
        # The transaction ended under it: nothing left to hold; the parts that still need
        # the snapshot fail with a message that says so.
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
