//! The SNS webhook: genuine messages of every type under both signature versions are acted
//! on; every forgery is refused with its reason. Keys and certificates are generated here.

use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use base64::Engine as _;
use lambda_http::{Body, Request};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{Value, json};
use sesguard::app::Context;
use sesguard::app::webhook::{Answer, Certificates, Webhook};
use sesguard::domain::common::address::EmailAddress;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::sns::delivery::Envelope;
use sesguard::domain::sns::signature::SigningCertificate;
use sesguard::lambda::webhook::handle;
use sesguard::ports::{CertificateSource, FetchError, SubscriptionConfirmer};
use sesguard::wiring::{IngestFunction, WebhookFunction};

use crate::helpers::{RecordedAlerts, SAMPLE_NOW, deps_with, example_config, sample};

const TOPIC: &str = "arn:aws:sns:us-east-1:111111111111:ses-feedback";
const CERT_URL: &str = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem";
const NOW: &str = "2026-11-20T13:00:00.000Z";

struct Key {
    private: rsa::RsaPrivateKey,
    pem: Vec<u8>,
}

fn key(expired: bool) -> Key {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
    let mut params = rcgen::CertificateParams::new(vec!["sns.amazonaws.com".into()]).unwrap();
    (params.not_before, params.not_after) = if expired {
        (
            rcgen::date_time_ymd(2020, 1, 1),
            rcgen::date_time_ymd(2021, 1, 1),
        )
    } else {
        (
            rcgen::date_time_ymd(2025, 1, 1),
            rcgen::date_time_ymd(2035, 1, 1),
        )
    };
    let pem = params.self_signed(&pair).unwrap().pem().into_bytes();
    Key {
        private: rsa::RsaPrivateKey::from_pkcs8_der(&pair.serialize_der()).unwrap(),
        pem,
    }
}

/// A key whose certificate is valid until midnight of the given day (UTC).
fn key_valid_until(year: i32, month: u8, day: u8) -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(|| {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
        let mut params = rcgen::CertificateParams::new(vec!["sns.amazonaws.com".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(year, month, day);
        Key {
            pem: params.self_signed(&pair).unwrap().pem().into_bytes(),
            private: rsa::RsaPrivateKey::from_pkcs8_der(&pair.serialize_der()).unwrap(),
        }
    })
}

fn sns_key() -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(|| key(false))
}

/// Signs the envelope's fields with `key` for `version`, writing `Signature`.
fn sign(body: &mut Value, key: &Key, version: &str) {
    body["SignatureVersion"] = json!(version);
    body["Signature"] = json!("");
    let envelope = Envelope::parse(body.to_string().as_bytes()).unwrap();
    let text = envelope.string_to_sign();
    let signature = if version == "1" {
        SigningKey::<sha1::Sha1>::new(key.private.clone())
            .sign(text.as_bytes())
            .to_vec()
    } else {
        SigningKey::<rsa::sha2::Sha256>::new(key.private.clone())
            .sign(text.as_bytes())
            .to_vec()
    };
    body["Signature"] = json!(base64::engine::general_purpose::STANDARD.encode(signature));
}

fn notification(id: &str) -> Value {
    json!({"Type": "Notification", "MessageId": id, "TopicArn": TOPIC, "Subject": "Amazon SES Email Event Notification",
           "Message": sample("ses/bounce-permanent.json"), "Timestamp": "2026-11-20T12:59:00.000Z",
           "SigningCertURL": CERT_URL, "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"})
}

fn confirmation(kind: &str, id: &str) -> Value {
    json!({"Type": kind, "MessageId": id, "TopicArn": TOPIC, "Token": "tok-123",
           "Message": format!("You have chosen to subscribe to the topic {TOPIC}."),
           "SubscribeURL": format!("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={}&Token=tok-123", TOPIC.replace(':', "%3A")),
           "Timestamp": "2026-11-20T12:59:00.000Z", "SigningCertURL": CERT_URL})
}

