#!/usr/bin/env python3
"""`make wire-faults`: the sender as deployed, with faults on the wire to SES.

The rehearsal's deployed composition (infra/template.yaml on fakecloud, the functions under
`cargo lambda watch` with the stack's environment, bridge.py for the event source mappings),
one account, and wire.py's proxy in front of SESv2 (`AWS_ENDPOINT_URL_SESV2`): the first
attempts of the requests meet, in turn, a connection lost after SES accepted, one lost before
SES saw anything, an answer held past the send timeout, a 500 and a throttle. Half the requests
carry an idempotency key, half are identified by their queue message. Then everything settles
(an attempt in doubt waits `sender.in_doubt`, 2 minutes here, for its Send event: longer
than a new `cargo lambda watch` takes to start after the kill).

Checked from SES's own view — the emulator's outbox, the Send events its configuration set
published, `GetAccount`'s count — that every request went out exactly once and nothing
reached a dead-letter queue. Prints the table docs/sender.md shows. Never talks to AWS.
"""

import json
import os
import sys
import time
import pathlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import urllib.error  # noqa: E402

import rehearsal as r  # noqa: E402
from bridge import Bridge  # noqa: E402
from wire import Proxy  # noqa: E402

# The first attempts' faults, in the order SendEmail calls meet them.
PLAN = [("lost_answer", 4), ("lost_request", 4), ("internal_error", 4), ("slow_answer", 2), ("throttled", 2),
        ("killed_after_accept", 1)]
# A short visibility timeout (the template's least), so that the killed instance's batch comes
# back within the run; the sender is told it, as deployed.
VISIBILITY = "30"
FUNCTION_TIMEOUT = 30  # infra/template.yaml, Globals.Function.Timeout
REQUESTS = 24  # more than the faults: the rest go through clean, after them


def config(work):
    text = f"""
[sender]
in_doubt = "2m"
rate_pause = "30s"
breaker_pause = "30s"

[[accounts]]
name = "primary"
region = "{r.REGION}"
account_id = "{r.A}"
send_count_source = "ses_events"
configuration_set = "sesguard"
from = "no-reply@example.com"

[[streams]]
name = "transactional"
accounts = ["primary"]
priority = "critical"
"""
    path = work / "sesguard.toml"
    path.write_text(text)
    return path


def requests():
    """Every other request with an idempotency key; the rest identified by their queue message."""
    out = []
    for i in range(REQUESTS):
        rid = f"wire-{i:03d}"
        request = {"stream": "transactional", "to": [f"{rid}@example.net"], "subject": f"wire {rid}",
                   "text": "sesguard wire faults", "tags": {"rehearsal-request": rid}}
        if i % 2 == 0:
            request["idempotency_key"] = rid
        out.append(request)
    return out


class Instances:
    """The functions under `cargo lambda watch`, killed and started again: what an instance
    dying looks like to Lambda — the batch in flight fails, and the next invocation meets a
    new instance. (`cargo lambda watch` does not recover from one function's process killed
    alone: the whole server goes, and a new one starts.)"""

    def __init__(self, work, env):
        self.work, self.env = work, env
        self.functions = r.Functions(work, env)
        self.killed = 0

    def kill(self):
        self.killed += 1
        self.dead = True
        r.stop_process(self.functions.process)

    def invoke(self, function, event):
        # After a kill, the next invocation meets a new server (never the dying one: a batch
        # of feedback failing there would come back only after its queue's 3 minutes).
        if getattr(self, "dead", False):
            self.functions.process.wait()
            self.functions = r.Functions(self.work, self.env)
            self.dead = False
        # Lambda ends an invocation at the function's timeout (the template's 30 s): one whose
        # instance died fails then, and its batch comes back after the visibility timeout.
        try:
            return self.functions.invoke(function, event, timeout=FUNCTION_TIMEOUT)
        except (urllib.error.URLError, ConnectionError, OSError) as error:
            return {"invoke_error": f"the instance died: {error}"}


