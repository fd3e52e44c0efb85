"""The rehearsal's stand-in for Lambda's SQS event source mappings, and its only home-made part.

For each mapping (queue ARN, function, batch size) it receives up to a batch with long polling,
invokes the function with Lambda's SQS event shape, deletes what succeeded, and leaves the
messages listed in `batchItemFailures` (and every message of a failed invocation) in the queue:
they come back when their visibility ends, which the sender sets for what it defers, and the
queue's own redrive policy moves a message to its DLQ after `maxReceiveCount` receives.
Message attributes are handed on in Lambda's shape (the sender's requeued messages carry their
origin and hops in them), and every record's attributes are kept in `attributes` by message id,
with its queue's ARN.
"""

import time


class Bridge:
    def __init__(self, sqs, invoke, mappings):
        self.sqs = sqs
        self.invoke = invoke
        self.mappings = []
        for arn, function, batch_size in mappings:
            _, _, _, region, account, name = arn.split(":")
            url = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            self.mappings.append({"arn": arn, "region": region, "url": url, "function": function, "batch": batch_size})
        self.counts = {"invocations": 0, "records": 0, "deleted": 0, "retried": 0, "failed_invocations": 0}
        self.attributes = {}

    def pump(self, wait_seconds=0):
        """One receive per mapping; returns how many records were delivered."""
        delivered = 0
        for mapping in self.mappings:
            answer = self.sqs.receive_message(
                QueueUrl=mapping["url"], MaxNumberOfMessages=mapping["batch"], WaitTimeSeconds=wait_seconds,
                AttributeNames=["All"], MessageAttributeNames=["All"],
            )
            messages = answer.get("Messages", [])
            if not messages:
                continue
            delivered += len(messages)
            event = {"Records": [self.record(mapping, m) for m in messages]}
            for record in event["Records"]:
                self.attributes[record["messageId"]] = (mapping["arn"], record["messageAttributes"])
            response = self.invoke(mapping["function"], event)
            self.counts["invocations"] += 1
            self.counts["records"] += len(messages)
            if not isinstance(response, dict) or "invoke_error" in response:
                # The whole batch failed: Lambda leaves every message for its next receive.
                self.counts["failed_invocations"] += 1
                continue
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
            done = [m for m in messages if m["MessageId"] not in failed]
            self.counts["retried"] += len(messages) - len(done)
            for start in range(0, len(done), 10):
                chunk = done[start:start + 10]
                self.sqs.delete_message_batch(QueueUrl=mapping["url"], Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)])
                self.counts["deleted"] += len(chunk)
        return delivered

    @staticmethod
    def record(mapping, message):
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {
                name: {"stringValue": value.get("StringValue"), "binaryValue": value.get("BinaryValue"),
                       "stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": mapping["arn"],
            "awsRegion": mapping["region"],
        }

    def depth(self):
        total = 0
        for mapping in self.mappings:
            attributes = self.sqs.get_queue_attributes(QueueUrl=mapping["url"], AttributeNames=["All"])["Attributes"]
            for kind in ["Messages", "MessagesNotVisible", "MessagesDelayed"]:
                total += int(attributes.get(f"ApproximateNumberOf{kind}", 0))
        return total

    def drain(self, seconds=90):
        """Pumps until every queue is empty (deferred and delayed messages included), or
        `seconds` pass."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.pump(wait_seconds=1) == 0 and self.depth() == 0:
                # SES publishes its events a moment after it accepts a message.
                time.sleep(1)
                if self.pump(wait_seconds=1) == 0 and self.depth() == 0:
                    return True
        return False

    def run_for(self, seconds):
        """Pumps for `seconds`, whatever remains queued."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            self.pump(wait_seconds=1)
