//! SNS verification throughput with the certificate cached: envelope parse, topic, version,
//! certificate URL and age checks, the cached certificate's validity, and the RSA signature
//! (SignatureVersion 1 and 2), as the webhook does before acting. No store, no network.

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
use sesguard::app::webhook::{Certificates, Webhook};
use sesguard::config::Config;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::sns::delivery::Envelope;
use sesguard::ports::SystemClock;

const TOPIC: &str = "arn:aws:sns:us-east-1:111111111111:ses-feedback";

fn verify_cached(criterion: &mut Criterion) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let params = rcgen::CertificateParams::new(vec!["sns.amazonaws.com".into()]).expect("params");
    let pem = params
        .self_signed(&pair)
        .expect("certificate")
        .pem()
        .into_bytes();
    let private = rsa::RsaPrivateKey::from_pkcs8_der(&pair.serialize_der()).expect("key");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config =
        Config::parse(include_str!("../infra/sesguard.example.toml"), "example").expect("config");
    config.webhook.topics = vec![TOPIC.into()];
    let store = Arc::new(SqliteStore::open(&dir.path().join("bench.db")).expect("store"));
    let deps = sesguard::wiring::local(config, store, Arc::new(SystemClock));
    let certificates = Certificates::new(Arc::new(GivenCertificate(pem)));
    let confirmer = SnsHttp::new(std::time::Duration::from_secs(1)).expect("client");
    let webhook = Webhook::new(&deps, &certificates, &confirmer, &[]);
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

criterion_group!(benches, verify_cached);
criterion_main!(benches);
