"""Headless Debian chromium driven over the Chrome DevTools Protocol (CDP), with Debian's
python3-websockets: enough to open a page, read its DOM, and take a screenshot.

    b = await Browser.start(width=1600, height=1000)
    await b.navigate("http://127.0.0.1:8080/")
    n = await b.evaluate("document.querySelectorAll('#feed li').length")
    await b.screenshot("page.png")
    await b.close()

`problems` collects what the page got wrong: uncaught exceptions, console errors and
browser log errors (a Content-Security-Policy violation or a failed request shows there).

Standalone, it screenshots a URL (for looking at the page by hand):
    /usr/bin/python3 tests/server/integration/browser.py http://127.0.0.1:8080/ out.png
"""

import asyncio
import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import websockets

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium():
    """The browser binary: $CASCADE_CHROMIUM, else chromium on PATH; None if absent."""
    env = os.environ.get("CASCADE_CHROMIUM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for name in CHROMIUM_CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(Exception):
    pass


class Browser:
    def __init__(self):
        self.proc = None
        self.profile = None
        self.ws = None
        self.reader = None
        self.next_id = 0
        self.pending = {}
        self.events = []
        self.problems = []
        self.event_cond = None

    @classmethod
    async def start(cls, width=1600, height=1000, timeout=30.0):
        binary = find_chromium()
        if binary is None:
            raise RuntimeError("chromium not found (Debian package 'chromium'; deploy/setup.sh "
                               "installs it)")
        b = cls()
        b.event_cond = asyncio.Condition()
        b.profile = tempfile.mkdtemp(prefix="cascade-chromium-")
        b.proc = subprocess.Popen(
            [binary, "--headless=new", "--no-sandbox", "--disable-gpu",
             "--remote-debugging-port=0", f"--user-data-dir={b.profile}",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--mute-audio", "--hide-scrollbars",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True)
        try:
            port = await b._devtools_port(timeout)
            target = await b._page_target(port, timeout)
            b.ws = await websockets.connect(target, max_size=None, ping_interval=None,
                                            open_timeout=timeout)
            b.reader = asyncio.get_running_loop().create_task(b._read())
            for domain in ("Page", "Runtime", "Log"):
                await b.call(f"{domain}.enable")
            await b.call("Emulation.setDeviceMetricsOverride", width=width, height=height,
                         deviceScaleFactor=1, mobile=False)
        except BaseException:
            await b.close()
            raise
        return b

    async def _devtools_port(self, timeout):
        """Chromium writes the port it chose to DevToolsActivePort in the profile."""
        path = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited ({self.proc.returncode}) at start")
            try:
                with open(path) as f:
                    first = f.readline().strip()
                if first.isdigit():
                    return int(first)
            except FileNotFoundError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError(f"chromium wrote no {path} within {timeout} s")

    async def _page_target(self, port, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("GET", "/json/list")
                targets = json.loads(conn.getresponse().read())
            except (OSError, ValueError):
                targets = []
            finally:
                conn.close()
            for t in targets:
                if t.get("type") == "page" and t.get("webSocketDebuggerUrl"):
                    return t["webSocketDebuggerUrl"]
            await asyncio.sleep(0.1)
        raise RuntimeError("chromium shows no page target")

    async def _read(self):
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                if "id" in msg:
                    fut = self.pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                    continue
                self._note(msg)
                async with self.event_cond:
                    self.events.append(msg)
                    self.event_cond.notify_all()
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(CdpError("the DevTools connection closed"))
            self.pending.clear()

    def _note(self, msg):
        method, p = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            text = d.get("exception", {}).get("description") or d.get("text")
            self.problems.append(f"uncaught exception: {text}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            self.problems.append(f"console.{p['type']}: {args}")
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            self.problems.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}")

    async def call(self, method, timeout=30.0, **params):
        self.next_id += 1
        mid = self.next_id
        fut = asyncio.get_running_loop().create_future()
        self.pending[mid] = fut
        await self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        msg = await asyncio.wait_for(fut, timeout)
        if "error" in msg:
            raise CdpError(f"{method}: {msg['error']}")
        return msg.get("result", {})

    async def wait_event(self, method, timeout=30.0, start=0):
        deadline = time.monotonic() + timeout
        i = start
        async with self.event_cond:
            while True:
                while i < len(self.events):
                    if self.events[i].get("method") == method:
                        return self.events[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CdpError(f"no {method} within {timeout} s")
                try:
                    await asyncio.wait_for(self.event_cond.wait(), left)
                except asyncio.TimeoutError:
                    pass

    async def navigate(self, url, timeout=30.0):
        start = len(self.events)
        r = await self.call("Page.navigate", url=url)
        if r.get("errorText"):
            raise CdpError(f"Page.navigate {url}: {r['errorText']}")
        await self.wait_event("Page.loadEventFired", timeout, start)

    async def evaluate(self, expression):
        """The value of a JavaScript expression in the page (promises awaited)."""
        r = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                            awaitPromise=True)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise CdpError(f"evaluate {expression[:80]!r}: "
                           f"{d.get('exception', {}).get('description') or d.get('text')}")
        return r.get("result", {}).get("value")

    async def wait_until(self, expression, timeout=20.0, what=None):
        """Polls a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            v = await self.evaluate(expression)
            if v:
                return v
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for "
                                     f"{what or expression}; page problems: {self.problems}")
            await asyncio.sleep(0.1)

    async def screenshot(self, path):
        r = await self.call("Page.captureScreenshot", format="png")
        data = base64.b64decode(r["data"])
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    async def close(self):
        if self.ws is not None:
            try:
                await asyncio.wait_for(self.call("Browser.close"), 5)
            except Exception:
                pass
            try:
                await self.ws.close()
            except Exception:
                pass
        if self.reader is not None:
            try:
                await asyncio.wait_for(self.reader, 5)
            except Exception:
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)


async def _snap(url, out, wait_s):
    b = await Browser.start()
    try:
        await b.navigate(url)
        await asyncio.sleep(wait_s)
        n = await b.screenshot(out)
        print(f"{out}: {n} bytes")
        for p in b.problems:
            print("page problem:", p)
    finally:
        await b.close()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: browser.py URL OUT.png [SECONDS_TO_WAIT]")
    asyncio.run(_snap(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 3.0))
