"""The rehearsal's IAM audit: what the emulator does not check.

fakecloud enforces no IAM by default, so a permission missing from a function's role would show
only in production. Here every AWS request each function makes in `make rehearsal` is recorded
by a logging proxy in front of the emulator (one port per function), mapped to the IAM actions
and resources AWS authorizes it as (a TransactWriteItems to the action of each of its items, a
Query on an index to the index's ARN, SESv2's REST paths to their actions, ...), and evaluated
against the policies the call would run under:

- a function's own calls: its role as infra/template.yaml makes it, expanded by AWS's own SAM
  translator (aws-sam-translator, the library `sam` and CloudFormation use) and its intrinsics
  (Ref, Fn::GetAtt, Fn::Sub, Fn::If, Fn::Join) resolved against the deployed stack;
- calls made with the backup role's credentials: the role policy docs/deployment.md tells a
  user to create (read from that page, the same JSON the rehearsal creates the role with).

The evaluator is moto's IAM policy evaluator (moto.iam.access_control.IAMPolicy: Allow/Deny
with Deny first, Action/NotAction, Resource wildcards, conditions). The policies' strings are
escaped first so that only `*` and `?` are wildcards. A request the audit cannot map fails it
too: an unmapped call is an unaudited one.
"""

import http.client
import http.server
import json
import os
import re
import threading
import urllib.parse

from moto.iam.access_control import IAMPolicy, PermissionResult

# AWS's managed policies that SAM attaches to the functions' roles. Their documents as AWS
# publishes them: the audit weighs them like any other policy.
MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": "*"}]},
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                                      "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": "*"}]},
}

# Requests no IAM policy governs.
UNAUTHORIZED = {("sts", "GetCallerIdentity")}


class Call:
    """One AWS request as the proxy saw it."""

    def __init__(self, function, method, path, headers, body, status):
        self.function = function
        self.method = method
        self.path = path
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body
        self.status = status
        scope = re.search(r"Credential=([^/]+)/\d+/([^/]+)/([^/]+)/aws4_request", self.headers.get("authorization", ""))
        self.key, self.region, self.service = scope.groups() if scope else (None, None, None)


class Recorder:
    """A logging proxy in front of the emulator: `listen(function)` gives the port that
    function's AWS_ENDPOINT_URL points at; every request through it is kept in `calls`, and the
    keys AssumeRole hands out are noted with the role they belong to."""

    def __init__(self, upstream_port):
        self.upstream = upstream_port
        self.calls = []
        self.assumed = {}  # access key id -> role ARN
        self.lock = threading.Lock()
        self.servers = []

    def listen(self, function):
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                connection = http.client.HTTPConnection("127.0.0.1", recorder.upstream, timeout=120)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.read()
                connection.close()
                call = Call(function, self.command, self.path, dict(self.headers.items()), body, response.status)
                recorder.note(call, answer)
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length", "keep-alive"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = forward

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.servers.append(server)
        return server.server_address[1]

    def note(self, call, answer):
        with self.lock:
            self.calls.append(call)
            if call.service == "sts" and b"AssumeRole" in call.body and call.status == 200:
                key = re.search(rb"<AccessKeyId>([^<]+)</AccessKeyId>", answer)
                role = urllib.parse.parse_qs(call.body.decode()).get("RoleArn", [None])[0]
                if key and role:
                    self.assumed[key.group(1).decode()] = role

    def stop(self):
        for server in self.servers:
            server.shutdown()
            server.server_close()


def sesv2_action(method, path, body, arn):
    """SESv2's REST paths as IAM actions and resources."""
    routes = [
        ("POST", r"/v2/email/outbound-emails", "SendEmail"),
        ("GET", r"/v2/email/account", "GetAccount"),
        ("PUT", r"/v2/email/account/sending", "PutAccountSendingAttributes"),
        ("PUT", r"/v2/email/configuration-sets/([^/]+)/sending", "PutConfigurationSetSendingOptions"),
        ("GET", r"/v2/email/suppression/addresses", "ListSuppressedDestinations"),
        ("PUT", r"/v2/email/suppression/addresses", "PutSuppressedDestination"),
        ("GET", r"/v2/email/suppression/addresses/([^/]+)", "GetSuppressedDestination"),
        ("DELETE", r"/v2/email/suppression/addresses/([^/]+)", "DeleteSuppressedDestination"),
        ("POST", r"/v2/email/metrics/batch", "BatchGetMetricData"),
    ]
    path = urllib.parse.unquote(path.split("?")[0])
    for verb, pattern, action in routes:
        found = re.fullmatch(pattern, path)
        if verb != method or not found:
            continue
        if action == "SendEmail":
            sent = json.loads(body or b"{}")
            domain = (sent.get("FromEmailAddress") or "").rsplit("@", 1)[-1].rstrip(">")
            resources = [arn("ses", f"identity/{domain}")]
            if sent.get("ConfigurationSetName"):
                resources.append(arn("ses", f"configuration-set/{sent['ConfigurationSetName']}"))
            return [(f"ses:{action}", r) for r in resources]
        if action == "PutConfigurationSetSendingOptions":
            return [(f"ses:{action}", arn("ses", f"configuration-set/{found.group(1)}"))]
        return [(f"ses:{action}", "*")]
    return None


