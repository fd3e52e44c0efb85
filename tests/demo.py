#!/usr/bin/env python3
"""`make demo`: the sesguard story, played against the real functions.

Builds the functions, serves them with `cargo lambda watch` on 127.0.0.1 (embedded SQLite
store, file outbox, alerts to a file, in a throwaway directory), then plays an incident with
`cargo lambda invoke`, the samples in events/ (stamped with the current time) and the admin
function's URL, checking every step against the story: bounces arrive a few at a time and the
guard pauses the primary at its pause level, below 9 %; the operator's resume holds. Prints
each step, ends with the accounts' status table and `sesguard simulate`'s picture, stops
everything it started, and exits non-zero if any step's result differs. Needs nothing but the toolchain and the project's virtualenv (`make tools`).
"""

import copy
import datetime
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
TOKEN = "demo-admin-token-0123456789"
failures = []


def step(text):
    print(f"\n== {text}", flush=True)


def expect(ok, what, detail=""):
    print(f"   {'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        failures.append(what)


def now_iso(offset_seconds=0):
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset_seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sample(name):
    return json.loads((EVENTS / name).read_text())


def sqs(bodies):
    """An SQS event as the event source mapping delivers it, each body a raw SES event."""
    return {
        "Records": [
            {
                "messageId": f"demo-{i}-{time.time_ns()}",
                "receiptHandle": "demo",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:111111111111:sesguard-feedback",
                "awsRegion": "us-east-1",
            }
            for i, body in enumerate(bodies)
        ]
    }


def ses_event(template, n, stream, recipients, at):
    event = copy.deepcopy(sample(template))
    event["mail"]["messageId"] = f"demo-msg-{template}-{n}-{time.time_ns()}"
    event["mail"]["timestamp"] = at
    event["mail"]["destination"] = recipients
    event["mail"]["commonHeaders"]["to"] = recipients
    event["mail"]["tags"]["sesguard-stream"] = [stream]
    event["mail"]["tags"]["sesguard-account"] = ["primary"]
    return event


class Watch:
    def __init__(self, work):
        self.work = work
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = open(work / "watch.log", "w")
        self.process = subprocess.Popen(
            ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port)],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise SystemExit((work / "watch.log").read_text())
                time.sleep(0.2)
        raise SystemExit("cargo lambda watch did not start")

    def invoke(self, function, event):
        path = self.work / f"event-{time.time_ns()}.json"
        path.write_text(json.dumps(event))
        done = subprocess.run(
            ["cargo", "lambda", "invoke", function, "--invoke-address", "127.0.0.1",
             "--invoke-port", str(self.port), "--data-file", str(path)],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            return {"invoke_error": done.stderr.strip() or done.stdout.strip()}
        return json.loads(done.stdout)

    def http(self, method, path, body=None):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/lambda-url/admin{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {TOKEN}", "X-Sesguard-Actor": "demo-operator",
                     "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def stop(self):
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
        self.log.close()


class Dns:
    """`sesguard dns serve` on a free port with the sample zone; SESGUARD_DNS points at it."""

    def __init__(self, work):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.log = open(work / "dns.log", "w")
        self.process = subprocess.Popen(
            [str(ROOT / "target/debug/sesguard"), "dns", "serve", "--zone", str(ROOT / "events/dns/zone.txt"),
             "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )
        os.environ["SESGUARD_DNS"] = f"127.0.0.1:{port}"

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


def cli(*args):
    done = subprocess.run([str(ROOT / "target/debug/sesguard"), *args], cwd=ROOT, capture_output=True, text=True)
    return done


def local_run(prefix):
    """A throwaway directory with the example configuration (its alerts file and outbox moved
    there) and this process's environment pointed at it: store, configuration, admin token.
    Returns the directory."""
    work = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    config = (ROOT / "infra/sesguard.example.toml").read_text()
    config = config.replace(".sesguard/alerts.jsonl", str(work / "alerts.jsonl"))
    config = config.replace("[sender]\n", f'[sender]\noutbox = "{work / "outbox"}"\n', 1)
    (work / "config.toml").write_text(config)
    os.environ.update({
        "SESGUARD_STORE": f"sqlite:{work / 'store.db'}",
        "SESGUARD_CONFIG": str(work / "config.toml"),
        "SESGUARD_ADMIN_TOKEN": TOKEN,
        "RUST_LOG": "warn",
    })
    os.environ.pop("SESGUARD_CONFIG_TOML", None)
    return work


def main():
    work = local_run("sesguard-demo.")

    step("build the functions and the CLI (debug)")
    started = time.time()
    subprocess.run(["cargo", "build", "--quiet", "--locked", "--bins"], cwd=ROOT, check=True)
    print(f"   built in {time.time() - started:.0f} s")
    step("serve a DNS zone of known records (events/dns/zone.txt) for prevention's lookups")
    dns = Dns(work)
    print(f"   SESGUARD_DNS={os.environ['SESGUARD_DNS']}")
    step("serve them with cargo lambda watch on 127.0.0.1 (embedded store, file outbox)")
    watch = Watch(work)
    print(f"   port {watch.port}, state in {work}")
    try:
        story(watch, work)
    finally:
        watch.stop()
        dns.stop()
        shutil.rmtree(work, ignore_errors=True)
    print()
    if failures:
        print(f"demo FAILED: {len(failures)} step(s) differ from the story: {failures}")
        return 1
    print("demo ok: every step as the story says")
    return 0


def story(watch, work):
    step("1. a receipt goes out through the primary")
    decision = watch.invoke("sender", sample("send/receipt.json"))
    expect(decision.get("decision") == "sent" and decision.get("account") == "primary",
           f"sender: {decision.get('decision')} through {decision.get('account')}", decision)
    outbox = list((work / "outbox").glob("*")) if (work / "outbox").exists() else []
    expect(len(outbox) == 1, f"the outbox holds {len(outbox)} message")

    step("2. a hard bounce and a complaint come back from SES")
    for name in ["ses/bounce-permanent.json", "ses/complaint.json"]:
        answer = watch.invoke("ingest", sample(name))
        expect(answer.get("processed") == 1, f"ingest {name}: processed {answer.get('processed')}", answer)
    for email, reason in [("nobody@example.org", "bounce"), ("angry@example.com", "complaint")]:
        record = json.loads(cli("suppressions", "get", email, "--json").stdout or "null")
        expect(record is not None and record["reason"] == reason, f"{email} suppressed ({reason})", record)

    step("3. a later send to a suppressed address is refused")
    request = sample("send/receipt.json")
    request["to"] = ["nobody@example.org"]
    request["idempotency_key"] = "demo-after-bounce"
    decision = watch.invoke("sender", request)
    expect(decision.get("decision") == "suppressed", f"sender: {decision.get('decision')} ({decision.get('reason')})", decision)

    step("3b. sign-up mail to addresses that cannot receive mail never reaches SES")
    decision = watch.invoke("sender", sample("send/signup.json"))
    expect(decision.get("decision") == "undeliverable" and decision.get("suggestion") == "gmail.com",
           f"sender: {decision.get('decision')} ({decision.get('reason')}); did you mean {decision.get('suggestion')}?",
           decision)
    checked = json.loads(cli("addresses", "check", "ok@shop.example", "x@parked.example", "--json").stdout or "[]")
    expect([c.get("deliverable") for c in checked] == [True, False]
           and checked[1].get("reason") == "no_mail_domain",
           "sesguard addresses check: ok@shop.example deliverable, x@parked.example has a null MX", checked)

    step("4. a bad list goes out: 250 sends on the primary, and its bounces come back batch by batch")
    at = now_iso(-600)
    sends = [
        ses_event("ses/event-send.json", n, "transactional" if n % 2 else "bulk",
                  [f"user{n}-{i}@example.net" for i in range(50)], at)
        for n in range(5)
    ]
    answer = watch.invoke("ingest", sqs(sends))
    expect(answer.get("batchItemFailures") == [], "ingest: 5 Send events (250 recipients) stored", answer)
    # 21 bad addresses, spread over both streams (no single culprit to quarantine: the account
    # pauses); SES reports them a few at a time, as it would.
    # (11 bulk, 10 transactional: neither stream holds the 60 % of them that makes a culprit).
    bad = [f"user{n}-{i}@example.net" for i in range(5) for n in range(4)] + ["user4-0@example.net"]
    status = {}
    for batch in range(7):
        events = []
        for address in bad[3 * batch:3 * batch + 3]:
            n = int(address[4])  # user{n}-{i}: the n-th message, of its own stream
            event = ses_event("ses/event-bounce.json", n, "transactional" if n % 2 else "bulk", [address], at)
            event["bounce"]["feedbackId"] = f"demo-feedback-{address}-{time.time_ns()}"
            event["bounce"]["timestamp"] = now_iso()
            event["bounce"]["bouncedRecipients"] = [
                dict(event["bounce"]["bouncedRecipients"][0], emailAddress=address)]
            events.append(event)
        answer = watch.invoke("ingest", sqs(events))
        status = json.loads(cli("accounts", "status", "primary", "--json").stdout or "[{}]")[0]
        print(f"   bounces {3 * batch + 3:2} of 250: primary {status.get('state')} "
              f"at {100 * status.get('bounce_rate', 0):.1f} %", flush=True)
        if status.get("state") == "paused":
            break
    rate = status.get("bounce_rate", 1)
    expect(status.get("state") == "paused" and status.get("cause") == "bounce_rate" and rate < 0.09,
           f"primary paused at {100 * rate:.1f} %: at the pause level (8 %), below 9 % and well below SES's 10 %",
           status)
    alerts = [json.loads(line) for line in (work / "alerts.jsonl").read_text().splitlines()] \
        if (work / "alerts.jsonl").exists() else []
    paused = [a for a in alerts if a.get("account") == "primary" and a.get("to") == "paused"]
    expect(len(paused) == 1, f"one alert: {paused[0]['traffic'] if paused else 'none'}", alerts)

    step("5. the next receipt goes out through the backup")
    request = sample("send/receipt.json")
    request["to"] = ["new-customer@example.com"]
    request["idempotency_key"] = "demo-after-pause"
    decision = watch.invoke("sender", request)
    expect(decision.get("decision") == "sent" and decision.get("account") == "backup",
           f"sender: {decision.get('decision')} through {decision.get('account')}", decision)

    step("6. an operator cleans the list and resumes the primary through the admin function")
    code, answer = watch.http("POST", "/accounts/primary/resume", {"reason": "bad list removed"})
    expect(code == 200 and answer.get("to") == "probation" and answer.get("share") == 0.1,
           f"POST /accounts/primary/resume -> {code} {answer.get('from')} -> {answer.get('to')} "
           f"({answer.get('share', 0) * 100:.0f} % of the traffic) by {answer.get('actor')}", answer)
    code, answer = watch.http("GET", "/accounts/primary/status")
    expect(code == 200 and answer.get("can_send") is True and answer.get("state") == "probation",
           f"GET /accounts/primary/status -> {answer.get('state')}, can_send {answer.get('can_send')}; "
           f"judged since the resume: {answer.get('judged', {}).get('sends')} sends", answer)
    unauthenticated = urllib.request.Request(f"http://127.0.0.1:{watch.port}/lambda-url/admin/accounts")
    try:
        urllib.request.urlopen(unauthenticated, timeout=60)
        expect(False, "the admin function refuses a request without its token")
    except urllib.error.HTTPError as error:
        expect(error.code == 401, f"a request without the token -> {error.code}")

    step("7. the resume holds: a late bounce about mail sent before it does not pause again")
    late = ses_event("ses/event-bounce.json", 99, "bulk", ["user1-0@example.net"], at)
    late["bounce"]["feedbackId"] = f"demo-feedback-late-{time.time_ns()}"
    late["bounce"]["timestamp"] = now_iso()
    late["bounce"]["bouncedRecipients"] = [dict(late["bounce"]["bouncedRecipients"][0], emailAddress="user1-0@example.net")]
    answer = watch.invoke("ingest", sqs([late]))
    status = json.loads(cli("accounts", "status", "primary", "--json").stdout or "[{}]")[0]
    expect(answer.get("batchItemFailures") == [] and status.get("state") == "probation",
           f"primary still {status.get('state')}: the bounce counts in the window SES sees "
           f"({100 * status.get('bounce_rate', 0):.1f} %), not in what the guard judges since the resume "
           f"({status.get('judged', {}).get('sends')} sends)", status)

    step("the accounts now")
    table = cli("accounts", "status")
    print(table.stdout.rstrip())
    expect(table.returncode == 0, "sesguard accounts status")

    step("the incident at scale: sesguard simulate (2 days, 14,400 messages a day)")
    picture = ROOT / "target" / "demo-incident.svg"
    simulation = cli("simulate", "--days", "2", "--daily-volume", "14400", "--resume-day", "0",
                     "--svg", str(picture))
    for line in simulation.stdout.splitlines():
        if "quarantined" in line or line.startswith("==") or "peak primary:" in line or "picture" in line:
            print(f"   {line.strip()}")
    expect(simulation.returncode == 0 and picture.exists(), f"the picture: {picture}", simulation.stderr)
    print("\n   The status page: `SESGUARD_ADMIN_TOKEN=<16+ characters> make watch`, then open "
          "http://127.0.0.1:9000/lambda-url/admin/ and sign in with that token.")


if __name__ == "__main__":
    sys.exit(main())
