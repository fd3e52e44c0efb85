"""The four functions as deployed, for `make rehearsal`.

Each function runs in a `cargo lambda watch` of its own, with its own environment only (read
back from the emulator's Lambda API, as the stack set it), its own role's credentials (from
STS AssumeRole in the emulator), and AWS_ENDPOINT_URL pointing at its own port of the IAM
audit's recording proxy. What the emulator cannot play is played here, and said so:

- the admin function's URL has `AuthType: AWS_IAM`: AWS verifies the caller's SigV4 signature
  before the function runs and hands it the caller in `requestContext.authorizer.iam`.
  `AdminFront` does the same on 127.0.0.1 (the signature recomputed with botocore from the
  caller's secret, the request refused with 403 otherwise) and invokes the function with the
  function URL's event (payload 2.0);
- a role trusts `lambda.amazonaws.com` only, and the emulator is not the Lambda service: to
  get each role's credentials the rehearsal adds its own account to the role's trust policy.
  The role's permissions are untouched.
"""

import hmac
import json
import os
import re
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import http.server
from datetime import datetime, timezone

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

FUNCTIONS = {"IngestFunction": "ingest", "SenderFunction": "sender", "WebhookFunction": "webhook",
             "AdminFunction": "admin"}


def role_credentials(a, role_arn, account, session):
    """Temporary credentials of a function's role, as Lambda hands them to the function."""
    iam = a("iam")
    name = role_arn.split("/")[-1]
    trust = iam.get_role(RoleName=name)["Role"]["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    rehearsal = {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"}, "Action": "sts:AssumeRole"}
    if rehearsal not in trust["Statement"]:
        trust["Statement"].append(rehearsal)
        iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(trust))
    return a("sts").assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]


def stop_process(process):
    """Stops a process started in a session of its own, and everything it started."""
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)


class Watch:
    """`cargo lambda watch` on a port of its own, with `env` as its whole environment."""

    def __init__(self, root, work, label, env, wait_for_port, free_port):
        self.port = free_port()
        self.log_path = work / f"watch-{label}-{time.time_ns()}.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            ["cargo", "lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port)],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for_port(self.port, self.process, self.log_path, f"cargo lambda watch ({label})")

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

    def stop(self):
        stop_process(self.process)
        self.log.close()


def sigv4_caller(method, url, headers, body, callers, region, now=None):
    """The caller of a SigV4-signed request (service `lambda`), as a function URL with
    `AWS_IAM` auth verifies it: the signature recomputed from the caller's secret, at most five
    minutes old. None when it does not verify."""
    header = {k.lower(): v for k, v in headers.items()}
    found = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/lambda/aws4_request, "
                         r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", header.get("authorization", ""))
    if not found or found.group(1) not in callers or found.group(3) != region:
        return None
    key, _, _, signed, signature = found.groups()
    stamp = header.get("x-amz-date", "")
    try:
        at = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    if abs(((now or datetime.now(timezone.utc)) - at).total_seconds()) > 300:
        return None
    secret, caller = callers[key]
    request = AWSRequest(method=method, url=url, data=body,
                         headers={h: header[h] for h in signed.split(";") if h in header})
    signer = SigV4Auth(Credentials(key, secret), "lambda", region)
    request.context["timestamp"] = stamp
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    return dict(caller, accessKey=key) if hmac.compare_digest(expected, signature) else None


def sign(method, url, body, key, secret, region):
    """A request signed as an operator's AWS CLI would sign a function URL call."""
    request = AWSRequest(method=method, url=url, data=body,
                         headers={"Content-Type": "application/json"} if body else {})
    SigV4Auth(Credentials(key, secret), "lambda", region).add_auth(request)
    return dict(request.headers.items())


class AdminFront:
    """The admin function's URL with `AuthType: AWS_IAM`: SigV4 verified, then the function
    invoked with the function URL's event carrying the verified caller."""

    def __init__(self, watch, callers, region, account):
        front = self
        self.watch = watch
        self.callers = callers
        self.region = region
        self.account = account
        self.refused = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                url = f"http://127.0.0.1:{front.port}{self.path}"
                caller = sigv4_caller(self.command, url, dict(self.headers.items()), body, front.callers, front.region)
                if caller is None:
                    front.refused += 1
                    return self.answer(403, {"Message": "Forbidden"})
                event = front.event(self.command, self.path, dict(self.headers.items()), body, caller)
                answer = front.watch.invoke("admin", event)
                if "invoke_error" in answer:
                    return self.answer(502, answer)
                text = answer.get("body") or ""
                self.answer(answer.get("statusCode", 502), text, answer.get("headers", {}))

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = serve

            def answer(self, status, body, headers=None):
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(status)
                for key, value in (headers or {"content-type": "application/json"}).items():
                    if key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def event(self, method, path, headers, body, caller):
        """A function URL's event (payload format 2.0) for a verified caller."""
        raw_path, _, query = path.partition("?")
        now = datetime.now(timezone.utc)
        return {
            "version": "2.0", "routeKey": "$default", "rawPath": raw_path, "rawQueryString": query,
            "headers": {k.lower(): v for k, v in headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in urllib.parse.parse_qs(query).items()} or None,
            "requestContext": {
                "accountId": self.account, "apiId": "rehearsal", "domainName": "rehearsal.lambda-url.on.aws",
                "domainPrefix": "rehearsal", "requestId": f"rehearsal-{time.time_ns()}", "routeKey": "$default",
                "stage": "$default", "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now.timestamp() * 1000),
                "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1",
                         "userAgent": headers.get("User-Agent", "rehearsal")},
                "authorizer": {"iam": caller},
            },
            "body": body.decode() if body else None, "isBase64Encoded": False,
        }

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Fleet:
    """The four functions, each in its own `cargo lambda watch`, and the admin URL's front."""

    def __init__(self, root, work, envs, operator, region, account, wait_for_port, free_port):
        self.args = (root, work, envs, operator, region, account, wait_for_port, free_port)
        self.watches = {name: Watch(root, work, name, env, wait_for_port, free_port) for name, env in envs.items()}
        key, secret, arn = operator
        self.operator = (key, secret)
        caller = {"accountId": account, "callerId": f"AIDA{key[4:]}", "userArn": arn, "userId": f"AIDA{key[4:]}"}
        self.front = AdminFront(self.watches["admin"], {key: (secret, caller)}, region, account)
        self.region = region

    def invoke(self, function, event, timeout=600):
        return self.watches[function].invoke(function, event, timeout)

    @property
    def webhook_url(self):
        return f"http://127.0.0.1:{self.watches['webhook'].port}/lambda-url/webhook"

    def admin(self, method, path, body=None, signed=True):
        url = f"http://127.0.0.1:{self.front.port}{path}"
        data = json.dumps(body).encode() if body is not None else None
        headers = sign(method, url, data, *self.operator, self.region) if signed else {}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def restart(self):
        """New instances of every function (a cold start)."""
        self.stop()
        self.__init__(*self.args)
        return self

    def stop(self):
        self.front.stop()
        for watch in self.watches.values():
            watch.stop()
