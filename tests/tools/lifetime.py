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


def announce_and_serve(server, directory, parent_pid, max_lifetime, **extra):
    """Watches the parent, writes <directory>/ready.json ({"port", "pid"} and `extra`) atomically,
    then serves until the process ends."""
    import json
    exit_with_parent(parent_pid, max_lifetime)
    ready = {'port': server.server_address[1], 'pid': os.getpid()}
    ready.update(extra)
    tmp = os.path.join(directory, 'ready.json.tmp')
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(ready, f)
    os.replace(tmp, os.path.join(directory, 'ready.json'))
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
