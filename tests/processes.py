"""Service processes the tests start: wait until one answers over HTTP, stop one politely."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Callable


class ProcessFailed(AssertionError):
    """A process the test started exited, or never answered; the message carries its log."""


def wait_until_answering(
    process: subprocess.Popen[bytes],
    url: str,
    timeout_s: float,
    log: Callable[[], str],
    name: str,
) -> None:
    """Poll ``url`` until it answers 200; fail with the process's log if it exits or times out.
    Uses time.sleep: call it outside any Playwright flow."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise ProcessFailed(f"{name} exited at start-up:\n{log()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ProcessFailed(f"{name} did not answer {url} within {timeout_s} s:\n{log()}")
        time.sleep(0.05)


def terminate(process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
