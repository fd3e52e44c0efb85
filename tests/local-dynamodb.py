#!/usr/bin/env python3
"""A local DynamoDB-compatible server for sesguard's tests: moto's own WSGI app, serving one
request at a time.

Why not plain `moto_server`: moto applies TransactWriteItems by deep-copying the tables and
restoring that copy when the transaction is cancelled. Under its threaded server, a cancelled
transaction therefore erases whatever a concurrent transaction committed meanwhile, which
real DynamoDB never does (each transaction is atomic and isolated). Serialising requests
restores that guarantee; concurrent clients still interleave request by request.

Usage: local-dynamodb.py PORT   (binds 127.0.0.1 only)
"""
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def main() -> None:
    port = int(sys.argv[1])
    app = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    run_simple("127.0.0.1", port, one_at_a_time, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