def dynamodb_actions(operation, body, arn):
    """A DynamoDB request as the actions of its items, on their tables (or index)."""
    table = lambda name, index=None: arn("dynamodb", f"table/{name}" + (f"/index/{index}" if index else ""))  # noqa: E731
    if operation == "TransactWriteItems":
        kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
        return [(f"dynamodb:{kinds[kind]}", table(item[kind]["TableName"]))
                for item in body["TransactItems"] for kind in item]
    if operation == "TransactGetItems":
        return [("dynamodb:GetItem", table(item["Get"]["TableName"])) for item in body["TransactItems"]]
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [(f"dynamodb:{operation}", table(name)) for name in body["RequestItems"]]
    if "TableName" in body:
        return [(f"dynamodb:{operation}", table(body["TableName"], body.get("IndexName")))]
    return [(f"dynamodb:{operation}", "*")]


def actions_of(call, account, region):
    """The (action, resource) pairs AWS authorizes `call` as; None when it cannot be mapped."""
    arn = lambda service, resource: f"arn:aws:{service}:{region}:{account}:{resource}"  # noqa: E731
    target = call.headers.get("x-amz-target", "")
    form = urllib.parse.parse_qs(call.body.decode(errors="replace")) if call.headers.get(
        "content-type", "").startswith("application/x-www-form-urlencoded") else {}
    query_action = form.get("Action", [None])[0]
    if call.service == "dynamodb" and target:
        return dynamodb_actions(target.split(".")[-1], json.loads(call.body or b"{}"), arn)
    if call.service == "sqs":
        operation = target.split(".")[-1] if target else query_action
        body = json.loads(call.body or b"{}") if target else {k: v[0] for k, v in form.items()}
        url = body.get("QueueUrl", "")
        queue = url.rstrip("/").split("/")
        return [(f"sqs:{operation.replace('Batch', '')}", arn("sqs", queue[-1]).replace(f":{account}:", f":{queue[-2]}:"))]
    if call.service == "sns" and query_action:
        topic = form.get("TopicArn", form.get("TargetArn", ["*"]))[0]
        return [(f"sns:{query_action}", topic)]
    if call.service == "sts" and query_action:
        if ("sts", query_action) in UNAUTHORIZED:
            return []
        return [(f"sts:{query_action}", form.get("RoleArn", ["*"])[0])]
    if call.service == "ses":
        return sesv2_action(call.method, call.path, call.body, arn)
    if call.service == "monitoring":
        operation = target.split(".")[-1] if target else query_action
        cbor = re.search(r"/operation/(\w+)", call.path)
        operation = operation or (cbor and cbor.group(1))
        return [(f"cloudwatch:{operation}", "*")] if operation else None
    return None


# --- the policies -------------------------------------------------------------------------------

def expand_template(template_text, parameters, region, account):
    """infra/template.yaml through AWS's SAM translator: the CloudFormation resources SAM makes,
    its policy templates and conditional policies expanded, intrinsics left in place."""
    from samtranslator.translator.transform import transform
    from samtranslator.yaml_helper import yaml_parse

    class ManagedPolicies:
        def load(self):
            return {arn.rsplit("/", 1)[-1]: arn for arn in MANAGED}

    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    # SAM checks CodeUri's form; the audit is about policies, not code.
    text = template_text.replace("    CodeUri: ..\n", "    CodeUri: s3://audit/functions.zip\n")
    values = dict(parameters, **{"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws"})
    return transform(yaml_parse(text), values, ManagedPolicies())


