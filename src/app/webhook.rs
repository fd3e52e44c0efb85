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
use crate::app::ingest::Ingestor;
use crate::app::ingest::{Inbound, Outcome};
use crate::app::subscription::{SubscriptionError, Subscriptions};
use crate::config::WebhookConfig;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::sns::delivery::{self, Envelope, MessageType, Rejection};
use crate::domain::sns::signature::SigningCertificate;
use crate::domain::sns::unwrap::open_sns;
use crate::ports::{CertificateSource, SubscriptionConfirmer};
use crate::telemetry::error_chain;

pub use crate::domain::sns::delivery::REPLAY_MEMORY;

/// Certificates kept per instance at most (SNS uses one per region at a time).
const CACHED_CERTIFICATES: usize = 32;

/// A certificate URL whose fetch failed is not fetched again for this long, so requests naming
/// made-up certificates on an allowed topic cannot drive outbound fetches.
const FAILED_FETCH_MEMORY: std::time::Duration = std::time::Duration::from_secs(60);

/// Failed fetches remembered at most (older ones are forgotten first).
const REMEMBERED_FAILURES: usize = 1024;

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

/// Signing certificates by URL, per instance: each fetched once and kept until its `notAfter`
/// (then fetched again), at most [`CACHED_CERTIFICATES`] of them; a URL whose fetch failed is
/// not fetched again for [`FAILED_FETCH_MEMORY`].
pub struct Certificates {
    source: Arc<dyn CertificateSource>,
    cache: Mutex<HashMap<String, Arc<SigningCertificate>>>,
    failed: Mutex<HashMap<String, Timestamp>>,
}

impl Certificates {
    /// A cache over `source`.
    pub fn new(source: Arc<dyn CertificateSource>) -> Self {
        Self {
            source,
            cache: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
        }
    }

    /// The certificate at `url` at `now`: `Err(Ok(rejection))` when it is not usable,
    /// `Err(Err(text))` when it could not be fetched (transient).
    async fn get(
        &self,
        url: &str,
        now: Timestamp,
    ) -> Result<Arc<SigningCertificate>, Result<Rejection, String>> {
        {
            let mut cache = lock(&self.cache);
            match cache.get(url) {
                Some(found) if found.not_after() >= now => return Ok(Arc::clone(found)),
                Some(_) => {
                    cache.remove(url);
                }
                None => {}
            }
        }
        if let Some(at) = lock(&self.failed).get(url)
            && now < at.plus(FAILED_FETCH_MEMORY)
        {
            return Err(Err(format!(
                "fetching {url} failed at {at}; not tried again before a minute has passed"
            )));
        }
        let fetched = self.source.fetch(url).await;
        let pem = match fetched {
            Ok(pem) => pem,
            Err(error) => {
                self.remember_failure(url, now);
                return Err(Err(error_chain(&error)));
            }
        };
        let certificate = match SigningCertificate::from_pem(&pem) {
            Ok(certificate) => Arc::new(certificate),
            Err(rejection) => {
                self.remember_failure(url, now);
                return Err(Ok(rejection));
            }
        };
        let mut cache = lock(&self.cache);
        if cache.len() >= CACHED_CERTIFICATES {
            // The one that expires first goes.
            if let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, c)| c.not_after())
                .map(|(u, _)| u.clone())
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(url.to_owned(), Arc::clone(&certificate));
        Ok(certificate)
    }

    fn remember_failure(&self, url: &str, now: Timestamp) {
        let mut failed = lock(&self.failed);
        failed.retain(|_, at| now < at.plus(FAILED_FETCH_MEMORY));
        if failed.len() >= REMEMBERED_FAILURES
            && let Some(oldest) = failed
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(u, _)| u.clone())
        {
            failed.remove(&oldest);
        }
        failed.insert(url.to_owned(), now);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every check of an envelope, in order: topic allowlist (before anything else), signature
