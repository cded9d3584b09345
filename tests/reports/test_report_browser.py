"""The report of two short runs, opened in a real headless browser (Debian's ``chromium``; .ci/run installs it).

The browser is driven over the DevTools protocol through a pipe (``--remote-debugging-pipe``: JSON messages ending in
NUL on file descriptors 3 and 4) with the standard library only, no selenium/playwright and no downloaded browser. The
test loads ``index.html`` from disk and checks that the runs table has both rows, that every image loaded
(``naturalWidth > 0``) and that the console shows no error (console.error, uncaught exceptions, failed loads).
"""
import fcntl
import importlib.util
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's `chromium` is not installed (apt-get install -y "
                                "chromium; .ci/run does it), so the report is not checked in a real browser")


def _report_runs_for():
    try:
        from test_report import report_runs_for  # pytest's default (prepend) import mode puts this folder on sys.path
    except ImportError:  # pragma: no cover - other import modes
        spec = importlib.util.spec_from_file_location("_zoo_test_report", Path(__file__).with_name("test_report.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        report_runs_for = module.report_runs_for
    return report_runs_for


@pytest.fixture(scope="session")
def report_runs(request, tmp_path_factory):
    return _report_runs_for()(request.config, tmp_path_factory)


class Chromium:
    """A headless chromium driven over the DevTools protocol on a pipe."""

    def __init__(self, timeout=30.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="zoo-chromium-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the browser reads fd 3 and writes fd 4; copy the pipe ends above 10 first so the dup2s cannot clobber them
        r_high = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        w_high = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def child_fds():
            os.dup2(r_high, 3)
            os.dup2(w_high, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--remote-debugging-pipe", f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(3, 4, r_high, w_high), preexec_fn=child_fds, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(r_high)
        os.close(w_high)
        self._buf, self._next_id, self.events, self.session = b"", 0, [], None

    def _recv(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise EOFError("chromium closed the DevTools pipe (did it start?)")
            self._buf += chunk
        message, _, self._buf = self._buf.partition(b"\0")
        return json.loads(message)

    def call(self, method, params=None, session=True):
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._recv(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, event):
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == event for e in self.events):
            self.events.append(self._recv(deadline))

    def open(self, url):
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"]["value"]

    def errors(self):
        out = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append(("console", [a.get("value", a.get("description")) for a in params.get("args", [])]))
            elif method == "Runtime.exceptionThrown":
                out.append(("exception", params.get("exceptionDetails", {}).get("text")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                out.append(("log", params["entry"].get("text"), params["entry"].get("url")))
        return out

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)


CHECK = """(async () => {
  await Promise.all(Array.from(document.images).map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r); i.addEventListener('error', r); })));
  const rows = Array.from(document.querySelectorAll('#runs tbody tr')).map(tr => tr.cells[0].textContent.trim());
  const images = Array.from(document.images).map(i => ({src: i.getAttribute('src'), width: i.naturalWidth,
                                                       complete: i.complete}));
  const headers = Array.from(document.querySelectorAll('#runs thead th')).map(th => th.textContent.trim());
  return {rows, images, headers, title: document.title};
})()"""


def test_report_renders_in_a_real_browser(report_runs):
    browser = Chromium()
    try:
        browser.open(Path(report_runs["out"], "index.html").resolve().as_uri())
        page = browser.evaluate(CHECK)
        errors = browser.errors()
    finally:
        browser.close()
    assert sorted(page["rows"]) == ["iwae3-z4", "vae-z2"]
    assert "NLL (K=50)" in page["headers"] and "published (paper)" in page["headers"]
    assert len(page["images"]) >= 13  # curves + 6 per run
    broken = [i for i in page["images"] if not i["complete"] or i["width"] <= 0]
    assert not broken, broken
    assert not errors, errors
