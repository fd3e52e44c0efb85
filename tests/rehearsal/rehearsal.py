#!/usr/bin/env python3
"""`make rehearsal`: what a deployment does, rehearsed locally.

Runs the *deployed* composition of sesguard end to end on fakecloud, a local AWS emulator
(installed and cached by tests/rehearsal/install-fakecloud), on 127.0.0.1 only:

1. account B (the backup) is set up the way docs/deployment.md tells a user to: an SES identity, a
   configuration set whose event destination is an SNS topic of B, the role sesguard assumes
   there (trusting account A), and B's topic subscribed to A's feedback queue;
2. infra/template.yaml itself is deployed into account A with CloudFormation (the template's own
   SAM transform, event source mappings switched off: the emulator cannot run functions and its
   poller would swallow the queues' messages);
3. the four functions run under `cargo lambda watch` with the environment the deployed stack
   gives them (read back from the emulator's Lambda API), plus AWS_ENDPOINT_URL;
4. bridge.py stands in for the event source mappings (the only home-made stand-in);
5. the story: sends through A with SESv2, simulator feedback through the configuration set,
   SNS and SQS into ingest, the guard pausing A before 10 %, failover to B through AssumeRole,
   B's feedback, an operator's resume through the admin function URL, and two faults; last,
   SES's own figure: a bounce rate put into B's CloudWatch as SES publishes it, with none of
   B's feedback, and the scheduled review pausing B on it. Every step is checked against the
   emulator's own view (its SES outbox, its SNS message log, GetAccount, queue depths) as well
   as sesguard's.

Exits non-zero if any step differs from the story. Never talks to AWS.
"""

import io
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile

from datetime import datetime, timezone

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from bridge import Bridge  # noqa: E402
import demo  # noqa: E402  its DNS zone server (sesguard dns serve)

A = "123456789012"  # fakecloud's default account: the main account, where the stack goes
B = "222222222222"  # the backup account, created through the emulator's admin API
REGION = "us-east-1"
TOKEN = "rehearsal-admin-token-0123456789"
ARTIFACTS = "sesguard-rehearsal-artifacts"
STACK = "sesguard"
CLEAN_SENDS = 100  # per the story: enough volume for the guard (min_volume is 100 here)
SES_BOUNCE_RATE = 0.095  # what SES reports for B in the last step: over the critical 9 %

failures = []
figures = {}
running = []  # every process started, stopped at the end whatever happens


def step(text):
    print(f"\n== {text}", flush=True)


def expect(ok, what, detail=""):
    print(f"   {'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        failures.append(what)
    return ok


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, process, log, what, tries=600):
    for _ in range(tries):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"{what} exited:\n{pathlib.Path(log).read_text()[-4000:]}")
            time.sleep(0.2)
    raise SystemExit(f"{what} did not start on 127.0.0.1:{port}")


