"""Drive Debian's headless `chromium` through the DevTools protocol over a pipe (no WebDriver, no extra package).

Used by the report tests to open a page (or `snakemake --report`'s report) in a real browser and ask it whether
every image loaded; runnable as a script to screenshot a report's pages for a person to look at:

    .venv/bin/python tests/headless_chromium.py report.html --screenshots /tmp/report-shots

Chromium reads commands on fd 3 and writes replies and events on fd 4, each a JSON text ended by a NUL byte
(`--remote-debugging-pipe`).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Every <img> of the document: whether it finished loading with a picture (naturalWidth > 0), once all settled.
IMAGES_JS = """(async () => {
  const images = [...document.images];
  await Promise.all(images.map(i => i.complete ? null : new Promise(r => { i.onload = r; i.onerror = r; })));
  return images.map(i => ({src: i.getAttribute("src").slice(0, 80), loaded: i.complete && i.naturalWidth > 0}));
})()"""


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One headless browser with one page (tab)."""

    def __init__(self, width: int = 1400, height: int = 1000, timeout: float = 60.0) -> None:
        binary = chromium_binary()
        if binary is None:
            raise BrowserError("no chromium on PATH (Debian: apt-get install -y chromium)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="mileage-chromium-")
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()

        def wire() -> None:  # in the child: the pipe ends where Chromium expects them (moved clear of 3 and 4 first)
            import fcntl

            high_in, high_out = fcntl.fcntl(to_browser, fcntl.F_DUPFD, 10), fcntl.fcntl(from_browser, fcntl.F_DUPFD, 10)
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)

        self.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--mute-audio", "--allow-file-access-from-files",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "--remote-debugging-pipe",
             "about:blank"],
            pass_fds=(3, 4, to_browser, from_browser), preexec_fn=wire, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime"):
            self.send(f"{domain}.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)

    # ---- the protocol ----------------------------------------------------------------------------------------------

    def _message(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise BrowserError("chromium did not answer in time")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            event = self._message(deadline)
            if event.get("method") == method:
                return event
            self.events.append(event)

    # ---- what a test asks ------------------------------------------------------------------------------------------

    def open(self, url: str) -> None:
        self.events.clear()
        self.send("Page.navigate", {"url": url}, session=True)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str, context: int | None = None) -> Any:
        params: dict[str, Any] = {"expression": expression, "awaitPromise": True, "returnByValue": True}
        if context is not None:
            params["contextId"] = context
        result = self.send("Runtime.evaluate", params, session=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:60]}...: {result['exceptionDetails'].get('text')} "
                               f"{result['exceptionDetails'].get('exception', {}).get('description', '')}")
        return result["result"].get("value")

    def frames(self) -> list[dict]:
        """The page's child frames (iframes), each {id, url}."""
        tree = self.send("Page.getFrameTree", session=True)["frameTree"]
        out, stack = [], list(tree.get("childFrames", []))
        while stack:
            node = stack.pop()
            out.append(node["frame"])
            stack += node.get("childFrames", [])
        return out

    def evaluate_in_frame(self, frame_id: str, expression: str) -> Any:
        """Run `expression` inside an iframe (whatever its origin: a data: URL page is cross-origin to its parent)."""
        world = self.send("Page.createIsolatedWorld", {"frameId": frame_id, "worldName": "mileage-check"},
                          session=True)["executionContextId"]
        return self.evaluate(expression, context=world)

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except BrowserError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._write)
        os.close(self._read)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def wait_for(check, timeout: float = 30.0, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def check_report(report: Path, screenshots: Path | None = None) -> dict[str, list[dict]]:
    """Open `snakemake --report`'s report.html (the HTML report, or the zip's unpacked report.html) and show every
    result as its own button would (`app.setView`, the report app's one way to show a result). Returns
    {page: images} for the landing page and for each HTML or image result, each image with `loaded`."""
    out: dict[str, list[dict]] = {}
    with Chromium() as browser:
        browser.open(report.resolve().as_uri())
        wait_for(lambda: browser.evaluate("typeof app !== 'undefined' && document.body.innerText.length > 0"))
        out["landing page"] = browser.evaluate(IMAGES_JS)
        out["landing page text"] = [{"text": browser.evaluate("document.body.innerText")}]
        if screenshots:
            screenshots.mkdir(parents=True, exist_ok=True)
            browser.screenshot(screenshots / "00-landing.png")
        entries = browser.evaluate("Object.entries(results).map(([path, r]) => [path, r.mime_type])")
        for i, (path, mime) in enumerate(sorted(entries)):
            if mime not in ("text/html", "image/png", "image/svg+xml", "image/jpeg"):
                continue
            kind = "html" if mime == "text/html" else "img"
            before = {frame["id"] for frame in browser.frames()}
            browser.evaluate(f"app.setView({{content: {json.dumps(kind)}, contentPath: results[{json.dumps(path)}]"
                             f".data_uri, resultPath: {json.dumps(path)}}}); true")
            if kind == "img":
                wait_for(lambda: browser.evaluate("document.querySelectorAll('img').length > 0"))
                out[path] = browser.evaluate(IMAGES_JS)
            else:
                def page_images():
                    """The images of the page the result's iframe (a new frame) shows, once it has loaded."""
                    for frame in browser.frames():
                        if frame["id"] in before:
                            continue
                        try:  # an iframe starts as a complete about:blank: wait for the result's own document
                            state = browser.evaluate_in_frame(frame["id"], "[location.href.slice(0, 11), "
                                                                           "document.readyState]")
                            if state[0] != "about:blank" and state[1] == "complete":
                                return browser.evaluate_in_frame(frame["id"], IMAGES_JS)
                        except BrowserError:  # the frame was replaced while we asked: ask the next one
                            continue
                    return None

                found = wait_for(lambda: (lambda got: None if got is None else [got])(page_images()))
                images = found[0] if found else None  # a page without images is loaded too: [] is an answer
                out[path] = images if images is not None else [{"src": "(the page did not load)", "loaded": False}]
                if screenshots and images:  # the page's first figure in view, for a person to look at
                    frame = next(f for f in browser.frames() if f["id"] not in before)
                    browser.evaluate_in_frame(frame["id"], "document.images[0].scrollIntoView(); true")
            if screenshots:
                browser.screenshot(screenshots / f"{i + 1:02d}-{path.replace('/', '_')}.png")
    return out


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="report.html of snakemake --report (unzip a .zip report first)")
    parser.add_argument("--screenshots", type=Path, help="write a screenshot of every page here")
    args = parser.parse_args()
    pages = check_report(args.report, args.screenshots)
    broken = 0
    for page, images in pages.items():
        if page == "landing page text":
            continue
        bad = [img for img in images if not img["loaded"]]
        broken += len(bad)
        print(f"{'BROKEN' if bad else 'ok':6} {len(images) - len(bad)}/{len(images)} images  {page}")
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
