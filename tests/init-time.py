#!/usr/bin/env python3
"""Init time of each function: from process start to its first request for an event.

Runs each release binary (native, `cargo build --release --bins`) against a stand-in Lambda
Runtime API on 127.0.0.1 that records when `/runtime/invocation/next` is first asked for,
with the deployment's settings (DynamoDB store, SNS alerts, SES clients built; credentials and
endpoints fake: nothing is called at init). Prints the median and the worst of ROUNDS starts.
Usage: tests/init-time.py [ROUNDS]
"""

import http.server
import os
import pathlib
import statistics
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
FUNCTIONS = ["ingest", "sender", "webhook", "admin"]


class Runtime(http.server.BaseHTTPRequestHandler):
    first_poll = None

    def do_GET(self):  # noqa: N802 (the standard library's name)
        if "/runtime/invocation/next" in self.path and Runtime.first_poll is None:
            Runtime.first_poll = time.perf_counter()
        # Hold the poll: the function is ready, which is all that is measured.
        time.sleep(5)
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


def start_once(binary, port):
    Runtime.first_poll = None
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": binary.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "init-time",
        "AWS_SECRET_ACCESS_KEY": "init-time",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "SESGUARD_STORE": "dynamodb",
        "SESGUARD_CONFIG": str(ROOT / "infra/sesguard.example.toml"),
        "SESGUARD_ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:111111111111:sesguard-alerts",
        "SESGUARD_WEBHOOK_TOPICS": "arn:aws:sns:us-east-1:111111111111:ses-feedback",
        "SESGUARD_ADMIN_AUTH": "iam",
        "RUST_LOG": "warn",
    })
    started = time.perf_counter()
    process = subprocess.Popen([str(binary)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while Runtime.first_poll is None:
        if process.poll() is not None:
            raise SystemExit(f"{binary.name} exited: {process.stderr.read().decode()}")
        if time.perf_counter() - started > 10:
            raise SystemExit(f"{binary.name} did not poll within 10 s")
        time.sleep(0.0005)
    elapsed = Runtime.first_poll - started
    process.kill()
    process.wait()
    return elapsed


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    print(f"{'function':<10} {'median':>9} {'worst':>9}  ({rounds} starts each)")
    for name in FUNCTIONS:
        binary = ROOT / "target/release" / name
        times = [start_once(binary, port) for _ in range(rounds)]
        print(f"{name:<10} {statistics.median(times) * 1000:>7.1f}ms {max(times) * 1000:>7.1f}ms")
    server.shutdown()


if __name__ == "__main__":
    main()
