#!/usr/bin/env python3
"""Runs a command as a child and ends it (SIGTERM, then SIGKILL after 5 s) when the process
--parent-pid is gone, after --max-lifetime seconds, or when this supervisor gets SIGTERM/SIGINT.
Exits with the child's exit code (or 128+signal). Python 3 standard library only.

    supervise.py --parent-pid <pid> [--max-lifetime <s>] -- <command> [args...]

The InitramfsPS tests run docker-registry under it, so that a test run that dies (and so never
reaches its AfterAll) leaves no registry behind.
"""

import lifetime
import argparse
import os
import signal
import subprocess
import sys
import time

stop_signal = None


def on_signal(signum, frame):
    global stop_signal
    stop_signal = signum


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--parent-pid', type=int, required=True)
    p.add_argument('--max-lifetime', type=float, default=1800)
    p.add_argument('command', nargs=argparse.REMAINDER)
    a = p.parse_args()
    cmd = a.command[1:] if a.command and a.command[0] == '--' else a.command
    if not cmd:
        p.error('no command')
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    child = subprocess.Popen(cmd)
    deadline = time.monotonic() + a.max_lifetime
    while True:
        rc = child.poll()
        if rc is not None:
            return rc if rc >= 0 else 128 - rc
        if stop_signal is not None or not lifetime.parent_alive(a.parent_pid) or time.monotonic() > deadline:
            child.terminate()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            return 128 + (stop_signal or signal.SIGTERM)
        time.sleep(0.25)


if __name__ == '__main__':
    sys.exit(main())