fn signed(mut body: Value, version: &str) -> Value {
    sign(&mut body, sns_key(), version);
    body
}

/// Certificates served from memory, failing the first `fail` fetches.
struct Served {
    pem: Vec<u8>,
    fail: Mutex<usize>,
    fetches: Mutex<usize>,
}

#[async_trait]
impl CertificateSource for Served {
    async fn fetch(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        *self.fetches.lock().unwrap() += 1;
        let mut fail = self.fail.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return Err(FetchError {
                url: url.into(),
                source: "timed out".into(),
            });
        }
        Ok(self.pem.clone())
    }
}

#[derive(Default)]
struct Confirmations(Mutex<Vec<String>>);

#[async_trait]
impl SubscriptionConfirmer for Confirmations {
    async fn confirm(&self, url: &str) -> Result<(), FetchError> {
        self.0.lock().unwrap().push(url.to_owned());
        Ok(())
    }
}

struct World {
    _dir: tempfile::TempDir,
    deps: Context,
    alerts: RecordedAlerts,
    certificates: Certificates,
    served: Arc<Served>,
    confirmations: Arc<Confirmations>,
}

fn world_with(configure: impl FnOnce(&mut sesguard::config::Config), pem: &[u8]) -> World {
    let world = crate::world::World::builder()
        .configure(|config| {
            config.webhook.topics = vec![
                TOPIC.into(),
                "arn:aws:sns:us-east-1:111111111111:other".into(),
            ];
            configure(config);
        })
        .build();
    let (dir, deps, alerts) = (world.dir.expect("a SQLite world"), world.deps, world.alerts);
    let served = Arc::new(Served {
        pem: pem.to_vec(),
        fail: Mutex::new(0),
        fetches: Mutex::new(0),
    });
    World {
        _dir: dir,
        deps,
        alerts,
        certificates: Certificates::new(served.clone()),
        served,
        confirmations: Arc::default(),
    }
}

fn world() -> World {
    world_with(|_| {}, &sns_key().pem)
}

impl World {
    async fn receive(&self, body: &Value) -> Answer {
        self.receive_bytes(body.to_string().as_bytes()).await
    }

    async fn receive_bytes(&self, body: &[u8]) -> Answer {
        self.receive_bytes_at(body, NOW).await
    }

    async fn receive_at(&self, body: &Value, now: &str) -> Answer {
        self.receive_bytes_at(body.to_string().as_bytes(), now)
            .await
    }

    async fn receive_bytes_at(&self, body: &[u8], now: &str) -> Answer {
        let now = Timestamp::parse_rfc3339(now).unwrap();
        Webhook::of(&self.deps, &self.certificates, self.confirmations.as_ref())
            .receive(body, now)
            .await
    }

    async fn suppressed(&self, email: &str) -> bool {
        self.deps
            .store
            .get(&EmailAddress::parse(email).unwrap())
            .await
            .unwrap()
            .is_some()
    }
}

impl World {
    /// The `ingest` function over this world: its certificates and confirmations.
    fn ingest_function(&self) -> IngestFunction {
        IngestFunction {
            context: self.deps.clone(),
            certificates: Certificates::new(self.served.clone()),
            confirmer: self.confirmations.clone(),
        }
    }

    /// An SQS batch of these bodies through the `ingest` function: its answer.
    async fn ingest(&self, bodies: Vec<Value>) -> Value {
        let event = crate::helpers::sqs_batch(bodies);
        sesguard::lambda::ingest::handle(
            &self.ingest_function(),
            lambda_runtime::LambdaEvent::new(event, lambda_runtime::Context::default()),
        )
        .await
        .unwrap()
    }
}