/// version, certificate URL, age, certificate (fetched once), signature.
pub async fn check(
    envelope: Envelope,
    allowed: &(dyn Fn(&str) -> bool + Sync),
    settings: &WebhookConfig,
    certificates: &Certificates,
    now: Timestamp,
) -> Result<Envelope, Answer> {
    if !allowed(&envelope.topic_arn) {
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
    delivery::check_certificate_url(
        &envelope.signing_cert_url,
        &envelope.topic_arn,
        &settings.origin,
    )
    .map_err(Answer::Rejected)?;
    delivery::check_age(&envelope.timestamp, now, settings.max_age).map_err(Answer::Rejected)?;
    let certificate = match certificates.get(&envelope.signing_cert_url, now).await {
        Ok(certificate) => certificate,
        Err(Ok(rejection)) => return Err(Answer::Rejected(rejection)),
        Err(Err(error)) => return Err(Answer::Unavailable(error)),
    };
    certificate.check_valid(now).map_err(Answer::Rejected)?;
    certificate.verify(&envelope).map_err(Answer::Rejected)?;
    Ok(envelope)
}

/// The checks of [`check`] with everything they need owned: for verifying many envelopes off
/// the store's thread (`sesguard ingest --verify`).
pub struct Verifier {
    /// Signing certificates, cached.
    pub certificates: Arc<Certificates>,
    /// The allowed topics.
    pub topics: Vec<String>,
    /// Signature version and age rules.
    pub settings: WebhookConfig,
}

impl Verifier {
    /// Verifies one envelope's bytes.
    pub async fn verify(&self, body: &[u8], now: Timestamp) -> Result<Envelope, Answer> {
        let envelope = Envelope::parse(body).map_err(Answer::Rejected)?;
        self.check(envelope, now).await
    }

    /// Verifies an envelope already parsed.
    pub async fn check(&self, envelope: Envelope, now: Timestamp) -> Result<Envelope, Answer> {
        let allowed = |topic: &str| self.topics.iter().any(|t| t == topic);
        check(envelope, &allowed, &self.settings, &self.certificates, now).await
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
    /// The webhook of `context`, verifying signatures with `certificates` and confirming
    /// subscriptions through `confirmer`; it allows the configured topics.
    pub fn of(
        context: &'a Context,
        certificates: &'a Certificates,
        confirmer: &'a dyn SubscriptionConfirmer,
    ) -> Self {
        Self {
            deps: context,
            certificates,
            confirmer,
            extra_topics: &[],
        }
    }

    /// The same webhook allowing `topics` besides the configured ones.
    pub fn with_topics(mut self, topics: &'a [String]) -> Self {
        self.extra_topics = topics;
        self
    }

    /// Verifies a delivery without acting on it: `Ok(envelope)` when every check passes.
    pub async fn verify(&self, body: &[u8], now: Timestamp) -> Result<Envelope, Answer> {
        let envelope = Envelope::parse(body).map_err(Answer::Rejected)?;
        let settings = &self.deps.config.webhook;
        let allowed = |topic: &str| {
            settings
                .topics
                .iter()
                .chain(self.extra_topics)
                .any(|t| t == topic)
        };
        check(envelope, &allowed, settings, self.certificates, now).await
    }

    /// Verifies a delivery and acts on it.
    pub async fn receive(&self, body: &[u8], now: Timestamp) -> Answer {
        let envelope = match self.verify(body, now).await {
            Ok(envelope) => envelope,
            Err(answer) => {
                if let Answer::Rejected(Rejection::Stale(_)) = &answer {
                    // Feedback lost unless replayed: said with its ids, and counted.
                    let ids = Envelope::parse(body).ok();
                    let (message_id, topic) = ids.as_ref().map_or(("-", "-"), |e| {
                        (e.message_id.as_str(), e.topic_arn.as_str())
                    });
                    tracing::warn!(message_id, topic, answer = %answer.body(), "stale SNS message refused: its feedback is lost unless replayed");
                }
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
            MessageType::SubscriptionConfirmation => self.subscribe(&envelope, now).await,
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
        let report = Ingestor::of(self.deps).ingest(vec![inbound], now).await;
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

    async fn subscribe(&self, envelope: &Envelope, now: Timestamp) -> Answer {
        let answer = self.subscriptions().confirm(envelope, now).await;
        answer.map_or_else(Self::failed, Answer::Processed)
    }

    async fn unsubscribed(&self, envelope: &Envelope) -> Answer {
        let answer = self.subscriptions().unsubscribed(envelope).await;
        answer.map_or_else(Self::failed, Answer::Processed)
    }

    fn subscriptions(&self) -> Subscriptions<'_> {
        Subscriptions::of(self.deps, self.confirmer, "webhook")
    }

    fn failed(error: SubscriptionError) -> Answer {
        match error {
            SubscriptionError::Refused(rejection) => Answer::Rejected(rejection),
            SubscriptionError::Unavailable(error) => Answer::Unavailable(error),
        }
    }
}
