//! The webhook use case: one SNS HTTPS delivery verified and acted on. In order: the envelope
//! read (400 when malformed), the topic allowlist (before anything else), the signature
//! version, the certificate URL, the age, the certificate (fetched once per instance; a failed
//! fetch is not cached) and the signature (403 on any failure); then replay by `MessageId`,
//! and the message itself — feedback into the ingest path, a subscription confirmed after its
//! URL is checked, an unsubscription alerted and never visited. Transient failures answer 5xx
//! so SNS retries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::app::Context;
use crate::app::ingest::{Inbound, Outcome};
use crate::domain::common::timestamp::Timestamp;
use crate::domain::sns::delivery::{self, Envelope, MessageType, Rejection};
use crate::domain::sns::signature::SigningCertificate;
use crate::domain::sns::unwrap::open_sns;
use crate::ports::{CertificateSource, SubscriptionConfirmer};
use crate::telemetry::error_chain;

/// How long a processed `MessageId` is remembered: SNS retries HTTP deliveries within an hour.
const REPLAY_MEMORY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The answer to one delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Verified and acted on (200).
    Processed(Value),
    /// Verified, and processed before (200).
    Duplicate,
    /// Refused (400 malformed, 403 otherwise).
    Rejected(Rejection),
    /// A transient failure (503): SNS retries.
    Unavailable(String),
}

impl Answer {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Processed(_) | Answer::Duplicate => 200,
            Answer::Rejected(rejection) => rejection.status(),
            Answer::Unavailable(_) => 503,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        match self {
            Answer::Processed(detail) => json!({"status": "processed", "detail": detail}),
            Answer::Duplicate => json!({"status": "duplicate"}),
            Answer::Rejected(rejection) => {
                json!({"status": "rejected", "reason": rejection.code(), "error": rejection.to_string()})
            }
            Answer::Unavailable(error) => json!({"status": "unavailable", "error": error}),
        }
    }
}

/// Signing certificates by URL: fetched once per instance, only successes kept.
pub struct Certificates {
    source: Arc<dyn CertificateSource>,
    cache: Mutex<HashMap<String, Arc<SigningCertificate>>>,
}

impl Certificates {
    /// A cache over `source`.
    pub fn new(source: Arc<dyn CertificateSource>) -> Self {
        Self {
            source,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The certificate at `url`: `Err(Ok(rejection))` when it is not usable, `Err(Err(text))`
    /// when it could not be fetched (transient).
    async fn get(&self, url: &str) -> Result<Arc<SigningCertificate>, Result<Rejection, String>> {
        if let Some(found) = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(url)
        {
            return Ok(Arc::clone(found));
        }
        let pem = self
            .source
            .fetch(url)
            .await
            .map_err(|e| Err(error_chain(&e)))?;
        let certificate = Arc::new(SigningCertificate::from_pem(&pem).map_err(Ok)?);
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(url.to_owned(), Arc::clone(&certificate));
        Ok(certificate)
    }
}

/// The webhook over the [`Context`].
pub struct Webhook<'a> {
    deps: &'a Context,
    certificates: &'a Certificates,
    confirmer: &'a dyn SubscriptionConfirmer,
    extra_topics: &'a [String],
}

impl<'a> Webhook<'a> {
    /// A webhook; `extra_topics` are allowed besides the configured ones.
    pub fn new(
        deps: &'a Context,
        certificates: &'a Certificates,
        confirmer: &'a dyn SubscriptionConfirmer,
        extra_topics: &'a [String],
    ) -> Self {
        Self {
            deps,
            certificates,
            confirmer,
            extra_topics,
        }
    }

    /// Verifies a delivery without acting on it: `Ok(envelope)` when every check passes.
    pub async fn verify(&self, body: &[u8], now: Timestamp) -> Result<Envelope, Answer> {
        let settings = &self.deps.config.webhook;
        let envelope = Envelope::parse(body).map_err(Answer::Rejected)?;
        let allowed = settings
            .topics
            .iter()
            .chain(self.extra_topics)
            .any(|t| *t == envelope.topic_arn);
        if !allowed {
            return Err(Answer::Rejected(Rejection::UnknownTopic(
                envelope.topic_arn,
            )));
        }
        let version_ok = match envelope.signature_version.as_str() {
            "2" => true,
            "1" => !settings.signature_version_2_only,
            _ => false,
        };
        if !version_ok {
            return Err(Answer::Rejected(Rejection::SignatureVersion(
                envelope.signature_version,
            )));
        }
        delivery::check_certificate_url(&envelope.signing_cert_url, &envelope.topic_arn)
            .map_err(Answer::Rejected)?;
        delivery::check_age(&envelope.timestamp, now, settings.max_age)
            .map_err(Answer::Rejected)?;
        let certificate = match self.certificates.get(&envelope.signing_cert_url).await {
            Ok(certificate) => certificate,
            Err(Ok(rejection)) => return Err(Answer::Rejected(rejection)),
            Err(Err(error)) => return Err(Answer::Unavailable(error)),
        };
        certificate.check_valid(now).map_err(Answer::Rejected)?;
        certificate.verify(&envelope).map_err(Answer::Rejected)?;
        Ok(envelope)
    }