class Emulator:
    """fakecloud on 127.0.0.1, in memory, stopped at the end."""

    def __init__(self, work):
        # The installer's progress (a cold build is long) goes to this run's stderr.
        binary = subprocess.run([str(HERE / "install-fakecloud")], check=True, stdout=subprocess.PIPE, text=True).stdout.strip()
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = open(work / "fakecloud.log", "w")
        self.process = subprocess.Popen(
            [binary, "--addr", f"127.0.0.1:{self.port}", "--account-id", A, "--region", REGION, "--log-level", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for_port(self.port, self.process, work / "fakecloud.log", "fakecloud")

    def get(self, path):
        with urllib.request.urlopen(self.endpoint + path, timeout=30) as response:
            return json.loads(response.read())

    def post(self, path, body):
        request = urllib.request.Request(self.endpoint + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def session(self, key="test", secret="test"):
        session = boto3.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name=REGION)
        config = BotoConfig(retries={"max_attempts": 2})
        return lambda service: session.client(service, endpoint_url=self.endpoint, config=config)

    def stop(self):
        stop_process(self.process)
        self.log.close()


class Functions:
    """The four functions under `cargo lambda watch`, with the deployed environment."""

    def __init__(self, work, env):
        self.port = free_port()
        self.log_path = work / f"watch-{len(running)}.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port)],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        running.append(self)
        wait_for_port(self.port, self.process, self.log_path, "cargo lambda watch")

    def invoke(self, function, event, timeout=600):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/2015-03-31/functions/{function}/invocations",
            data=json.dumps(event).encode(), method="POST", headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return {"invoke_error": error.read().decode(errors="replace")}

    def admin(self, method, path, body=None):
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/lambda-url/admin{path}",
            data=json.dumps(body).encode() if body is not None else None, method=method,
            headers={"Authorization": f"Bearer {TOKEN}", "X-Sesguard-Actor": "rehearsal-operator",
                     "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def stop(self):
        stop_process(self.process)
        self.log.close()


def stop_process(process):
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)


def rehearsal_config(work):
    """The configuration a user of these two accounts would write, plus the rehearsal's switch."""
    text = f"""
[ingest]
simulator_feedback = "count"

[guard]
recheck = "5s"

[guard.thresholds]
min_volume = 100

[[accounts]]
name = "primary"
region = "{REGION}"
account_id = "{A}"
send_count_source = "ses_events"
configuration_set = "sesguard"
from = "no-reply@example.com"
enforce_at_ses = "account"

[[accounts]]
name = "backup"
region = "{REGION}"
account_id = "{B}"
send_count_source = "ses_events"
role_arn = "arn:aws:iam::{B}:role/sesguard-sender"
configuration_set = "sesguard"
from = "no-reply@example.com"

[[streams]]
name = "transactional"
accounts = ["primary", "backup"]
priority = "critical"

[[streams]]
name = "verification"
accounts = ["primary", "backup"]
priority = "normal"
"""
    path = work / "sesguard.toml"
    path.write_text(text)
    return path


def set_up_backup_account(emulator, b):
    """What docs/deployment.md tells a user to create in a backup account."""
    b("sesv2").create_email_identity(EmailIdentity="example.com")
    b("sesv2").create_configuration_set(ConfigurationSetName="sesguard")
    topic = b("sns").create_topic(Name="ses-feedback")["TopicArn"]
    b("sesv2").create_configuration_set_event_destination(
        ConfigurationSetName="sesguard", EventDestinationName="sesguard-feedback",
        EventDestination={"Enabled": True, "MatchingEventTypes": ["SEND", "DELIVERY", "BOUNCE", "COMPLAINT"],
                          "SnsDestination": {"TopicArn": topic}},
    )
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{A}:root"},
                                                    "Action": "sts:AssumeRole"}]}
    b("iam").create_role(RoleName="sesguard-sender", AssumeRolePolicyDocument=json.dumps(trust))
    b("iam").put_role_policy(RoleName="sesguard-sender", PolicyName="sesguard", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Resource": "*", "Action": [
            "ses:SendEmail", "ses:GetAccount", "ses:PutAccountSendingAttributes",
            "ses:PutConfigurationSetSendingOptions", "ses:ListSuppressedDestinations", "ses:PutSuppressedDestination",
            "cloudwatch:GetMetricData"]}]}))
    return topic, trust


