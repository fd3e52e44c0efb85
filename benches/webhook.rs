//! SNS verification throughput with the certificate cached: envelope parse, topic, version,
//! certificate URL and age checks, the cached certificate's validity, and the RSA signature
//! (SignatureVersion 1 and 2), as the webhook does before acting. No store, no network.
//! And the in-process path of `sesguard ingest --verify`: 1,000 signed bounce envelopes
//! verified and recorded into a fresh embedded store in one chunk.

#[path = "../tests/support/ses_event.rs"]
mod ses_event;

use std::hint::black_box;
use std::sync::Arc;

use base64::Engine as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::json;
use sesguard::adapters::sns_https::{GivenCertificate, SnsHttp};
use sesguard::adapters::sqlite::SqliteStore;
use sesguard::app::ingest::{Inbound, Ingestor};
use sesguard::app::webhook::{Certificates, Verifier, Webhook};
use sesguard::config::Config;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::sns::delivery::Envelope;
use sesguard::domain::sns::unwrap::open_sns;
use sesguard::ports::SystemClock;

use crate::ses_event::SesEvent;

const TOPIC: &str = "arn:aws:sns:us-east-1:111111111111:ses-feedback";

/// A self-signed certificate (PEM) and its RSA-2048 private key.
fn signing_certificate() -> (Vec<u8>, rsa::RsaPrivateKey) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let params = rcgen::CertificateParams::new(vec!["sns.amazonaws.com".into()]).expect("params");
    let pem = params
        .self_signed(&pair)
        .expect("certificate")
        .pem()
        .into_bytes();
    let private = rsa::RsaPrivateKey::from_pkcs8_der(&pair.serialize_der()).expect("key");
    (pem, private)
}

fn verify_cached(criterion: &mut Criterion) {
    let (pem, private) = signing_certificate();

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config =
        Config::parse(include_str!("../infra/sesguard.example.toml"), "example").expect("config");
    config.webhook.topics = vec![TOPIC.into()];
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db")).expect("store"));
    let deps = sesguard::wiring::local(config, store, Arc::new(SystemClock));
    let certificates = Certificates::new(Arc::new(GivenCertificate(pem)));
    let confirmer = SnsHttp::new(std::time::Duration::from_secs(1), true).expect("client");
    let webhook = Webhook::of(&deps, &certificates, &confirmer);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let now = Timestamp::parse_rfc3339("2026-11-20T13:00:00Z").expect("time");

    let mut group = criterion.benchmark_group("sns_verify_cached_certificate");
    group.throughput(Throughput::Elements(1));
    for version in ["1", "2"] {
        let mut body = json!({"Type": "Notification", "MessageId": "bench", "TopicArn": TOPIC,
            "Message": include_str!("../events/ses/bounce-permanent.json"), "Timestamp": "2026-11-20T12:59:00.000Z",
            "SignatureVersion": version, "Signature": "",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-bench.pem"});
        let text = Envelope::parse(body.to_string().as_bytes())
            .expect("envelope")
            .string_to_sign();
        let signature = if version == "1" {
            SigningKey::<sha1::Sha1>::new(private.clone())
                .sign(text.as_bytes())
                .to_vec()
        } else {
            SigningKey::<rsa::sha2::Sha256>::new(private.clone())
                .sign(text.as_bytes())
                .to_vec()
        };
        body["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(signature));
        let bytes = body.to_string().into_bytes();
        group.bench_function(format!("signature_version_{version}"), |bench| {
            bench.iter(|| {
                let verdict = runtime.block_on(webhook.verify(black_box(&bytes), now));
                assert!(verdict.is_ok(), "the benchmark message must verify");
            });
        });
    }
    group.finish();
}

fn ingest_verified(criterion: &mut Criterion) {
    const ENVELOPES: usize = 1_000;
    let (pem, private) = signing_certificate();
    let signer = SigningKey::<rsa::sha2::Sha256>::new(private);
    let bodies: Vec<Vec<u8>> = (0..ENVELOPES)
        .map(|i| {
            let message = SesEvent::bounce(&format!("m{i}"))
                .to([format!("r{i}@example.com")])
                .sent_at("2026-11-20T12:58:00.000Z")
                .at("2026-11-20T12:58:30.000Z")
                .feedback_id(&format!("fb{i}"))
                .tagged("primary", "bulk")
                .notification();
            let mut body = json!({"Type": "Notification", "MessageId": format!("sns-{i}"), "TopicArn": TOPIC,
                "Message": message.to_string(), "Timestamp": "2026-11-20T12:59:00.000Z",
                "SignatureVersion": "2", "Signature": "",
                "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-bench.pem"});
            let text = Envelope::parse(body.to_string().as_bytes())
                .expect("envelope")
                .string_to_sign();
            let signature = signer.sign(text.as_bytes()).to_vec();
            body["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(signature));
            body.to_string().into_bytes()
        })
        .collect();
    let config =
        Config::parse(include_str!("../infra/sesguard.example.toml"), "example").expect("config");
    let verifier = Verifier {
        certificates: Arc::new(Certificates::new(Arc::new(GivenCertificate(pem)))),
        topics: vec![TOPIC.into()],
        settings: config.webhook.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let now = Timestamp::parse_rfc3339("2026-11-20T13:00:00Z").expect("time");

    let mut group = criterion.benchmark_group("ingest_verify");
    group.throughput(Throughput::Elements(ENVELOPES as u64));
    group.sample_size(10);
    group.bench_function("verify_and_record_1000_bounces", |bench| {
        bench.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("temp dir");
                let store =
                    Arc::new(SqliteStore::open(&dir.path().join("bench.db")).expect("store"));
                let deps = sesguard::wiring::local(config.clone(), store, Arc::new(SystemClock));
                (dir, deps)
            },
            |(_dir, deps)| {
                runtime.block_on(async {
                    let mut records = Vec::with_capacity(ENVELOPES);
                    for (i, body) in bodies.iter().enumerate() {
                        let envelope = verifier.verify(body, now).await.expect("verified");
                        let opened = open_sns(
                            "Notification",
                            &envelope.message_id,
                            &envelope.topic_arn,
                            None,
                            &envelope.message,
                        )
                        .expect("a notification");
                        records.push(Inbound {
                            id: format!("{i}"),
                            sns: opened.sns,
                            content: Ok(opened.content),
                        });
                    }
                    let report = Ingestor::of(&deps).ingest(records, now).await;
                    assert_eq!(report.summary().processed, ENVELOPES);
                });
            },
            criterion::BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, verify_cached, ingest_verified);
criterion_main!(benches);
