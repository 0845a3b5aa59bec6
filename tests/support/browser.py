"""A page opened in headless Chromium, driven through the DevTools protocol (``websocket-client``).

Debian's ``chromium`` is installed with apt when missing and the tests run as root (as .ci/run does);
otherwise the caller skips. The flags keep Chromium off the network (it has nothing to fetch).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0", "--window-size=1280,2000"]


def ensure_chromium() -> str | None:
    """The Chromium binary, installing Debian's package when possible; None when it cannot be had."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return CHROMIUM if Path(CHROMIUM).exists() else None


@dataclass
class PageResult:
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, failed loads
    images: list[dict] = field(default_factory=list)  # alt, decoded, width, height
    screenshot: bytes = b""
    values: list = field(default_factory=list)  # what each of ``scripts`` evaluated to, in order


class _DevTools:
    def __init__(self, url: str):
        import websocket

        # No Origin header: Chromium refuses DevTools connections from an origin it was not told to
        # allow (--remote-allow-origins), and websocket-client sends one by default.
        self.socket = websocket.create_connection(url, timeout=60, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        number = next(self.ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, method: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(event.get("method") == method for event in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(method)
            self.events.append(json.loads(self.socket.recv()))


def _errors(events: list[dict]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            errors.append(" ".join(str(arg.get("value", arg.get("description"))) for arg in params["args"]))
        elif method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"]["text"])
    return errors


_IMAGES = """Promise.all([...document.images].map(image => image.decode().then(
    () => ({alt: image.alt, decoded: true, width: image.naturalWidth, height: image.naturalHeight}),
    () => ({alt: image.alt, decoded: false, width: 0, height: 0}))))"""


def open_page(chromium: str, page: Path, user_data_dir: Path, scripts: Sequence[str] = ()) -> PageResult:
    """Loads ``page``, collects errors, decodes every image, evaluates each of ``scripts`` in the
    page (in order; a promise is awaited) and takes a full-page screenshot."""
    process = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = user_data_dir / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("Chromium did not start its DevTools endpoint")
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30).read())
        tools = _DevTools(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log"):
            tools.call(f"{domain}.enable")
        navigation = tools.call("Page.navigate", url=page.resolve().as_uri())
        if navigation.get("errorText"):
            raise RuntimeError(f"{page}: {navigation['errorText']}")
        tools.wait_for("Page.loadEventFired")
        images = tools.call("Runtime.evaluate", expression=_IMAGES, awaitPromise=True, returnByValue=True)
        values = [tools.call("Runtime.evaluate", expression=script, awaitPromise=True, returnByValue=True)
                  ["result"].get("value") for script in scripts]
        size = tools.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        return PageResult(errors=_errors(tools.events), images=images["result"]["value"],
                          screenshot=base64.b64decode(shot["data"]), values=values)
    finally:
        process.terminate()
        process.wait(timeout=30)
