"""Schemathesis hooks for `make api-check`.

`cargo lambda watch` turns a function URL request into the Lambda event with a text body for a
text content type such as application/json, and answers 500 itself, before the function runs,
when those bytes are not UTF-8. AWS passes such a body base64-encoded, and the admin function
answers 400 ("the body is not UTF-8 text"): tested in tests/integration/admin.rs
(`bodies_that_are_not_utf8_json_or_an_object_are_refused_by_name`). So bodies that are not
UTF-8 are not sent through the emulator; nothing else is filtered.
"""

import schemathesis


@schemathesis.hook
def filter_body(ctx, body):
    if isinstance(body, (bytes, bytearray)):
        try:
            bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True
