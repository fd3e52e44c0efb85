#!/usr/bin/env python3
"""`make browser-test`: the admin function's status page in headless Chromium.

Serves the functions with `cargo lambda watch` (embedded store, as `make demo` does), plays a
short incident into it (Send events, then enough hard bounces to pause the primary), then
drives Debian's Chromium through ChromeDriver (the W3C WebDriver protocol, spoken here with the
standard library): it opens the page, is sent to the login form, signs in with the admin
token, and checks that every account, its state and its charts are rendered and that the
suppression lookup answers. Saves a screenshot to target/status-page.png. Exits non-zero on
any difference.
"""

import base64
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import demo  # noqa: E402  the same watch, samples and events as the demo

ROOT = demo.ROOT
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
SHOT = ROOT / "target" / "status-page.png"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """A headless Chromium session through ChromeDriver."""

    def __init__(self, work):
        self.port = free_port()
        self.driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        options = {
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     f"--user-data-dir={work / 'chromium'}", "--window-size=1000,1300"],
        }
        session = self.call("POST", "/session",
                            {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}})
        self.session = session["sessionId"]

    def call(self, method, path, body=None):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())["value"]

    def on(self, path, body=None, method="POST"):
        return self.call(method, f"/session/{self.session}{path}", body)

    def go(self, url):
        self.on("/url", {"url": url})

    def element(self, css):
        found = self.on("/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def type(self, css, text):
        self.on(f"/element/{self.element(css)}/value", {"text": text})

    def click(self, css):
        self.on(f"/element/{self.element(css)}/click", {})

    def source(self):
        return self.on("/source", method="GET")

    def wait_for(self, text, seconds=30):
        """The page's source once it holds `text` (navigation may still be under way)."""
        deadline = time.time() + seconds
        while True:
            source = self.source()
            if text in source or time.time() > deadline:
                return source
            time.sleep(0.2)

    def url(self):
        return self.on("/url", method="GET")

    def screenshot(self, path):
        path.write_bytes(base64.b64decode(self.on("/screenshot", method="GET")))

    def close(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        finally:
            self.driver.terminate()
            self.driver.wait(timeout=20)


def incident(watch):
    """Sends and bounces on the primary (pause), a complaint (a suppressed address)."""
    at = demo.now_iso(-3600)
    sends = [demo.ses_event("ses/event-send.json", n, "transactional" if n % 2 else "bulk",
                            [f"user{n}-{i}@example.net" for i in range(50)], at) for n in range(5)]
    answer = watch.invoke("ingest", demo.sqs(sends))
    demo.expect(answer.get("batchItemFailures") == [], "5 Send events (250 recipients) stored", answer)
    bounces = []
    for n in range(8):
        event = demo.ses_event("ses/event-bounce.json", n, "bulk", [f"user{n % 5}-{i}@example.net" for i in range(3)], at)
        event["bounce"]["feedbackId"] = f"page-feedback-{n}-{time.time_ns()}"
        event["bounce"]["timestamp"] = demo.now_iso()
        event["bounce"]["bouncedRecipients"] = [
            dict(event["bounce"]["bouncedRecipients"][0], emailAddress=r) for r in event["mail"]["destination"]]
        bounces.append(event)
    answer = watch.invoke("ingest", demo.sqs(bounces))
    demo.expect(answer.get("batchItemFailures") == [], "8 bounce events (24 addresses) stored", answer)
    answer = watch.invoke("ingest", demo.sample("ses/complaint.json"))
    demo.expect(answer.get("processed") == 1, "a complaint stored", answer)


def main():
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not pathlib.Path(tool).exists():
            print(f"{tool} is missing: `make browser-tools` installs Debian's chromium and chromium-driver")
            return 1
    work = demo.local_run("sesguard-page.")
    subprocess.run(["cargo", "build", "--quiet", "--locked", "--bins"], cwd=ROOT, check=True)
    watch = demo.Watch(work)
    browser = None
    try:
        demo.step("an incident: the primary's bulk stream bounces")
        incident(watch)
        demo.step("the status page in headless Chromium")
        browser = Browser(work)
        page = f"http://127.0.0.1:{watch.port}/lambda-url/admin/"
        browser.go(page)
        demo.expect(browser.url().endswith("/login"), f"without a session the page sends to the login form ({browser.url()})")
        browser.type("#token", "not-the-token-at-all")
        browser.click("#sign-in")
        demo.expect("wrong token" in browser.wait_for("wrong token"), "a wrong token is refused on the form")
        browser.type("#token", demo.TOKEN)
        browser.click("#sign-in")
        source = browser.wait_for("data-account")
        demo.expect(browser.url().rstrip("/").endswith("/admin"), f"signed in, back on the page ({browser.url()})")
        for account, state in [("primary", "paused"), ("backup", "active")]:
            demo.expect(f'data-account="{account}" data-state="{state}"' in source, f"{account} is shown {state}")
        charts = source.count('class="chart"')
        demo.expect(charts == 5, f"{charts} charts (bounces and complaints of both accounts, the primary's providers)")
        demo.expect("primary — refusals by mailbox provider" in source
                    and "backup — refusals by mailbox provider" not in source
                    and 'data-provider="' in source,
                    "the primary's mailbox providers are charted and tabled, the quiet backup's are not")
        demo.expect('data-label="bulk"' in source and "pause 8.0 %" in source,
                    "the primary's chart draws its bulk stream against the pause level")
        demo.expect("active → paused" in source, "the pause is in the primary's transitions")
        browser.type("#email", "angry@example.com")
        browser.click("#lookup button")
        demo.expect("angry@example.com</b> is suppressed: complaint" in browser.wait_for("lookup-result"),
                    "the lookup finds a suppressed address")
        browser.go(page)
        SHOT.parent.mkdir(exist_ok=True)
        browser.screenshot(SHOT)
        print(f"   screenshot: {SHOT} ({SHOT.stat().st_size // 1024} KB)")
        code, _ = watch.http("GET", "/accounts")
        demo.expect(code == 200, "the API still answers its bearer token")
    finally:
        if browser:
            browser.close()
        watch.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    if demo.failures:
        print(f"status page test FAILED: {demo.failures}")
        return 1
    print("status page test ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
