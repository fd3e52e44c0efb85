//! Shared test set-up: samples, a fixed clock, an isolated store per test, and the local
//! DynamoDB-compatible server (moto) with a request log.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;
use sesguard::adapters::dynamodb::{DynamoStore, Tables};
use sesguard::adapters::sqlite::SqliteStore;
use sesguard::app::Context;
use sesguard::config::Config;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::reputation::history::Alert;
use sesguard::ports::{AlertError, AlertSink, Clock, Store};

use crate::wire::RequestCounter;
use crate::world::World;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `events/`, as text.
pub fn sample(name: &str) -> String {
    std::fs::read_to_string(root().join("events").join(name))
        .unwrap_or_else(|e| panic!("events/{name}: {e}"))
}

/// A file under `events/`, as JSON.
pub fn sample_json(name: &str) -> Value {
    serde_json::from_str(&sample(name)).unwrap_or_else(|e| panic!("events/{name}: {e}"))
}

/// The records of a sample, as the ingest path receives them.
pub fn sample_inbound(name: &str) -> Vec<sesguard::app::ingest::Inbound> {
    sesguard::lambda::ingest::decode(sample_json(name), name).1
}

/// An SQS Lambda event carrying these bodies (raw message delivery), message ids `r0`, `r1`...
pub fn sqs_batch(bodies: Vec<Value>) -> Value {
    let records: Vec<Value> = bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| {
            serde_json::json!({"messageId": format!("r{i}"), "receiptHandle": "h", "body": body.to_string(), "eventSource": "aws:sqs"})
        })
        .collect();
    serde_json::json!({ "Records": records })
}

/// The example configuration.
/// The example configuration, with prevention's DNS off (a test that wants DNS starts a zone
/// server of its own and points `prevention.dns` at it).
pub fn example_config() -> Config {
    let mut config = Config::load(Some(&root().join("infra/sesguard.example.toml")))
        .expect("example configuration");
    config.prevention.dns = sesguard::config::DnsServer::Off;
    config
}

/// A clock the test sets.
#[derive(Debug)]
pub struct FixedClock(Mutex<Timestamp>);

impl FixedClock {
    pub fn at(rfc3339: &str) -> Arc<Self> {
        Arc::new(Self(Mutex::new(Timestamp::parse_rfc3339(rfc3339).unwrap())))
    }

    /// Moves the clock to `rfc3339`.
    pub fn set(&self, rfc3339: &str) {
        *self.0.lock().unwrap() = Timestamp::parse_rfc3339(rfc3339).unwrap();
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}

/// The time the samples were recorded around; their windows include it.
pub const SAMPLE_NOW: &str = "2026-11-20T13:00:00.000Z";

/// A fresh SQLite store in a temporary directory (kept alive by the returned guard).
pub fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("store.db")).unwrap();
    (dir, store)
}

/// Alerts and notices kept in memory for the test to read.
#[derive(Debug, Clone, Default)]
pub struct RecordedAlerts(Arc<Mutex<Vec<Alert>>>, Arc<Mutex<Vec<(String, Value)>>>);

impl RecordedAlerts {
    pub fn all(&self) -> Vec<Alert> {
        self.0.lock().unwrap().clone()
    }