def deploy_stack(a, config_path, backup_topic, extra=()):
    """infra/template.yaml into account A through CloudFormation; `sam package`'s one change is
    made by hand: the code location points at an upload in the emulator's S3."""
    parameter = json.loads(subprocess.run(
        [str(ROOT / "target/debug/sesguard"), "--config", str(config_path), "config", "deploy-parameter", "--json"],
        check=True, capture_output=True, text=True).stdout)
    a("s3").create_bucket(Bucket=ARTIFACTS)
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        # The emulator cannot run it; the functions run under cargo lambda watch instead.
        archive.writestr("bootstrap", "#!/bin/sh\necho 'rehearsal placeholder: see tests/rehearsal' >&2\nexit 1\n")
    a("s3").put_object(Bucket=ARTIFACTS, Key="functions.zip", Body=code.getvalue())
    template = (ROOT / "infra/template.yaml").read_text()
    packaged = template.replace("    CodeUri: ..\n", f"    CodeUri: s3://{ARTIFACTS}/functions.zip\n")
    assert packaged.count(f"s3://{ARTIFACTS}/") == 1, "the template's CodeUri moved: update the rehearsal"
    started = time.time()
    a("cloudformation").create_stack(
        StackName=STACK, TemplateBody=packaged,
        Parameters=[parameter,
                    {"ParameterKey": "EventSourceMappings", "ParameterValue": "disabled"},
                    {"ParameterKey": "BackupRoleArns", "ParameterValue": f"arn:aws:iam::{B}:role/sesguard-sender"},
                    {"ParameterKey": "BackupFeedbackTopicArns", "ParameterValue": backup_topic},
                    *extra],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    for _ in range(600):
        stack = a("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.5)
    figures["deploy_seconds"] = round(time.time() - started, 1)
    return stack


def function_environment(a, stack_resources):
    """The union of the four functions' environments, as the deployed stack set them."""
    env = {}
    names = {}
    for logical in ["IngestFunction", "SenderFunction", "WebhookFunction", "AdminFunction"]:
        physical = stack_resources[logical]
        names[logical] = physical
        variables = a("lambda").get_function_configuration(FunctionName=physical).get("Environment", {}).get("Variables", {})
        env.update(variables)
    return env, names


def sends(tag, count, to, stream, start=0):
    """`count` send requests, each tagged with its own id so it can be found in any outbox."""
    requests = []
    for i in range(start, start + count):
        rid = f"{tag}-{i:04d}"
        requests.append({
            "stream": stream, "to": [to(i)], "subject": f"rehearsal {rid}", "text": "sesguard rehearsal",
            "idempotency_key": rid, "tags": {"rehearsal-request": rid},
        })
    return requests


def put_sends(a, queue_url, requests):
    for chunk in range(0, len(requests), 10):
        entries = [{"Id": str(i), "MessageBody": json.dumps(r)} for i, r in enumerate(requests[chunk:chunk + 10])]
        answer = a("sqs").send_message_batch(QueueUrl=queue_url, Entries=entries)
        assert not answer.get("Failed"), answer


def put_paced(a, queue_url, requests, settle, per_second=10):
    """Puts requests at an account's send rate (the emulator's SES allows 14 a second; a burst
    beyond it fails over to the next account, as it should, but this story wants it on A)."""
    for start in range(0, len(requests), per_second):
        put_sends(a, queue_url, requests[start:start + per_second])
        settle()
        time.sleep(1)


def sns_log(emulator):
    return emulator.get("/_fakecloud/sns/messages").get("messages", [])


def ses_events(emulator, topic_arn):
    """The SES event-publishing records the emulator published to a topic."""
    events = []
    for message in sns_log(emulator):
        if message.get("topicArn", message.get("TopicArn")) != topic_arn:
            continue
        body = message.get("message", message.get("Message"))
        try:
            events.append(json.loads(body))
        except (TypeError, ValueError):
            pass
    return events


def sent_requests(emulator, topic_arn):
    """Request ids of the Send events SES published on a topic: what an account really sent."""
    ids = []
    for event in ses_events(emulator, topic_arn):
        if event.get("eventType") == "Send":
            ids.extend(event.get("mail", {}).get("tags", {}).get("rehearsal-request", []))
    return ids


def alert_messages(emulator, outputs):
    return [m for m in sns_log(emulator) if m.get("topicArn", m.get("TopicArn")) == outputs["AlertTopicArn"]]


def queue_depth(a, url):
    attributes = a("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0)) + int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))


def account_state(functions, name):
    status, body = functions.admin("GET", f"/accounts/{name}/status")
    return body if status == 200 else {"error": body}


def run(name, body, done):
    """Runs `body(emulator, work)` on a fresh emulator and a work folder of its own, stops
    every process it started, prints the figures, and returns the exit status: `name` and
    what `done` says when every step held, the steps that failed otherwise."""
    started = time.time()
    work = pathlib.Path(tempfile.mkdtemp(prefix=f"sesguard-{name.replace(' ', '-')}."))
    # cargo-lambda lives in the project's virtualenv (`make tools`).
    os.environ["PATH"] = f"{ROOT / '.venv/bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"]:
        os.environ.pop(key, None)
    step("0. the emulator (fakecloud, cached by version) and the CLI")
    subprocess.run(["cargo", "build", "--quiet", "--locked", "--bins"], cwd=ROOT, check=True)
    emulator = Emulator(work)
    print(f"   fakecloud on 127.0.0.1:{emulator.port}, work in {work}")
    # Prevention's DNS: a zone of known records, never the internet's resolvers.
    dns = demo.Dns(work)
    print(f"   DNS zone events/dns/zone.txt on {os.environ['SESGUARD_DNS']}")
    try:
        body(emulator, work)
    finally:
        for functions in running:
            functions.stop()
        emulator.stop()
        dns.stop()
        if failures:
            print(f"   logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    figures["wall_seconds"] = round(time.time() - started)
    print(f"\nfigures: {json.dumps(figures)}")
    if failures:
        print(f"{name} FAILED: {len(failures)} step(s) differ from the story: {failures}")
        return 1
    print(f"{name} ok: {done}")
    return 0


def local_dns():
    """The functions' SESGUARD_DNS: the zone `run` serves (the deployed stack sets none, and
    its functions would ask the host's resolver)."""
    return {"SESGUARD_DNS": os.environ["SESGUARD_DNS"]}


def main():
    return run("rehearsal", story, "the deployed composition did every step of the story")


def story(emulator, work):
    a = emulator.session()
    admin_b = emulator.post("/_fakecloud/iam/create-admin", {"accountId": B, "userName": "admin"})
    b = emulator.session(admin_b["accessKeyId"], admin_b["secretAccessKey"])

    step("1. account B, set up as docs/deployment.md says (identity, configuration set -> SNS, the role)")
    backup_topic, trust = set_up_backup_account(emulator, b)
    expect(backup_topic.split(":")[4] == B, f"B's feedback topic {backup_topic}")

    step("2. infra/template.yaml deployed into account A (CloudFormation, SAM transform)")
    config_path = rehearsal_config(work)
    stack = deploy_stack(a, config_path, backup_topic)
    expect(stack["StackStatus"] == "CREATE_COMPLETE", f"stack {stack['StackStatus']} in {figures['deploy_seconds']} s",
           stack.get("StackStatusReason"))
    if stack["StackStatus"] != "CREATE_COMPLETE":
        return None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    resources = {r["LogicalResourceId"]: r["PhysicalResourceId"]
                 for r in a("cloudformation").describe_stack_resources(StackName=STACK)["StackResources"]}
    a("sesv2").create_email_identity(EmailIdentity="example.com")
    b("sns").subscribe(TopicArn=backup_topic, Protocol="sqs", Endpoint=outputs["FeedbackQueueArn"],
                       Attributes={"RawMessageDelivery": "false"})
    mappings = a("lambda").list_event_source_mappings()["EventSourceMappings"]
    expect(len(mappings) == 2 and not any(m.get("State") == "Enabled" for m in mappings),
           f"{len(mappings)} event source mappings, all disabled", mappings)
    # fakecloud 0.51.0 creates the mappings without their ScalingConfig (it does not keep it):
    # what was deployed is checked in the stack's own template and parameters instead.
    body = a("cloudformation").get_template(StackName=STACK)["TemplateBody"]
    body = body if isinstance(body, str) else json.dumps(body)
    parameters = {p["ParameterKey"]: p.get("ParameterValue")
                  for p in a("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0].get("Parameters", [])}
    def cap(name):  # the stack's value, or the template's default when the emulator lists none
        if parameters.get(name):
            return parameters[name]
        found = re.search(name + r":\n(?:\s+\w+:.*\n)*?\s+Default: (\d+)", body)
        return found and found.group(1)
    caps = (cap("IngestMaxConcurrency"), cap("SenderMaxConcurrency"))
    expect(body.count("MaximumConcurrency: !Ref") == 2 and caps == ("20", "100"),
           f"both mappings capped by the stack's parameters: ingest {caps[0]}, sender {caps[1]}", parameters)
    tables = [resources["SuppressionsTable"], resources["StateTable"]]
    expect(all(t in a("dynamodb").list_tables()["TableNames"] for t in tables), f"tables {tables}")

    step("3. the four functions under cargo lambda watch, with the stack's environment")
    env, names = function_environment(a, resources)
    expect(env.get("SESGUARD_STORE") == "dynamodb" and env.get("SESGUARD_CONFIG_TOML"),
           f"environment from the stack: {sorted(env)}")
    # A deployed function sees the stack's variables only: none of this shell's SESGUARD_*
    # (`make` exports SESGUARD_CONFIG and SESGUARD_STORE for the local runs).
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("SESGUARD_")}
    run_env.update(env)
    run_env.update({
        "AWS_ENDPOINT_URL": emulator.endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": REGION, "RUST_LOG": "warn",
        # A function URL's IAM auth is AWS's own: the watch server cannot check it.
        "SESGUARD_ADMIN_AUTH": "token", "SESGUARD_ADMIN_TOKEN": TOKEN,
        **local_dns(),
    })
    functions = Functions(work, run_env)
    bridge = Bridge(a("sqs"), functions.invoke, [
        (m["EventSourceArn"], names_for(m["FunctionArn"], names), m.get("BatchSize", 10)) for m in mappings
    ])
    send_queue = outputs["SendQueueUrl"]
    feedback_queue = outputs["FeedbackQueueUrl"]
    primary_topic = outputs["FeedbackTopicArn"]
    # The sender keeps a sent record as long as the queue can deliver a copy: it reads the
    # queue's settings from its environment, which must be the queue's own.
    queue = a("sqs").get_queue_attributes(QueueUrl=send_queue, AttributeNames=["All"])["Attributes"]
    deployed = (queue.get("VisibilityTimeout"), str(json.loads(queue.get("RedrivePolicy", "{}")).get("maxReceiveCount")))
    told = (env.get("SESGUARD_SEND_VISIBILITY_TIMEOUT"), env.get("SESGUARD_SEND_MAX_RECEIVES"))
    expect(told == deployed, f"the sender is told the send queue's visibility timeout and receives {told}", queue)

    def settle(seconds=120):
        """Pumps both queues until they are empty (deferred messages included)."""
        if not bridge.drain(seconds):
            expect(False, f"queues drained within {seconds} s", bridge.counts)

    step(f"4. {CLEAN_SENDS} clean sends through A (SESv2), their Send and Delivery events back through ingest")
    put_paced(a, send_queue, sends("clean", CLEAN_SENDS // 2, lambda i: f"user{i}@example.net", "transactional")
              + sends("clean", CLEAN_SENDS // 2, lambda i: f"user{i}@example.net", "verification", CLEAN_SENDS // 2),
              settle)
    outbox = emulator.get("/_fakecloud/ses/emails")["emails"]
    expect(len(outbox) == CLEAN_SENDS, f"A's SES outbox holds {len(outbox)} messages")
    sent_a = sent_requests(emulator, primary_topic)
    expect(len(sent_a) == CLEAN_SENDS, f"A's configuration set published {len(sent_a)} Send events")
    primary = account_state(functions, "primary")
    expect(primary.get("sends") == CLEAN_SENDS,
           f"sesguard counted {primary.get('sends')} sends for primary", primary)

    step("5. a bad list: bounce@simulator, one message at a time on both streams, until the guard acts")
    bounces = 0
    peak = 0.0
    transitions = []
    while bounces < 20:
        stream = "transactional" if bounces % 2 == 0 else "verification"
        put_sends(a, send_queue, sends("bounce", 1, lambda i: "bounce@simulator.amazonses.com", stream, bounces))
        bounces += 1
        settle()
        primary = account_state(functions, "primary")
        rate = primary.get("bounce_rate", 0.0)
        peak = max(peak, rate)
        seen = (primary.get("state"), tuple(primary.get("quarantined", [])))
        if not transitions or transitions[-1][1:] != seen:
            transitions.append((round(rate * 100, 2), *seen))
        print(f"   {bounces:2} bounce messages: primary {primary.get('state')} at {rate * 100:.2f} %"
              + (f", quarantined {primary.get('quarantined')}" if primary.get("quarantined") else ""))
        if primary.get("state") == "paused":
            break
    figures["primary_transitions"] = transitions
    figures["primary_pause_rate_percent"] = round(peak * 100, 2)
    expect(primary.get("state") == "paused", f"primary paused at {peak * 100:.2f} %", primary)
    expect(0 < peak < 0.10, f"the pause came before SES's 10 % ({peak * 100:.2f} %)")
    alerts = alert_messages(emulator, outputs)
    expect(len(alerts) >= 1, f"{len(alerts)} alert(s) on the alert topic")
    try:
        a("sesv2").send_email(FromEmailAddress="no-reply@example.com",
                              Destination={"ToAddresses": ["direct@example.net"]},
                              Content={"Simple": {"Subject": {"Data": "x"}, "Body": {"Text": {"Data": "x"}}}})
        expect(False, "SES refuses a direct send to A (enforce_at_ses = account)")
    except ClientError as error:
        expect(error.response["Error"]["Code"] == "SendingPausedException",
               f"SES refuses a direct send to A: {error.response['Error']['Code']}")

    step("6. the next sends go out through B (AssumeRole), B's feedback reaches sesguard")
    put_paced(a, send_queue, sends("failover", 20, lambda i: f"failover{i}@example.net", "transactional"), settle)
    backup_topic_sends = sent_requests(emulator, backup_topic)
    expect(len([r for r in backup_topic_sends if r.startswith("failover-")]) == 20,
           f"B's configuration set published {len(backup_topic_sends)} Send events")
    quota_b = b("sesv2").get_account()["SendQuota"]
    expect(int(quota_b.get("SentLast24Hours", 0)) == 20, f"B's GetAccount: {quota_b.get('SentLast24Hours')} sent")
    backup = account_state(functions, "backup")
    expect(backup.get("sends") == 20, f"sesguard counted {backup.get('sends')} sends for backup (B's feedback)", backup)

    step("7. fault: B's role no longer trusts A; a new instance cannot assume it: mail stays queued, B paused with an alert")
    broken = dict(trust, Statement=[dict(trust["Statement"][0], Principal={"AWS": "arn:aws:iam::999999999999:root"})])
    b("iam").update_assume_role_policy(RoleName="sesguard-sender", PolicyDocument=json.dumps(broken))
    # A running instance keeps the role's credentials until they expire (an hour): the fault
    # shows on the next cold start, which a restart of the functions stands for.
    alerts_before = len(alert_messages(emulator, outputs))
    functions.stop()
    functions = Functions(work, run_env)
    bridge.invoke = functions.invoke
    put_sends(a, send_queue, sends("denied", 5, lambda i: f"denied{i}@example.net", "transactional"))
    bridge.run_for(8)
    backup = account_state(functions, "backup")
    expect(backup.get("state") == "paused", f"backup {backup.get('state')} ({backup.get('cause')})", backup)
    expect(queue_depth(a, send_queue) == 5, f"{queue_depth(a, send_queue)} of 5 requests still queued")
    expect(len(alert_messages(emulator, outputs)) == alerts_before + 1, "one alert for B's pause")
    b("iam").update_assume_role_policy(RoleName="sesguard-sender", PolicyDocument=json.dumps(trust))
    status, _ = functions.admin("POST", "/accounts/backup/resume", {"reason": "role trust restored"})
    expect(status == 200, f"operator resumes backup: {status}")
    settle()
    expect(len([r for r in sent_requests(emulator, backup_topic) if r.startswith("denied-")]) == 5,
           "the 5 queued requests went out through B once it was fixed")

    step("8. an operator resumes A through the admin function URL, skipping probation")
    # Without "probation": false A would take 10 % of its traffic first; step 9 needs every
    # send to try A so that SES's refusal is seen.
    status, body = functions.admin("POST", "/accounts/primary/resume",
                                   {"reason": "list cleaned", "probation": False})
    expect(status == 200 and body.get("to") == "active", f"resume primary: {status} -> {body.get('to')}", body)
    expect(a("sesv2").get_account().get("SendingEnabled") is True, "SES sending re-enabled for A")

    step("9. fault: A paused at SES behind sesguard's back (SendingPausedException): paused here too, traffic fails over")
    a("sesv2").put_account_sending_attributes(SendingEnabled=False)
    open_stream = next(s for s in ["transactional", "verification"]
                       if s not in account_state(functions, "primary").get("quarantined", []))
    put_sends(a, send_queue, sends("sespaused", 5, lambda i: f"sespaused{i}@example.net", open_stream))
    settle()
    primary = account_state(functions, "primary")
    expect(primary.get("state") == "paused", f"primary {primary.get('state')} ({primary.get('cause')})", primary)
    expect(len([r for r in sent_requests(emulator, backup_topic) if r.startswith("sespaused-")]) == 5,
           "the 5 requests went out through B")

    step("10. accounted for: every request sent exactly once, both DLQs empty")
    all_sent = sent_requests(emulator, primary_topic) + sent_requests(emulator, backup_topic)
    duplicates = sorted({r for r in all_sent if all_sent.count(r) > 1})
    expect(not duplicates, f"no request sent twice ({len(all_sent)} sends)", duplicates[:10])
    expected = CLEAN_SENDS + bounces + 20 + 5 + 5
    expect(len(set(all_sent)) == expected, f"{len(set(all_sent))} of {expected} requests sent")
    for name, url in [("send", send_queue), ("feedback", feedback_queue),
                      ("send DLQ", outputs["SendDeadLetterQueueUrl"]), ("feedback DLQ", outputs["FeedbackDeadLetterQueueUrl"])]:
        depth = queue_depth(a, url)
        expect(depth == 0, f"{name} queue: {depth} message(s)")
    figures["sent_by_account"] = {"A": len(sent_requests(emulator, primary_topic)), "B": len(sent_requests(emulator, backup_topic))}
    figures["bridge"] = bridge.counts

    step(f"11. SES's own figure: SES reports B's bounce rate at {SES_BOUNCE_RATE * 100:.1f} % in B's CloudWatch, "
         "none of B's feedback reaches sesguard; the scheduled review pauses B on SES's figure")
    return ses_reports_the_backup(emulator, work, a, b, outputs, functions, bridge, run_env)


def scheduled_review():
    """The EventBridge event the stack's schedule sends the ingest function."""
    event = json.loads((ROOT / "events/scheduled-review.json").read_text())
    event["time"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return event


def near(value, expected):
    return isinstance(value, (int, float)) and abs(value - expected) < 1e-9


def ses_bounce_rate(entry):
    """SES's bounce rate as a history entry or an alert names it: in the view of the account
    as SES sees it (`ses`), SES's own reported figure."""
    view = entry.get("ses") or {}
    return (view.get("reported") or {}).get("bounce_rate")


def ses_reports_the_backup(emulator, work, a, b, outputs, functions, bridge, run_env):
    before = account_state(functions, "backup")
    expect(before.get("state") not in ("paused", None) and before.get("bounce_rate", 1.0) < 0.04,
           f"backup sending on its own clean window: {before.get('state')} at {before.get('bounce_rate', 0) * 100:.2f} %",
           before)
    # What SES does for an account: its reputation metric, account level (no dimensions), in
    # B's own CloudWatch and region. sesguard reads it through B's role, as it sends.
    b("cloudwatch").put_metric_data(Namespace="AWS/SES", MetricData=[{
        "MetricName": "Reputation.BounceRate", "Value": SES_BOUNCE_RATE, "Timestamp": datetime.now(timezone.utc)}])
    # A process reuses an account's figures for `[ses_metrics] cache` (5 min) and the story's
    # reviews have asked already: a new instance asks afresh, as the next one to start would.
    functions.stop()
    functions = Functions(work, run_env)
    bridge.invoke = functions.invoke
    alerts_before = len(alert_messages(emulator, outputs))
    feedback_before = queue_depth(a, outputs["FeedbackQueueUrl"])
    review = functions.invoke("ingest", scheduled_review())
    expect("invoke_error" not in review, f"scheduled review: {len(review.get('transitions', []))} transition(s)", review)
    backup = account_state(functions, "backup")
    figures["backup_after_ses_figure"] = {k: backup.get(k) for k in ("state", "cause", "bounce_rate")}
    expect(backup.get("state") == "paused", f"backup {backup.get('state')} ({backup.get('cause')}) "
           f"on SES's {SES_BOUNCE_RATE * 100:.1f} % while its own window says {backup.get('bounce_rate', 0) * 100:.2f} %",
           backup)
    expect(feedback_before == 0 and queue_depth(a, outputs["FeedbackQueueUrl"]) == 0,
           "no feedback of B's was waiting or arrived: the decision is SES's figure")
    status, history = functions.admin("GET", "/accounts/backup/history?limit=5")
    entries = history.get("entries") or [] if status == 200 else []
    latest = next((e for e in entries if e.get("cause") == "bounce_rate"), {})
    expect(latest.get("to") == "paused" and near(ses_bounce_rate(latest), SES_BOUNCE_RATE),
           f"B's history names SES's figure: -> {latest.get('to')}, SES's bounce rate {ses_bounce_rate(latest)}",
           history)
    bodies = []
    for message in alert_messages(emulator, outputs)[alerts_before:]:
        try:
            bodies.append(json.loads(message.get("message", message.get("Message"))))
        except (TypeError, ValueError):
            pass
    mine = [body for body in bodies if body.get("account") == "backup"]
    named = [body for body in mine if body.get("to") == "paused" and body.get("cause") == "bounce_rate"]
    expect(len(named) == 1 and near(ses_bounce_rate(named[0]), SES_BOUNCE_RATE),
           f"one alert for B's pause naming SES's figure ({len(named)} of {len(bodies)} new alerts)", bodies)
    # SES counts 9.5 %, sesguard none: feedback is missing, said once in the same review.
    gaps = [body for body in mine if body.get("cause") == "feedback_gap"]
    expect(len(gaps) == 1 and "feedback missing" in (gaps[0].get("note") or ""),
           f"one alert that B's feedback is missing ({len(gaps)})", bodies)
    expect(len(mine) == 2, f"no other alert for B ({len(mine)} in all)", mine)
    return functions


def names_for(function_arn, names):
    """The cargo lambda function name (the binary) for a deployed function's ARN."""
    physical = function_arn.split(":")[-1]
    for logical, name in names.items():
        if name == physical or physical.endswith(name):
            return {"IngestFunction": "ingest", "SenderFunction": "sender",
                    "WebhookFunction": "webhook", "AdminFunction": "admin"}[logical]
    raise SystemExit(f"no function for mapping {function_arn}")


if __name__ == "__main__":
    sys.exit(main())