    /// Verifies a delivery and acts on it.
    pub async fn receive(&self, body: &[u8], now: Timestamp) -> Answer {
        let envelope = match self.verify(body, now).await {
            Ok(envelope) => envelope,
            Err(answer) => {
                tracing::warn!(status = answer.status(), answer = %answer.body(), "SNS delivery refused");
                return answer;
            }
        };
        let replay_key = format!("sns:{}", envelope.message_id);
        match self.deps.store.seen(&replay_key, now).await {
            Ok(true) => return Answer::Duplicate,
            Ok(false) => {}
            Err(error) => return Answer::Unavailable(error_chain(&error)),
        }
        let answer = match envelope.kind {
            MessageType::Notification => self.notification(&envelope, now).await,
            MessageType::SubscriptionConfirmation => self.subscribe(&envelope).await,
            MessageType::UnsubscribeConfirmation => self.unsubscribed(&envelope).await,
        };
        // Remembered only once acted on, so a failure is retried; a crash between the two is
        // covered by the ingest path's own de-duplication.
        if answer.status() == 200
            && let Err(error) = self
                .deps
                .store
                .remember(&replay_key, now.plus(REPLAY_MEMORY))
                .await
        {
            tracing::error!(message_id = %envelope.message_id, error = %error_chain(&error), "processed, but not remembered for replay checks");
        }
        answer
    }

    async fn notification(&self, envelope: &Envelope, now: Timestamp) -> Answer {
        let content = open_sns(
            "Notification",
            &envelope.message_id,
            &envelope.topic_arn,
            Timestamp::parse_rfc3339(&envelope.timestamp).ok(),
            &envelope.message,
        );
        let (sns, content) = match content {
            Ok(delivered) => (delivered.sns, Ok(delivered.content)),
            Err(error) => (None, Err(error.into())),
        };
        let inbound = Inbound {
            id: envelope.message_id.clone(),
            sns,
            content,
        };
        let report = self.deps.ingest(vec![inbound], now).await;
        report.log();
        match report.records.first().map(|(_, outcome)| outcome) {
            Some(Outcome::Failed(error)) => Answer::Unavailable(error.clone()),
            Some(Outcome::Malformed(error)) => {
                Answer::Rejected(Rejection::Malformed(error.clone()))
            }
            Some(outcome) => Answer::Processed(json!({"outcome": outcome.name()})),
            None => Answer::Unavailable("nothing was processed".into()),
        }
    }

    async fn subscribe(&self, envelope: &Envelope) -> Answer {
        let url = envelope.subscribe_url.as_deref().unwrap_or_default();
        if let Err(rejection) = delivery::check_subscribe_url(url, &envelope.topic_arn) {
            return Answer::Rejected(rejection);
        }
        match self.confirmer.confirm(url).await {
            Ok(()) => {
                tracing::info!(topic = %envelope.topic_arn, "subscription confirmed");
                Answer::Processed(json!({"confirmed": envelope.topic_arn}))
            }
            Err(error) => Answer::Unavailable(error_chain(&error)),
        }
    }

    async fn unsubscribed(&self, envelope: &Envelope) -> Answer {
        let body = json!({
            "topic": envelope.topic_arn,
            "message_id": envelope.message_id,
            "what": "this endpoint was unsubscribed: SES feedback from the topic no longer reaches sesguard",
            "action": "resubscribe the endpoint to the topic; the UnsubscribeConfirmation URL is deliberately not visited",
        });
        let subject = "sesguard: SES feedback stopped (webhook unsubscribed)";
        match self.deps.alerts.notice(subject, &body).await {
            Ok(()) => Answer::Processed(json!({"unsubscribed": envelope.topic_arn})),
            Err(error) => Answer::Unavailable(error_chain(&error)),
        }
    }
}
