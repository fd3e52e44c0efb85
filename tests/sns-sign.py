#!/usr/bin/env python3
"""Signs SNS envelopes as SNS would (SignatureVersion 2, SHA256withRSA over the documented
string to sign), with a key and self-signed certificate it generates. Test material only.

Usage:
  sns-sign.py CERT_OUT TOPIC_ARN MESSAGE_FILE > envelope.json
      one envelope around MESSAGE_FILE (the webhook's smoke test)
  sns-sign.py --bulk N --forged F CERT_OUT TOPIC_ARN OUT_DIR
      N hard-bounce envelopes, one distinct recipient each, one per file in OUT_DIR
      (bounce-00000.json ...), then F forged ones (forged-0.json ...: signed, then altered);
      for `make bench-ingest`
"""
import argparse
import base64
import datetime
import json
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID


class Signer:
    def __init__(self, cert_out: str, topic: str) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        self.now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - datetime.timedelta(days=1))
            .not_valid_after(self.now + datetime.timedelta(days=1))
            .sign(self.key, hashes.SHA256())
        )
        with open(cert_out, "wb") as out:
            out.write(cert.public_bytes(serialization.Encoding.PEM))
        self.topic = topic
        self.region = topic.split(":")[3]

    def envelope(self, message_id: str, message: str) -> dict:
        now = self.now
        envelope = {
            "Type": "Notification",
            "MessageId": message_id,
            "TopicArn": self.topic,
            "Message": message,
            "Timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
            "SignatureVersion": "2",
            "SigningCertURL": f"https://sns.{self.region}.amazonaws.com/SimpleNotificationService-smoke.pem",
        }
        fields = ["Message", "MessageId", "Timestamp", "TopicArn", "Type"]
        to_sign = "".join(f"{field}\n{envelope[field]}\n" for field in fields)
        signature = self.key.sign(to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())
        envelope["Signature"] = base64.b64encode(signature).decode()
        return envelope


def bounce(i: int, sent: str) -> str:
    return json.dumps({
        "notificationType": "Bounce",
        "mail": {"messageId": f"bulk-{i}", "timestamp": sent, "source": "no-reply@example.com",
                 "sourceArn": "arn:aws:ses:us-east-1:111111111111:identity/example.com",
                 "sendingAccountId": "111111111111", "destination": [f"bulk{i}@example.com"],
                 "tags": {"sesguard-account": ["primary"], "sesguard-stream": ["bulk"]}},
        "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "feedbackId": f"fb-bulk-{i}",
                   "timestamp": sent, "bouncedRecipients": [{"emailAddress": f"bulk{i}@example.com",
                                                             "status": "5.1.1", "action": "failed"}]},
    })


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bulk", type=int)
    parser.add_argument("--forged", type=int, default=0)
    parser.add_argument("cert_out")
    parser.add_argument("topic")
    parser.add_argument("target")
    args = parser.parse_args()
    signer = Signer(args.cert_out, args.topic)
    if args.bulk is None:
        print(json.dumps(signer.envelope("smoke-" + signer.now.strftime("%H%M%S%f"),
                                         open(args.target).read())))
        return
    out = pathlib.Path(args.target)
    out.mkdir(parents=True, exist_ok=True)
    sent = signer.now.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for i in range(args.bulk):
        envelope = signer.envelope(f"bulk-{i}", bounce(i, sent))
        (out / f"bounce-{i:05d}.json").write_text(json.dumps(envelope))
    for i in range(args.forged):
        envelope = signer.envelope(f"forged-{i}", bounce(args.bulk + i, sent))
        envelope["Message"] = envelope["Message"].replace(f"bulk{args.bulk + i}@", f"victim{i}@")
        (out / f"forged-{i}.json").write_text(json.dumps(envelope))


if __name__ == "__main__":
    main()
