"""A minimal W3C WebDriver client (urllib only) for headless Chromium driven by chromedriver."""
from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The flags, plus: no DNS at all (a page that reached for the network would fail loudly),
# and /tmp instead of a small /dev/shm in containers.
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
        "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1400,3000"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One chromedriver process and one Chromium session; quit() ends both."""

    def __init__(self, workdir: Path):
        self.port = _free_port()
        self.log = open(workdir / "chromedriver.log", "wb")
        # Its own process group: quit() can end chromedriver and any Chromium it left, by group id.
        self.proc = subprocess.Popen([str(CHROMEDRIVER), f"--port={self.port}"], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.session: str | None = None
        deadline = time.monotonic() + 30
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.quit()
                raise RuntimeError(f"chromedriver did not start (see {workdir / 'chromedriver.log'})")
            time.sleep(0.1)
        caps = {"browserName": "chrome", "goog:loggingPrefs": {"browser": "ALL"},
                "goog:chromeOptions": {"binary": str(CHROMIUM),
                                       "args": [*ARGS, f"--user-data-dir={workdir / 'profile'}"]}}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read())["value"]
        except urllib.error.HTTPError as exc:  # WebDriver errors come as JSON bodies: show their message
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read().decode()[:500]}") from None

    def cmd(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self.cmd("POST", "/url", {"url": url})

    def run(self, script: str, *args: Any) -> Any:
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def resize(self, width: int, height: int) -> None:
        self.cmd("POST", "/window/rect", {"width": width, "height": height})

    def screenshot(self) -> bytes:
        return base64.b64decode(self.cmd("GET", "/screenshot"))

    def console(self) -> list[dict[str, Any]]:
        """The browser console log (chromedriver's `se/log` endpoint): level, message per entry."""
        return self.cmd("POST", "/se/log", {"type": "browser"})

    def quit(self) -> None:
        try:
            if self.session is not None:
                self.cmd("DELETE", "")
        except (RuntimeError, urllib.error.URLError, ConnectionError):
            pass
        finally:
            self.session = None
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGTERM)  # the group started above, not any other Chromium
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
            self.log.close()
