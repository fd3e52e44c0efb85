//! SQS as the send queue's deferral mechanism: a deferred message stays in its queue,
//! invisible until its retry time.

use async_trait::async_trait;

use crate::ports::{QueueError, QueueVisibility};

/// `ChangeMessageVisibility` through the SQS client (built once at init).
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

#[async_trait]
impl QueueVisibility for SqsVisibility {
    async fn delay(
        &self,
        queue_url: &str,
        receipt_handle: &str,
        seconds: u64,
    ) -> Result<(), QueueError> {
        let seconds = i32::try_from(seconds.min(12 * 3600)).unwrap_or(12 * 3600);
        self.client
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| QueueError {
                queue: queue_url.to_owned(),
                source: Box::new(e),
            })?;
        Ok(())
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