fn code(answer: &Answer) -> String {
    answer.body()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn genuine_messages_of_every_type_under_both_versions_are_acted_on() {
    for version in ["1", "2"] {
        let w = world();
        let answer = w
            .receive(&signed(notification(&format!("n{version}")), version))
            .await;
        assert_eq!(answer.status(), 200, "{version}: {:?}", answer.body());
        assert!(
            w.suppressed("nobody@example.org").await,
            "the bounce was ingested"
        );

        let answer = w
            .receive(&signed(
                confirmation("SubscriptionConfirmation", "s"),
                version,
            ))
            .await;
        assert_eq!(answer.status(), 200, "{:?}", answer.body());
        assert_eq!(
            w.confirmations.0.lock().unwrap().len(),
            1,
            "the subscribe URL was visited"
        );

        let answer = w
            .receive(&signed(
                confirmation("UnsubscribeConfirmation", "u"),
                version,
            ))
            .await;
        assert_eq!(answer.status(), 200);
        assert_eq!(
            w.confirmations.0.lock().unwrap().len(),
            1,
            "an unsubscription's URL is never visited"
        );
        let notices = w.alerts.notices();
        assert_eq!(notices.len(), 1);
        assert!(notices[0].0.contains("feedback stopped"));
    }
}

#[tokio::test]
async fn a_message_without_subject_is_signed_without_it() {
    let w = world();
    let mut body = notification("plain");
    body.as_object_mut().unwrap().remove("Subject");
    assert_eq!(w.receive(&signed(body, "2")).await.status(), 200);
}

#[tokio::test]
async fn every_forgery_is_refused_with_its_reason() {
    let other_key = key(false);
    let genuine = signed(notification("g"), "2");
    let altered = |field: &str, value: Value| {
        let mut body = genuine.clone();
        body[field] = value;
        body
    };
    let mut cases: Vec<(String, Value, &str)> = vec![
        (
            "Message altered".into(),
            altered("Message", json!(sample("ses/complaint.json"))),
            "bad_signature",
        ),
        (
            "MessageId altered".into(),
            altered("MessageId", json!("other-id")),
            "bad_signature",
        ),
        (
            "Timestamp altered".into(),
            altered("Timestamp", json!("2026-11-20T12:58:00.000Z")),
            "bad_signature",
        ),
        (
            "TopicArn altered".into(),
            altered(
                "TopicArn",
                json!("arn:aws:sns:us-east-1:111111111111:other"),
            ),
            "bad_signature",
        ),
        (
            "Subject altered".into(),
            altered("Subject", json!("hello")),
            "bad_signature",
        ),
        (
            "version relabelled".into(),
            altered("SignatureVersion", json!("1")),
            "bad_signature",
        ),
        (
            "unknown version".into(),
            altered("SignatureVersion", json!("3")),
            "signature_version",
        ),
        (
            "signature not base64".into(),
            altered("Signature", json!("!!!")),
            "bad_signature",
        ),
        (
            "stale".into(),
            {
                let mut b = notification("old");
                b["Timestamp"] = json!("2026-11-20T10:59:00.000Z");
                signed(b, "2")
            },
            "stale",
        ),
        (
            "unknown topic, validly signed".into(),
            {
                let mut b = notification("t");
                b["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:attacker");
                signed(b, "2")
            },
            "unknown_topic",
        ),
    ];
    let mut removed = genuine.clone();
    removed.as_object_mut().unwrap().remove("Subject");
    cases.push(("Subject removed".into(), removed, "bad_signature"));
    let mut without = notification("s");
    without.as_object_mut().unwrap().remove("Subject");
    let mut added = signed(without, "2");
    added["Subject"] = json!("Added later");
    cases.push(("Subject added".into(), added, "bad_signature"));
    let mut other = notification("k");
    sign(&mut other, &other_key, "2");
    cases.push(("signed with another key".into(), other, "bad_signature"));
    let mut retyped = genuine.clone();
    retyped["Type"] = json!("SubscriptionConfirmation");
    retyped["SubscribeURL"] =
        json!("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription");
    retyped["Token"] = json!("x");
    cases.push(("Type altered".into(), retyped, "bad_signature"));
    for url in [
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem",
        "https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-abc123.pem",
        "https://me@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem?.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc123.pem#x",
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc123.pem",
        "https://attacker.s3.amazonaws.com/SimpleNotificationService-abc123.pem",
        "https://sns.us-east-1.amazonaws.com/x/SimpleNotificationService-abc123.pem",
    ] {
        let mut b = notification("u");
        b["SigningCertURL"] = json!(url);
        cases.push((
            format!("certificate URL {url}"),
            signed(b, "2"),
            "certificate_url",
        ));
    }

    let w = world();
    for (name, body, expected) in cases {
        let answer = w.receive(&body).await;
        assert_eq!(
            (answer.status(), code(&answer).as_str()),
            (403, expected),
            "{name}: {:?}",
            answer.body()
        );
    }
    assert!(
        !w.suppressed("nobody@example.org").await,
        "no forgery suppressed anyone"
    );
    assert!(w.confirmations.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_subscription_for_another_host_or_action_is_not_visited() {
    let w = world();
    for url in [
        "https://169.254.169.254/latest/meta-data/",
        "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&TopicArn=arn%3Aaws%3Asns%3Aus-east-1%3A111111111111%3Ases-feedback",
    ] {
        let mut body = confirmation("SubscriptionConfirmation", "ssrf");
        body["SubscribeURL"] = json!(url);
        let answer = w.receive(&signed(body, "2")).await;
        assert_eq!(
            (answer.status(), code(&answer).as_str()),
            (403, "subscribe_url"),
            "{url}"
        );
    }
    assert!(w.confirmations.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn replays_expired_certificates_and_version_one_when_refused() {
    let w = world();
    let body = signed(notification("once"), "2");
    assert_eq!(w.receive(&body).await.status(), 200);
    assert_eq!(w.receive(&body).await, Answer::Duplicate);
    assert_eq!(
        w.deps
            .store
            .get(&EmailAddress::parse("nobody@example.org").unwrap())
            .await
            .unwrap()
            .unwrap()
            .count,
        1
    );

    let v2_only = world_with(
        |c| c.webhook.signature_version_2_only = true,
        &sns_key().pem,
    );
    let answer = v2_only.receive(&signed(notification("v1"), "1")).await;
    assert_eq!(code(&answer), "signature_version");

    let expired = key(true);
    let old = world_with(|_| {}, &expired.pem);
    let mut body = notification("exp");
    sign(&mut body, &expired, "2");
    let answer = old.receive(&body).await;
    assert_eq!(
        (answer.status(), code(&answer).as_str()),
        (403, "certificate")
    );
    assert!(answer.body()["error"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn malformed_deliveries_answer_400() {
    let w = world();
    assert_eq!(w.receive_bytes(b"not json").await.status(), 400);
    let mut body = signed(notification("m"), "2");
    body.as_object_mut().unwrap().remove("Signature");
    assert_eq!(w.receive(&body).await.status(), 400);
    assert_eq!(
        w.receive_bytes(&vec![b' '; 256 * 1024 + 1]).await.status(),
        400
    );
    // Validly signed, but the SES JSON inside is broken: nothing to retry.
    let mut inner = notification("inner");
    inner["Message"] = json!("{\"notificationType\":\"Bounce\"}");
    assert_eq!(w.receive(&signed(inner, "2")).await.status(), 400);
}

#[tokio::test]
async fn a_failed_certificate_fetch_answers_503_and_is_tried_again_after_a_minute() {
    let w = world();
    *w.served.fail.lock().unwrap() = 1;
    let body = signed(notification("retry"), "2");
    let first = w.receive(&body).await;
    assert_eq!(first.status(), 503, "SNS retries: {:?}", first.body());
    // Within the minute the URL is not fetched again: made-up certificate names on an allowed
    // topic cannot drive outbound fetches.
    assert_eq!(w.receive(&body).await.status(), 503);
    assert_eq!(*w.served.fetches.lock().unwrap(), 1);
    let later = "2026-11-20T13:01:01.000Z";
    assert_eq!(w.receive_at(&body, later).await.status(), 200);
    assert_eq!(
        w.receive_at(&signed(notification("again"), "2"), later)
            .await
            .status(),
        200
    );
    assert_eq!(
        *w.served.fetches.lock().unwrap(),
        2,
        "one failure, then one fetch cached"
    );
}

#[tokio::test]
async fn a_cached_certificate_is_dropped_at_its_not_after_and_fetched_again() {
    let w = world_with(|_| {}, &key_valid_until(2026, 11, 21).pem);
    let mut body = notification("before");
    sign(&mut body, key_valid_until(2026, 11, 21), "2");
    assert_eq!(w.receive(&body).await.status(), 200);
    let mut late = notification("after");
    late["Timestamp"] = json!("2026-11-21T00:30:00.000Z");
    sign(&mut late, key_valid_until(2026, 11, 21), "2");
    let answer = w.receive_at(&late, "2026-11-21T00:31:00.000Z").await;
    assert_eq!(
        (answer.status(), code(&answer)),
        (403, "certificate".to_owned())
    );
    assert_eq!(
        *w.served.fetches.lock().unwrap(),
        2,
        "fetched again once the cached one expired"
    );
}

#[tokio::test]
async fn an_unreachable_store_answers_503_so_sns_retries() {
    let mut config = example_config();
    config.webhook.topics = vec![TOPIC.into()];
    let (deps, _) = deps_with(config, Arc::new(crate::ingest_paths::Unreachable));
    let served = Arc::new(Served {
        pem: sns_key().pem.clone(),
        fail: Mutex::new(0),
        fetches: Mutex::new(0),
    });
    let certificates = Certificates::new(served);
    let now = Timestamp::parse_rfc3339(NOW).unwrap();
    let answer = Webhook::of(&deps, &certificates, &Confirmations::default())
        .receive(
            signed(notification("down"), "2").to_string().as_bytes(),
            now,
        )
        .await;
    assert_eq!(answer.status(), 503);
}

#[tokio::test]
async fn the_handler_answers_post_only_with_the_status_of_the_verdict() {
    let w = world();
    let state = WebhookFunction {
        context: w.deps.clone(),
        certificates: Certificates::new(w.served.clone()),
        confirmer: Arc::new(Confirmations::default()),
    };
    let get = Request::new(Body::Empty);
    assert_eq!(handle(&state, get).await.unwrap().status(), 405);
    // The handler reads the clock of its dependencies (fixed at the samples' time).
    assert_eq!(SAMPLE_NOW, NOW);
    let mut post = Request::new(Body::from(signed(notification("h"), "2").to_string()));
    *post.method_mut() = lambda_http::http::Method::POST;
    let response = handle(&state, post).await.unwrap();
    assert_eq!(response.status(), 200);
    let mut forged = Request::new(Body::from(
        signed(notification("f"), "2")
            .to_string()
            .replace("Nobody", "Somebody"),
    ));
    *forged.method_mut() = lambda_http::http::Method::POST;
    assert_eq!(handle(&state, forged).await.unwrap().status(), 403);
}

#[test]
fn sns_verify_prints_its_verdict_and_exits_zero_only_when_valid() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, &sns_key().pem).unwrap();
    let now = {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        Timestamp::from_millis(i64::try_from(millis).unwrap()).to_rfc3339()
    };
    let mut body = notification("cli");
    body["Timestamp"] = json!(now);
    let good = dir.path().join("good.json");
    std::fs::write(&good, signed(body.clone(), "1").to_string()).unwrap();
    let mut forged = signed(body.clone(), "1");
    forged["Message"] = json!("{}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, forged.to_string()).unwrap();

    let verify = |file: &std::path::Path, extra: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_sesguard"))
            .current_dir(crate::helpers::root())
            .env(
                "SESGUARD_STORE",
                format!("sqlite:{}", dir.path().join("s.db").display()),
            )
            .env("SESGUARD_CONFIG", "infra/sesguard.example.toml")
            .env_remove("SESGUARD_WEBHOOK_TOPICS")
            .env("RUST_LOG", "error")
            .args([
                "sns",
                "verify",
                file.to_str().unwrap(),
                "--cert",
                cert.to_str().unwrap(),
                "--json",
            ])
            .args(extra)
            .output()
            .unwrap();
        let verdict: Value = serde_json::from_slice(&output.stdout).unwrap();
        (output.status.code(), verdict)
    };
    let (code, verdict) = verify(&good, &["--topic", TOPIC]);
    assert_eq!(
        (code, verdict),
        (Some(0), json!({"valid": true, "reason": null}))
    );
    // The same message as a Lambda SNS record carries it: `SigningCertUrl`, `UnsubscribeUrl`.
    let mut record = signed(body.clone(), "1");
    for (http, lambda) in [
        ("SigningCertURL", "SigningCertUrl"),
        ("UnsubscribeURL", "UnsubscribeUrl"),
    ] {
        let value = record.as_object_mut().unwrap().remove(http).unwrap();
        record[lambda] = value;
    }
    let lambda = dir.path().join("lambda.json");
    std::fs::write(&lambda, record.to_string()).unwrap();
    assert_eq!(verify(&lambda, &["--topic", TOPIC]).0, Some(0));
    // Without a subject SNS signs no `Subject`; the Lambda record says `"Subject": null`.
    let mut plain = body.clone();
    plain.as_object_mut().unwrap().remove("Subject");
    let mut record = signed(plain, "2");
    record["Subject"] = Value::Null;
    let value = record
        .as_object_mut()
        .unwrap()
        .remove("SigningCertURL")
        .unwrap();
    record["SigningCertUrl"] = value;
    std::fs::write(&lambda, record.to_string()).unwrap();
    assert_eq!(verify(&lambda, &["--topic", TOPIC]).0, Some(0));
    let (code, verdict) = verify(&bad, &["--topic", TOPIC]);
    assert_eq!((code, verdict["valid"].as_bool()), (Some(1), Some(false)));
    assert_eq!(verdict["reason"], "signature does not verify");
    let (code, verdict) = verify(&good, &[]);
    assert_eq!(code, Some(1));
    assert!(
        verdict["reason"]
            .as_str()
            .unwrap()
            .contains("is not allowed"),
        "the configuration allows no topic"
    );
}

#[tokio::test]
async fn no_truncated_or_corrupted_delivery_makes_it_panic_or_pass() {
    let w = world();
    let genuine = signed(notification("fuzz"), "2").to_string().into_bytes();
    let mut seen = std::collections::BTreeSet::new();
    for end in 0..genuine.len() {
        let answer = w.receive_bytes(&genuine[..end]).await;
        assert!(
            matches!(answer.status(), 400 | 403),
            "prefix of {end} bytes answered {}",
            answer.status()
        );
        seen.insert(answer.status());
    }
    // Flip one byte at a time (a sample of positions): never a panic, and never accepted
    // unless only unsigned parts changed (SNS does not sign UnsubscribeURL, for one).
    let mut accepted = 0;
    for position in (0..genuine.len()).step_by(7) {
        let mut corrupted = genuine.clone();
        corrupted[position] ^= 0x20;
        let answer = w.receive_bytes(&corrupted).await;
        seen.insert(answer.status());
        if answer.status() == 200 {
            assert!(
                corrupted_is_equivalent(&genuine, &corrupted),
                "byte {position} flipped was accepted"
            );
            accepted += 1;
        }
    }
    assert!(seen.contains(&400) && seen.contains(&403));
    assert!(
        accepted < genuine.len() / 7 / 4,
        "most corruptions are refused ({accepted} accepted)"
    );
}

/// Flipping the case of a JSON key's letter or of insignificant text can leave a message that
/// still verifies only if the signed strings are unchanged: compare what was signed.
fn corrupted_is_equivalent(genuine: &[u8], corrupted: &[u8]) -> bool {
    match (Envelope::parse(genuine), Envelope::parse(corrupted)) {
        (Ok(a), Ok(b)) => a.string_to_sign() == b.string_to_sign() && a.signature == b.signature,
        _ => false,
    }
}

#[test]
fn a_signing_key_shorter_than_2048_bits_is_refused_with_that_reason() {
    use rsa::pkcs1::EncodeRsaPublicKey;
    /// A 1024-bit RSA public key, certified by a 2048-bit one (nothing signs with 1024 bits).
    struct ShortKey(Vec<u8>);
    impl rcgen::PublicKeyData for ShortKey {
        fn der_bytes(&self) -> &[u8] {
            &self.0
        }
        fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
            &rcgen::PKCS_RSA_SHA256
        }
    }
    let short = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let public = ShortKey(
        short
            .to_public_key()
            .to_pkcs1_der()
            .unwrap()
            .as_bytes()
            .to_vec(),
    );
    let issuer_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let issuer_params = rcgen::CertificateParams::new(vec!["ca.example".into()]).unwrap();
    let issuer = rcgen::Issuer::from_params(&issuer_params, &issuer_key);
    let params = rcgen::CertificateParams::new(vec!["sns.amazonaws.com".into()]).unwrap();
    let pem = params.signed_by(&public, &issuer).unwrap().pem();
    let error = SigningCertificate::from_pem(pem.as_bytes()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "signing certificate refused: its RSA key has 1024 bits; at least 2048 are required"
    );
    assert!(SigningCertificate::from_pem(&sns_key().pem).is_ok());
}

#[test]
fn ingest_verify_records_the_genuine_envelopes_and_names_the_forged_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, &sns_key().pem).unwrap();
    let millis = |ago: i64| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        Timestamp::from_millis(now - ago).to_rfc3339()
    };
    let envelope = |i: usize, sent: String| {
        let mut message: Value =
            serde_json::from_str(&sample("ses/bounce-permanent.json")).unwrap();
        message["bounce"]["feedbackId"] = json!(format!("bulk-{i}"));
        message["bounce"]["bouncedRecipients"] =
            json!([{"emailAddress": format!("bulk{i}@example.com")}]);
        let mut body = notification(&format!("bulk-{i}"));
        body["Message"] = json!(message.to_string());
        body["Timestamp"] = json!(sent);
        body
    };
    let write = |name: &str, body: &Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, body.to_string()).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let mut files: Vec<String> = (0..20)
        .map(|i| write(&format!("{i}.json"), &signed(envelope(i, millis(0)), "2")))
        .collect();
    let mut forged = signed(envelope(20, millis(0)), "2");
    forged["Message"] = json!(
        forged["Message"]
            .as_str()
            .unwrap()
            .replace("bulk20", "victim")
    );
    files.push(write("forged.json", &forged));
    files.push(write(
        "stale.json",
        &signed(envelope(21, millis(3 * 3600 * 1000)), "2"),
    ));
    let mut elsewhere = envelope(22, millis(0));
    elsewhere["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:someone-else");
    files.push(write("elsewhere.json", &signed(elsewhere, "2")));

    let store = format!("sqlite:{}", dir.path().join("s.db").display());
    let sesguard = |args: &[&str], stdin: Option<String>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sesguard"));
        command
            .current_dir(crate::helpers::root())
            .env("SESGUARD_STORE", &store)
            .env("SESGUARD_CONFIG", "infra/sesguard.example.toml")
            .env_remove("SESGUARD_WEBHOOK_TOPICS")
            .env("RUST_LOG", "error")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        {
            use std::io::Write as _;
            let mut input = child.stdin.take().unwrap();
            input
                .write_all(stdin.unwrap_or_default().as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    };
    let cert_arg = cert.to_str().unwrap();
    let mut args = vec![
        "ingest", "--verify", "--cert", cert_arg, "--topic", TOPIC, "--chunk", "7", "--json",
    ];
    args.extend(files.iter().map(String::as_str));
    let output = sesguard(&args, None);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a forged envelope fails the run"
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (
            &summary["processed"],
            &summary["suppressed"],
            &summary["failed"]
        ),
        (&json!(20), &json!(20), &json!(3))
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    for (name, why) in [
        ("forged.json", "signature does not verify"),
        ("stale.json", "message is stale"),
        ("elsewhere.json", "is not allowed"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("failed ") && l.contains(name) && l.contains(why)),
            "{name}: {stderr}"
        );
    }
    let lookup = |address: &str| {
        let output = sesguard(&["suppressions", "get", address, "--json"], None);
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    assert_eq!(lookup("bulk7@example.com")["reason"], "bounce");
    assert_eq!(lookup("victim@example.com"), Value::Null);

    // Standard input as JSON lines, one envelope per line: the same path.
    let lines: String = (30..35)
        .map(|i| format!("{}\n", signed(envelope(i, millis(0)), "1")))
        .collect();
    let output = sesguard(
        &[
            "ingest", "--verify", "--cert", cert_arg, "--topic", TOPIC, "--json", "-",
        ],
        Some(lines),
    );
    assert_eq!(output.status.code(), Some(0));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["processed"], 5);
}

/// A backup account's topic subscribed to the feedback queue by its owner stays pending until
/// the queue's owner confirms: SNS puts the signed confirmation into the queue. Ingest
/// verifies it exactly as the webhook does, confirms it once with an audit entry, and keeps
/// nothing of what does not verify, alerting once per topic.
#[tokio::test]
async fn a_confirmation_through_the_feedback_queue_is_verified_then_confirmed_once() {
    let w = world();
    let genuine = signed(confirmation("SubscriptionConfirmation", "s1"), "2");
    let mut forged = genuine.clone();
    forged["MessageId"] = json!("s2");
    let stranger = "arn:aws:sns:us-east-1:999999999999:not-ours";
    let mut unknown = confirmation("SubscriptionConfirmation", "s3");
    unknown["TopicArn"] = json!(stranger);
    let unknown = signed(unknown, "2");
    let mut unknown_again = unknown.clone();
    unknown_again["MessageId"] = json!("s4");
    let unknown_again = signed(unknown_again, "2");
    let bounce = serde_json::from_str::<Value>(&sample("ses/bounce-permanent.json")).unwrap();

    let answer = w
        .ingest(vec![
            genuine.clone(),
            bounce,
            forged,
            unknown,
            unknown_again,
            genuine.clone(),
        ])
        .await;

    assert_eq!(
        answer["batchItemFailures"],
        json!([]),
        "nothing is retried: {answer}"
    );
    assert_eq!(
        *w.confirmations.0.lock().unwrap(),
        vec![genuine["SubscribeURL"].as_str().unwrap().to_owned()],
        "the genuine confirmation was visited once, the forged and unknown ones never"
    );
    assert!(
        w.suppressed("nobody@example.org").await,
        "the batch's feedback was ingested"
    );
    let audit = w.deps.store.audit(10).await.unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(
        (
            audit[0].action.as_str(),
            audit[0].target.as_str(),
            audit[0].actor.as_str()
        ),
        ("subscription.confirm", TOPIC, "sesguard:ingest")
    );
    let refusals: Vec<Value> = w
        .alerts
        .notices()
        .into_iter()
        .filter(|(subject, _)| subject.contains("subscription refused"))
        .map(|(_, body)| body)
        .collect();
    let topics: Vec<&str> = refusals
        .iter()
        .map(|b| b["topic"].as_str().unwrap())
        .collect();
    assert_eq!(
        topics,
        [TOPIC, stranger],
        "one alert per refused topic: {refusals:?}"
    );
    assert_eq!(refusals[0]["reason"], "bad_signature");
    assert_eq!(refusals[1]["reason"], "unknown_topic");

    // A certificate that cannot be fetched now is a transient failure: the record is retried.
    let w = world();
    *w.served.fail.lock().unwrap() = 1;
    let answer = w.ingest(vec![genuine]).await;
    assert_eq!(
        answer["batchItemFailures"][0]["itemIdentifier"], "r0",
        "{answer}"
    );
    assert!(w.confirmations.0.lock().unwrap().is_empty());
}
