"""A fault-injecting proxy in front of the emulator's SESv2, for the rehearsal's wire faults.

The functions reach SESv2 through it (`AWS_ENDPOINT_URL_SESV2`); every other service goes to
the emulator directly. It forwards each request as it came, one request per connection, until
it is told to fail the next `SendEmail` calls in one of these ways:

- `lost_answer`: forward the request (SES accepts the message), then close the connection
  without answering;
- `lost_request`: close the connection without forwarding (SES never sees the message);
- `slow_answer`: forward the request, then hold the answer past the sender's send timeout;
- `internal_error`: answer 500 without forwarding;
- `throttled`: answer 429 `TooManyRequestsException` without forwarding;
- `killed_after_accept`: forward the request (SES accepts), then kill the functions (the
  proxy's `on_kill`) before the answer reaches the sender: an instance dying mid-batch.

The faults of a plan meet the next SendEmail requests in order; other operations always pass.
"""

import collections
import http.client
import json
import socket
import socketserver
import threading
import time

SEND_EMAIL = "/v2/email/outbound-emails"
FAULTS = ("lost_answer", "lost_request", "slow_answer", "internal_error", "throttled", "killed_after_accept")
ANSWERS = {
    "internal_error": (500, "InternalFailure"),
    "throttled": (429, "TooManyRequestsException"),
}


def read_request(stream):
    """The request line, headers (as a list) and body read from `stream`, or None at its end."""
    line = stream.readline()
    if not line:
        return None
    headers = []
    length = 0
    while True:
        header = stream.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = stream.read(length) if length else b""
    return line.decode("latin-1").split(" "), headers, body


def tag_of(body, name="rehearsal-request"):
    """The value of a SendEmail request's tag `name`, if it has one."""
    try:
        tags = json.loads(body).get("EmailTags", [])
    except ValueError:
        return None
    return next((t.get("Value") for t in tags if t.get("Name") == name), None)


class Proxy:
    """The proxy on a free port of 127.0.0.1, forwarding to `upstream` (host, port)."""

    def __init__(self, upstream, send_timeout=10, on_kill=lambda: None):
        self.upstream = upstream
        self.on_kill = on_kill
        self.send_timeout = send_timeout
        self.lock = threading.Lock()
        self.plan = collections.deque()
        self.counts = {fault: 0 for fault in FAULTS}
        self.counts["forwarded"] = 0
        self.met = {fault: [] for fault in FAULTS}  # the request tags each fault met
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                proxy.serve(self.connection, self.rfile, self.wfile)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def fail(self, plan):
        """Fails the next SendEmail requests as `plan` says: (fault, how many) in order."""
        with self.lock:
            for fault, count in plan:
                assert fault in FAULTS, fault
                self.plan.extend([fault] * count)

    def pending(self):
        """Faults of the plan not met yet."""
        with self.lock:
            return len(self.plan)

    def take_fault(self, path, body):
        with self.lock:
            if not path.startswith(SEND_EMAIL) or not self.plan:
                return None
            fault = self.plan.popleft()
            self.counts[fault] += 1
            self.met[fault].append(tag_of(body))
            return fault

    def forward(self, method, path, headers, body):
        connection = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            connection.close()

    def serve(self, raw, reader, writer):
        request = read_request(reader)
        if request is None:
            return
        (method, path, _), headers, body = request
        fault = self.take_fault(path, body)
        if fault == "lost_request":
            raw.close()
            return
        if fault in ANSWERS:
            status, code = ANSWERS[fault]
            payload = ('{"message":"injected by the rehearsal"}').encode()
            writer.write(f"HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\n"
                         f"x-amzn-ErrorType: {code}\r\nContent-Length: {len(payload)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + payload)
            writer.flush()
            return
        status, reason, answer_headers, answer = self.forward(method, path, headers, body)
        with self.lock:
            self.counts["forwarded"] += 1
        if fault == "killed_after_accept":
            self.on_kill()
            raw.close()
            return
        if fault == "lost_answer":
            # SES has the message; the sender hears nothing but a closed connection.
            raw.shutdown(socket.SHUT_RDWR)
            raw.close()
            return
        if fault == "slow_answer":
            time.sleep(self.send_timeout + 2)
        lines = [f"HTTP/1.1 {status} {reason}"]
        for name, value in answer_headers:
            if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                lines.append(f"{name}: {value}")
        lines += [f"Content-Length: {len(answer)}", "Connection: close", "", ""]
        try:
            writer.write("\r\n".join(lines).encode("latin-1") + answer)
            writer.flush()
        except OSError:
            pass  # the sender gave up waiting (slow_answer)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
