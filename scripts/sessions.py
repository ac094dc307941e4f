"""Child processes started in their own session: stopped like Ctrl-C, killed if they linger."""

from __future__ import annotations

import os
import signal
import subprocess


def stop(process: subprocess.Popen[bytes], within: float) -> None:
    """SIGINT, then SIGKILL to the whole session after `within` seconds; reaped either way."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=within)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
