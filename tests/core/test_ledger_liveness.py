"""A claim's owner counts as gone once it is dead, zombie or not (containers without an
init never reap orphans, and kill -9 of a pipeline orphans its stage process)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from hegelion_core.data.jsonl import pid_alive


def test_a_running_process_is_alive_and_a_zombie_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # not reaped: it is a zombie now
            with open(f"/proc/{child.pid}/stat") as fp:
                if fp.read().rpartition(")")[2].split()[0] == "Z":
                    break
            time.sleep(0.05)
        os.kill(child.pid, 0)  # a zombie still answers signal 0 ...
        assert not pid_alive(child.pid)  # ... but holds no claim
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid)
