//! SQS as the send queue's deferral mechanism: a deferred message stays in its queue,
//! invisible until its retry time, or goes back into it as a new message.

use async_trait::async_trait;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry,
};

use crate::ports::{HOPS_ATTRIBUTE, ORIGIN_ATTRIBUTE, QueueError, QueueVisibility, Requeue};

/// SQS keeps a message invisible for at most 12 hours.
const MAX_SECONDS: u64 = 12 * 3600;
/// SQS delays a new message for at most 15 minutes.
pub const MAX_DELAY_SECONDS: u64 = 900;

fn attribute(data_type: &str, value: String) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type(data_type)
        .string_value(value)
        .build()
        .map_err(|e| QueueError {
            queue: String::new(),
            source: Box::new(e),
        })
}

#[async_trait]
impl QueueVisibility for SqsVisibility {
    async fn delay(
        &self,
        queue_url: &str,
        messages: &[(String, u64)],
    ) -> Result<Vec<(String, String)>, QueueError> {
        let error = |source: Box<dyn std::error::Error + Send + Sync>| QueueError {
            queue: queue_url.to_owned(),
            source,
        };
        let mut refused = Vec::new();
        for chunk in messages.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (receipt, seconds))| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .visibility_timeout(
                            i32::try_from((*seconds).min(MAX_SECONDS)).unwrap_or(i32::MAX),
                        )
                        .build()
                        .map_err(|e| error(Box::new(e)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .change_message_visibility_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| error(Box::new(e)))?;
            for failed in output.failed {
                let receipt = failed
                    .id
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| chunk.get(i))
                    .map_or_else(|| failed.id.clone(), |(receipt, _)| receipt.clone());
                refused.push((receipt, failed.message.unwrap_or(failed.code)));
            }
        }
        Ok(refused)
    }

    async fn requeue(
        &self,
        queue_url: &str,
        messages: &[Requeue],
    ) -> Result<Vec<(usize, String)>, QueueError> {
        let error = |source: Box<dyn std::error::Error + Send + Sync>| QueueError {
            queue: queue_url.to_owned(),
            source,
        };
        let mut refused = Vec::new();
        for (chunk_index, chunk) in messages.chunks(10).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, message)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&message.body)
                        .delay_seconds(message.delay_seconds.min(MAX_DELAY_SECONDS) as i32)
                        .message_attributes(
                            ORIGIN_ATTRIBUTE,
                            attribute("String", message.origin.clone())?,
                        )
                        .message_attributes(
                            HOPS_ATTRIBUTE,
                            attribute("Number", message.hops.to_string())?,
                        )
                        .build()
                        .map_err(|e| error(Box::new(e)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let output = self
                .client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| error(Box::new(e)))?;
            for failed in output.failed {
                let index = failed.id.parse::<usize>().unwrap_or(0) + chunk_index * 10;
                refused.push((index, failed.message.unwrap_or(failed.code)));
            }
        }
        Ok(refused)
    }
}

/// `ChangeMessageVisibilityBatch` through the SQS client (built once at init).
#[derive(Debug, Clone)]
pub struct SqsVisibility {
    client: aws_sdk_sqs::Client,
}

impl SqsVisibility {
    /// Over this client.
    pub fn new(client: aws_sdk_sqs::Client) -> Self {
        Self { client }
    }
}

/// The queue URL of an SQS queue ARN (`arn:aws:sqs:REGION:ACCOUNT:NAME`).
pub fn queue_url(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.as_slice() {
        ["arn", partition, "sqs", region, account, name] if !name.is_empty() => {
            let suffix = if *partition == "aws-cn" {
                "amazonaws.com.cn"
            } else {
                "amazonaws.com"
            };
            Some(format!("https://sqs.{region}.{suffix}/{account}/{name}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_come_from_queue_arns() {
        assert_eq!(
            queue_url("arn:aws:sqs:us-east-1:111111111111:sesguard-send").as_deref(),
            Some("https://sqs.us-east-1.amazonaws.com/111111111111/sesguard-send")
        );
        assert_eq!(queue_url("arn:aws:sns:us-east-1:1:t"), None);
        assert_eq!(queue_url("nonsense"), None);
    }
}
