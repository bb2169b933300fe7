"""Open a page in a real headless Chromium (Debian's ``chromium``) and report what it saw.

A minimal DevTools protocol client over ``--remote-debugging-pipe`` (NUL-terminated JSON
on the browser's fds 3 and 4; no websocket library needed): it navigates to the page,
collects every console error, uncaught exception and error log entry (a resource that
failed to load), asks the rendered DOM for its tables and images (loaded or not, and
their natural sizes) and takes a full-page screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "chromium"
PAGE_FACTS = """JSON.stringify({
  title: document.title,
  tables: [...document.querySelectorAll('table')].map(t => t.rows.length),
  images: [...document.images].map(i => ({alt: i.alt, complete: i.complete, width: i.naturalWidth,
                                          data: i.src.startsWith('data:image/png;base64,')})),
  headings: [...document.querySelectorAll('h1, h2')].map(h => h.textContent),
  text: document.body.innerText,
  order: [...document.body.children].map(e => e.tagName.toLowerCase()),
  details: [...document.querySelectorAll('details')].map(d => {
    // Collapsible as the browser lays it out: the block's height and whether its table shows,
    // open and then closed (then back as it was).
    const table = d.querySelector('table');
    const open = d.open, heights = [], visible = [];
    for (const state of [true, false]) {
      d.open = state;
      heights.push(d.getBoundingClientRect().height);
      visible.push(table.checkVisibility());
    }
    d.open = open;
    return {open, heights, visible, summary_height: d.querySelector('summary').getBoundingClientRect().height,
            summary: d.querySelector('summary').textContent,
            verdicts: [...table.tBodies[0].rows].map(r => r.cells[2].textContent)};
  }),
})"""


@dataclass
class PageVisit:
    errors: list[str] = field(default_factory=list)  # console errors, exceptions, error log entries
    facts: dict[str, Any] = field(default_factory=dict)  # PAGE_FACTS, evaluated in the page
    screenshot: bytes = b""


class _Pipe:
    def __init__(self, proc: subprocess.Popen[bytes], to_browser: int, from_browser: int) -> None:
        self.proc, self.out, self.inp = proc, to_browser, from_browser
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.out, json.dumps(message).encode() + b"\0")
        while True:
            reply = self.read(timeout)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result") or {})
            self.events.append(reply)

    def read(self, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.inp], [], [], left)[0]:
                raise TimeoutError(f"chromium said nothing for {timeout:g} s")
            chunk = os.read(self.inp, 1 << 20)
            if not chunk:
                raise RuntimeError(f"chromium closed its pipe (exit {self.proc.poll()})")
            self.buffer += chunk
        message, _, self.buffer = self.buffer.partition(b"\0")
        return dict(json.loads(message))

    def wait_event(self, method: str, session: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
            self.events.append(self.read(max(0.1, deadline - time.monotonic())))

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.events.append(self.read(max(0.01, deadline - time.monotonic())))
            except TimeoutError:
                return


def chromium_path() -> str | None:
    return shutil.which(CHROMIUM)


def visit(page: Path, profile_dir: Path, settle_s: float = 1.0) -> PageVisit:
    """Load ``page`` (a file) in headless Chromium; see the module docstring."""
    binary = chromium_path()
    if binary is None:
        raise FileNotFoundError("chromium is not on PATH (fix: scripts/setup.sh installs Debian's chromium)")
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()

    def fds() -> None:  # in the child: its fd 3 reads our commands, fd 4 writes its replies
        a, b = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10), fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
        os.dup2(a, 3)
        os.dup2(b, 4)

    args = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
            "--remote-debugging-pipe", f"--user-data-dir={profile_dir}", "--window-size=1280,900", "about:blank"]
    profile_dir.mkdir(parents=True, exist_ok=True)
    with open(profile_dir / "chromium-stderr.log", "wb") as log:  # read it when a visit fails
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                pass_fds=(3, 4), preexec_fn=fds)
    os.close(to_r)
    os.close(from_w)
    pipe = _Pipe(proc, to_w, from_r)
    seen = PageVisit()
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        pipe.wait_event("Page.loadEventFired", session, 60.0)
        pipe.drain(settle_s)  # late errors: a script run after load, a slow resource
        facts = pipe.send("Runtime.evaluate", {"expression": PAGE_FACTS, "returnByValue": True}, session=session)
        seen.facts = json.loads(facts["result"]["value"])
        size = pipe.send("Page.getLayoutMetrics", session=session)["cssContentSize"]
        shot = pipe.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 12000), "scale": 1}},
            session=session)
        seen.screenshot = base64.b64decode(shot["data"])
        for event in pipe.events:
            if event.get("sessionId") != session:
                continue
            params = event.get("params") or {}
            if event.get("method") == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                seen.errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
            elif event.get("method") == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                seen.errors.append("exception: " + str((details.get("exception") or {}).get("description") or details["text"]))
            elif event.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
                seen.errors.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}".strip())
        try:
            pipe.send("Browser.close", timeout=10.0)
        except (RuntimeError, TimeoutError):
            pass
    finally:
        os.close(to_w)
        os.close(from_r)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return seen