    pub fn notices(&self) -> Vec<(String, Value)> {
        self.1.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl AlertSink for RecordedAlerts {
    async fn publish(&self, alert: &Alert) -> Result<(), AlertError> {
        self.0.lock().unwrap().push(alert.clone());
        Ok(())
    }

    async fn notice(&self, subject: &str, body: &Value) -> Result<(), AlertError> {
        self.1
            .lock()
            .unwrap()
            .push((subject.to_owned(), body.clone()));
        Ok(())
    }
}

/// Dependencies over `store` with the example configuration, a fixed clock, and recorded
/// alerts.
pub fn deps(store: Arc<dyn Store>) -> Context {
    World::builder().store(store).build().deps
}

/// Dependencies over `store` with `config`, a fixed clock, and the alerts they record.
pub fn deps_with(config: Config, store: Arc<dyn Store>) -> (Context, RecordedAlerts) {
    let world = World::builder().config(config).store(store).build();
    (world.deps, world.alerts)
}

/// The endpoint of the local DynamoDB-compatible server: `SESGUARD_TEST_DYNAMODB` when set
/// (the Makefile starts one), else a moto server started here from the project's virtualenv,
/// which a watchdog stops when this test process ends.
pub fn dynamodb_endpoint() -> &'static str {
    static ENDPOINT: OnceLock<String> = OnceLock::new();
    ENDPOINT.get_or_init(|| {
        if let Ok(endpoint) = std::env::var("SESGUARD_TEST_DYNAMODB") {
            return endpoint;
        }
        let python = root().join(".venv/bin/python");
        assert!(
            python.exists(),
            "DynamoDB tests need a local server: run `make test` (it installs moto into .venv and \
             starts it), or set SESGUARD_TEST_DYNAMODB to a DynamoDB-compatible endpoint on 127.0.0.1"
        );
        start_moto(&python)
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `tests/local-dynamodb.py` (moto, one request at a time) under a watchdog that
/// stops it when this process ends.
fn start_moto(python: &Path) -> String {
    let port = free_port();
    let script = format!(
        "{} {} {port} >/dev/null 2>&1 & server=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill $server",
        python.display(),
        root().join("tests/local-dynamodb.py").display(),
        parent = std::process::id()
    );
    // The watchdog shell outlives every test; it is kept here and reaped when the process exits.
    static WATCHDOG: OnceLock<Mutex<std::process::Child>> = OnceLock::new();
    let watchdog = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .expect("starting the local DynamoDB server");
    let _ = WATCHDOG.set(Mutex::new(watchdog));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the local DynamoDB server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("http://127.0.0.1:{port}")
}

/// An SDK configuration for the local AWS-compatible server, with fixed fake credentials:
/// clients built from it never reach real AWS.
pub fn local_sdk() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .endpoint_url(dynamodb_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::SharedCredentialsProvider::new(
            Credentials::new("testing", "testing", None, None, "sesguard-tests"),
        ))
        .build()
}

/// A fresh queue on the local server, named `PREFIX-<unique>`: its URL and ARN.
pub async fn local_queue(sqs: &aws_sdk_sqs::Client, prefix: &str) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let name = unique_tables()
        .state
        .replace("state-", &format!("{prefix}-"));
    let url = sqs
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap();
    let arn = attributes.attributes.unwrap()[&QueueAttributeName::QueueArn].clone();
    (url, arn)
}

/// An SESv2 client answered by SDK-level mock rules (no network at all).
pub fn mocked_sesv2(rules: &[&aws_smithy_mocks::Rule]) -> aws_sdk_sesv2::Client {
    let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new()
        .rule_mode(aws_smithy_mocks::RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let config = aws_sdk_sesv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "testing",
            "testing",
            None,
            None,
            "sesguard-tests",
        ))
        .http_client(aws_smithy_mocks::create_mock_http_client())
        .interceptor(interceptor)
        .build();
    aws_sdk_sesv2::Client::from_conf(config)
}

/// A DynamoDB client for the local server, with fixed fake credentials (never real AWS).
pub fn dynamodb_client(log: Option<RequestCounter>) -> aws_sdk_dynamodb::Client {
    let mut config = aws_sdk_dynamodb::config::Builder::from(&local_sdk());
    if let Some(log) = log {
        config = config.interceptor(log);
    }
    aws_sdk_dynamodb::Client::from_conf(config.build())
}

/// Fresh tables with names no other test uses.
pub fn unique_tables() -> Tables {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let id = format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    Tables {
        suppressions: format!("suppressions-{id}"),
        state: format!("state-{id}"),
    }
}

/// A DynamoDB store on fresh tables.
pub async fn dynamodb() -> DynamoStore {
    dynamodb_logged(None).await
}

/// A DynamoDB store on fresh tables whose requests are logged.
pub async fn dynamodb_logged(log: Option<RequestCounter>) -> DynamoStore {
    let store = DynamoStore::new(dynamodb_client(log), unique_tables());
    store
        .create_tables()
        .await
        .expect("creating tables on the local server");
    store
}

/// Confirms nothing: for functions under test that meet no SNS subscription message.
struct NoConfirmations;

#[async_trait::async_trait]
impl sesguard::ports::SubscriptionConfirmer for NoConfirmations {
    async fn confirm(&self, url: &str) -> Result<(), sesguard::ports::FetchError> {
        Err(sesguard::ports::FetchError {
            url: url.to_owned(),
            source: "no subscription is confirmed in this test".into(),
        })
    }
}

/// The `ingest` function around `deps`; SNS certificates and confirmations fail (no
/// subscription message is expected: `webhook.rs` tests those).
pub fn ingest_function(deps: &Context) -> sesguard::wiring::IngestFunction {
    use sesguard::adapters::sns_https::GivenCertificate;
    sesguard::wiring::IngestFunction {
        context: deps.clone(),
        certificates: sesguard::app::webhook::Certificates::new(Arc::new(GivenCertificate(
            Vec::new(),
        ))),
        confirmer: Arc::new(NoConfirmations),
    }
}