def run(emulator, work):
    a = emulator.session()
    admin_b = emulator.post("/_fakecloud/iam/create-admin", {"accountId": r.B, "userName": "admin"})
    b = emulator.session(admin_b["accessKeyId"], admin_b["secretAccessKey"])
    backup_topic, _ = r.set_up_backup_account(emulator, b)

    r.step("1. infra/template.yaml deployed into account A; the functions with the stack's environment, SESv2 behind the proxy")
    stack = r.deploy_stack(a, config(work), backup_topic,
                           [{"ParameterKey": "SendVisibilityTimeout", "ParameterValue": VISIBILITY}])
    if not r.expect(stack["StackStatus"] == "CREATE_COMPLETE", f"stack {stack['StackStatus']}", stack.get("StackStatusReason")):
        return
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = {x["LogicalResourceId"]: x["PhysicalResourceId"]
                 for x in a("cloudformation").describe_stack_resources(StackName=r.STACK)["StackResources"]}
    a("sesv2").create_email_identity(EmailIdentity="example.com")
    mappings = a("lambda").list_event_source_mappings()["EventSourceMappings"]
    env, names = r.function_environment(a, resources)
    host, port = emulator.endpoint.split("//")[1].split(":")
    proxy = Proxy((host, int(port)))
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SESGUARD_")}
    run_env.update(env)
    run_env.update({
        "AWS_ENDPOINT_URL": emulator.endpoint, "AWS_ENDPOINT_URL_SESV2": proxy.endpoint,
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": r.REGION, "RUST_LOG": "warn",
        "SESGUARD_ADMIN_AUTH": "token", "SESGUARD_ADMIN_TOKEN": r.TOKEN,
        **r.local_dns(),
    })
    r.expect(env.get("SESGUARD_SEND_VISIBILITY_TIMEOUT") == VISIBILITY,
             f"the sender is told the send queue's visibility timeout ({VISIBILITY} s)", env)
    instances = Instances(work, run_env)
    proxy.on_kill = instances.kill
    bridge = Bridge(a("sqs"), instances.invoke, [
        (m["EventSourceArn"], r.names_for(m["FunctionArn"], names), m.get("BatchSize", 10)) for m in mappings
    ])

    r.step(f"2. {REQUESTS} requests; the first SendEmail calls meet the faults {PLAN}")
    proxy.fail(PLAN)
    r.put_sends(a, outputs["SendQueueUrl"], requests())
    deadline = time.time() + 120
    while proxy.pending() and time.time() < deadline:
        bridge.pump(wait_seconds=1)
    r.expect(not proxy.pending(), f"every planned fault met a SendEmail call: {proxy.counts}")
    r.step("3. everything settles: attempts in doubt wait for their Send events (in_doubt 2 m), the rest retry")
    drained = bridge.drain(480)
    r.expect(drained, "both queues drained within 480 s", bridge.counts)

    r.step("4. SES's own view: every request exactly once, nothing dead-lettered")
    outbox = emulator.get("/_fakecloud/ses/emails")["emails"]
    delivered = {}
    for email in outbox:
        text = json.dumps(email)
        for i in range(REQUESTS):
            rid = f"wire-{i:03d}"
            if f"{rid}@example.net" in text:
                delivered[rid] = delivered.get(rid, 0) + 1
    sends = r.sent_requests(emulator, outputs["FeedbackTopicArn"])
    twice = sorted(rid for rid, n in delivered.items() if n > 1)
    missing = sorted(f"wire-{i:03d}" for i in range(REQUESTS) if f"wire-{i:03d}" not in delivered)
    r.expect(not twice, f"no request reached SES twice (outbox: {len(outbox)} messages)", twice)
    r.expect(not missing, f"every request reached SES ({len(delivered)} of {REQUESTS})", missing)
    r.expect(sorted(sends) == sorted(set(sends)) and len(set(sends)) == REQUESTS,
             f"the configuration set published {len(sends)} Send events for {len(set(sends))} requests")
    sent_count = int(a("sesv2").get_account()["SendQuota"].get("SentLast24Hours", 0))
    r.expect(sent_count == REQUESTS, f"GetAccount counts {sent_count} sent")
    for name, url in [("send", outputs["SendQueueUrl"]), ("feedback", outputs["FeedbackQueueUrl"]),
                      ("send DLQ", outputs["SendDeadLetterQueueUrl"]),
                      ("feedback DLQ", outputs["FeedbackDeadLetterQueueUrl"])]:
        depth = r.queue_depth(a, url)
        r.expect(depth == 0, f"{name} queue: {depth} message(s)")
    r.figures["faults_injected"] = proxy.counts
    r.figures["requests"] = REQUESTS
    r.figures["sent_per_request"] = sorted(set(delivered.values()))
    r.figures["bridge"] = bridge.counts
    keyed = {f"wire-{i:03d}" for i in range(0, REQUESTS, 2)}
    print("\n   | a SendEmail call met | requests (with a key / by queue message) | each reached SES |")
    print("   |---|---|---|")
    for fault, _ in PLAN:
        met = proxy.met[fault]
        once = all(delivered.get(rid) == 1 for rid in met)
        with_key = sum(1 for rid in met if rid in keyed)
        print(f"   | {fault} | {len(met)} ({with_key} / {len(met) - with_key}) | {'once' if once else 'NOT once'} |")
        r.expect(once and len(met) == dict(PLAN)[fault], f"{fault}: {len(met)} requests, each sent once", met)
    r.figures["met"] = proxy.met
    r.figures["instances_killed"] = instances.killed
    proxy.stop()


def main():
    return r.run("wire faults", run, "every request reached SES exactly once")


if __name__ == "__main__":
    sys.exit(main())
