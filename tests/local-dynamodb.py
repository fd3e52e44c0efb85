#!/usr/bin/env python3
"""A local AWS-compatible server for sesguard's tests: moto's own WSGI app, serving one
request at a time, and speaking CloudWatch's Smithy RPC v2 CBOR as well as its JSON.

Why not plain `moto_server`: moto applies TransactWriteItems by deep-copying the tables and
restoring that copy when the transaction is cancelled. Under its threaded server, a cancelled
transaction therefore erases whatever a concurrent transaction committed meanwhile, which
real DynamoDB never does (each transaction is atomic and isolated). Serialising requests
restores that guarantee; concurrent clients still interleave request by request.

Why the CBOR shim: aws-sdk-cloudwatch speaks only `rpcv2Cbor` (`POST /service/
GraniteServiceVersion20100801/operation/OP`, CBOR bodies), which moto 5.2 does not serve
(it answers 404); moto serves CloudWatch's `awsJson1_0`, as botocore speaks it. The shim
transcodes such a request into that JSON protocol and the answer back, typed by botocore's own
CloudWatch model (timestamps as CBOR tag 1, doubles as floats). Moto keeps the metrics and
computes the statistics; only the encoding is translated. Anything else goes to moto unchanged.

Usage: local-dynamodb.py PORT   (binds 127.0.0.1 only)
"""
import base64
import datetime
import gzip
import io
import json
import re
import sys
import threading

import botocore.session
import cbor2
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

CBOR_PATH = re.compile(r"/service/(GraniteServiceVersion20100801)/operation/(\w+)")


def to_json(value):
    """A decoded CBOR request as the JSON protocol carries it (timestamps as epoch seconds)."""
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    return value


def epoch(value):
    if isinstance(value, str):
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return float(value)


def to_cbor(value, shape):
    """A JSON answer as rpcv2Cbor carries it, member types from the model."""
    if value is None or shape is None:
        return value
    kind = shape.type_name
    if kind == "structure":
        return {k: to_cbor(v, shape.members.get(k)) for k, v in value.items()}
    if kind == "list":
        return [to_cbor(v, shape.member) for v in value]
    if kind == "map":
        return {k: to_cbor(v, shape.value) for k, v in value.items()}
    if kind == "timestamp":
        return cbor2.CBORTag(1, epoch(value))
    if kind in ("double", "float"):
        return float(value)
    if kind in ("integer", "long"):
        return int(value)
    if kind == "blob":
        return base64.b64decode(value)
    return value


def rpc_v2_cbor(app):
    model = botocore.session.get_session().get_service_model("cloudwatch")

    def serve(environ, start_response):
        match = CBOR_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if not match or environ.get("HTTP_SMITHY_PROTOCOL") != "rpc-v2-cbor":
            return app(environ, start_response)
        service, name = match.groups()
        operation = model.operation_model(name)
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if environ.get("HTTP_CONTENT_ENCODING") == "gzip":
            body = gzip.decompress(body)
        request = json.dumps(to_json(cbor2.loads(body)) if body else {}).encode()
        inner = dict(environ)
        inner.pop("HTTP_CONTENT_ENCODING", None)
        inner.update(
            {
                "PATH_INFO": "/",
                "CONTENT_TYPE": "application/x-amz-json-1.0",
                "CONTENT_LENGTH": str(len(request)),
                "HTTP_X_AMZ_TARGET": f"{service}.{name}",
                "wsgi.input": io.BytesIO(request),
            }
        )
        answered = {}

        def keep(status, headers, exc_info=None):
            answered.update(status=status, headers=headers)

        text = b"".join(app(inner, keep))
        document = json.loads(text) if text.strip() else {}
        status = answered["status"]
        if status.startswith("2"):
            payload = to_cbor(document, operation.output_shape) or {}
        else:
            payload = {
                "__type": document.get("__type", "InternalFailure"),
                "message": document.get("message") or document.get("Message") or "",
            }
        encoded = cbor2.dumps(payload)
        headers = [
            ("Content-Type", "application/cbor"),
            ("smithy-protocol", "rpc-v2-cbor"),
            ("Content-Length", str(len(encoded))),
        ]
        headers += [(k, v) for k, v in answered["headers"] if k.lower() == "x-amzn-query-error"]
        start_response(status, headers)
        return [encoded]

    return serve


def main() -> None:
    port = int(sys.argv[1])
    app = rpc_v2_cbor(DomainDispatcherApplication(create_backend_app))
    lock = threading.Lock()

    def one_at_a_time(environ, start_response):
        with lock:
            return list(app(environ, start_response))

    run_simple("127.0.0.1", port, one_at_a_time, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
