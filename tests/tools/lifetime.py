"""Keeps a test server from outliving the test that started it (stdlib only)."""

import os
import threading
import time


def parent_alive(pid):
    """True while process `pid` exists (or when no pid is given)."""
    if not pid or pid <= 0:
        # os.kill(-1, 0) would probe every process: no parent given means no parent to watch.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def exit_with_parent(parent_pid, max_lifetime):
    """Ends this process when `parent_pid` is gone or `max_lifetime` seconds have passed."""
    deadline = time.monotonic() + max_lifetime

    def watch():
        while parent_alive(parent_pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