class Resolver:
    """Intrinsic functions resolved against the deployed stack: its parameters, and each
    resource's physical id and ARN as the emulator reports them."""

    def __init__(self, template, parameters, physical, arns, region, account):
        self.template = template
        self.parameters = parameters
        self.physical = physical
        self.arns = arns
        self.region = region
        self.account = account

    def ref(self, name):
        pseudo = {"AWS::Region": self.region, "AWS::AccountId": self.account, "AWS::Partition": "aws",
                  "AWS::NoValue": None}
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            declared = self.template.get("Parameters", {}).get(name, {})
            value = self.parameters[name]
            if declared.get("Type") == "CommaDelimitedList":
                return [v for v in value.split(",")] if value else [""]
            return value
        return self.physical[name]

    def condition(self, name):
        return self.value(self.template["Conditions"][name])

    def value(self, node):
        if isinstance(node, list):
            return [v for v in (self.value(n) for n in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                assert attribute == "Arn", f"Fn::GetAtt {logical}.{attribute}: only Arn is resolved"
                return self.arns[logical]
            if key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                return re.sub(r"\$\{([^}]+)\}", lambda m: self.sub(m.group(1)), text)
            if key == "Fn::Join":
                separator, parts = arg
                values = self.value(parts)
                return separator.join(v for part in values for v in (part if isinstance(part, list) else [part]))
            if key == "Fn::Split":
                separator, text = arg
                return self.value(text).split(separator)
            if key == "Fn::If":
                name, yes, no = arg
                return self.value(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                left, right = self.value(arg)
                return left == right
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(a) for a in arg)
            if key == "Fn::Or":
                return any(self.value(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
        return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not None}

    def sub(self, name):
        if "." in name:
            logical, attribute = name.split(".", 1)
            assert attribute == "Arn", f"${{{name}}}: only Arn is resolved"
            return self.arns[logical]
        value = self.ref(name)
        return ",".join(value) if isinstance(value, list) else value


def role_policies(expanded, resolver, function_logical):
    """A function's role as SAM makes it: its inline policy documents (the template's own) and
    the AWS managed ones SAM attaches, apart (only the template's are weighed for least
    privilege)."""
    resources = expanded["Resources"]
    role_ref = resources[function_logical]["Properties"]["Role"]
    role = resources[role_ref["Fn::GetAtt"][0]]["Properties"]
    inline = [p["PolicyDocument"] for p in resolver.value(role.get("Policies", []))]
    managed = []
    for arn in resolver.value(role.get("ManagedPolicyArns", [])):
        assert arn in MANAGED, f"{function_logical}'s role has managed policy {arn}: add its document to MANAGED"
        managed.append(MANAGED[arn])
    return inline, managed


def evaluable(document):
    """A policy document as moto's evaluator takes it: actions lower-cased (IAM's actions are
    case-insensitive), every string escaped so that only `*` and `?` are wildcards."""
    def pattern(text, lower=False):
        text = text.lower() if lower else text
        return re.escape(text).replace(r"\*", "*").replace(r"\?", ".")

    statements = document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
    out = []
    for statement in statements:
        statement = dict(statement)
        for key in ("Action", "NotAction", "Resource", "NotResource"):
            if key in statement:
                values = statement[key] if isinstance(statement[key], list) else [statement[key]]
                statement[key] = [pattern(v, lower=key.endswith("Action")) for v in values]
        out.append(statement)
    return IAMPolicy(json.dumps({"Version": "2012-10-17", "Statement": out}))


def granted_actions(documents):
    actions = set()
    for document in documents:
        for statement in document["Statement"]:
            if statement.get("Effect") == "Allow" and "Action" in statement:
                values = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                actions.update(values)
    return actions


def decide(policies, action, resource):
    """`allowed`, `denied` (an explicit Deny) or `implicit` (no statement allows it)."""
    results = [p.is_action_permitted(action.lower(), resource) for p in policies]
    if PermissionResult.DENIED in results:
        return "denied"
    return "allowed" if PermissionResult.PERMITTED in results else "implicit"


def audit(calls, assumed, principals, own_keys):
    """Every call evaluated. `principals`: name -> (account, inline documents, managed
    documents), with the functions' names and `backup-role`; `own_keys`: a function's access
    key id -> its name. Returns the report: calls and actions per principal, denials, unmapped
    calls, and the inline grants no call used."""
    evaluators = {name: [evaluable(d) for d in inline + managed]
                  for name, (_, inline, managed) in principals.items()}
    used = {name: {} for name in principals}
    requests = {name: 0 for name in principals}
    denied, unmapped, strangers = [], [], []
    for call in calls:
        if call.key in own_keys and own_keys[call.key] == call.function:
            principal = call.function
        elif call.key in assumed:
            principal = "backup-role"
        else:
            strangers.append((call.function, call.key, call.service, call.path))
            continue
        requests[principal] += 1
        account = principals[principal][0]
        pairs = actions_of(call, account, call.region)
        if pairs is None:
            unmapped.append((call.function, call.service, call.method, call.path, call.headers.get("x-amz-target")))
            continue
        for action, resource in pairs:
            used[principal][action] = used[principal].get(action, 0) + 1
            verdict = decide(evaluators[principal], action, resource)
            if verdict != "allowed":
                denied.append((call.function, principal, action, resource, verdict))
    unused = {}
    for name, (_, inline, _) in principals.items():
        granted = granted_actions(inline)
        unused[name] = sorted(a for a in granted if not any(
            decide([evaluable({"Statement": [{"Effect": "Allow", "Action": a, "Resource": "*"}]})], u, "*") == "allowed"
            for u in used[name]))
    return {"used": used, "requests": requests, "denied": sorted(set(denied)), "unmapped": unmapped,
            "strangers": strangers, "unused": unused, "calls": len(calls)}
