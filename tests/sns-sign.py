#!/usr/bin/env python3
"""Signs SNS envelopes for the webhook's smoke test, as SNS would (SignatureVersion 2,
SHA256withRSA over the documented string to sign), with a key and self-signed certificate it
generates. Test material only.

Usage: sns-sign.py CERT_OUT TOPIC_ARN MESSAGE_FILE > envelope.json
"""
import base64
import datetime
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


def main() -> None:
    cert_out, topic, message_file = sys.argv[1:4]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with open(cert_out, "wb") as out:
        out.write(cert.public_bytes(serialization.Encoding.PEM))
    region = topic.split(":")[3]
    envelope = {
        "Type": "Notification",
        "MessageId": "smoke-" + now.strftime("%H%M%S%f"),
        "TopicArn": topic,
        "Message": open(message_file).read(),
        "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "SignatureVersion": "2",
        "SigningCertURL": f"https://sns.{region}.amazonaws.com/SimpleNotificationService-smoke.pem",
    }
    fields = ["Message", "MessageId", "Timestamp", "TopicArn", "Type"]
    to_sign = "".join(f"{field}\n{envelope[field]}\n" for field in fields)
    signature = key.sign(to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
    envelope["Signature"] = base64.b64encode(signature).decode()
    json.dump(envelope, sys.stdout)


if __name__ == "__main__":
    main()
