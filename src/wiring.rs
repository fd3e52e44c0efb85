//! The composition root: the one place that decides whether this process runs **deployed**
//! (DynamoDB, SESv2 `SendEmail` and account calls, SES's reputation figures from CloudWatch,
//! SNS alerts, SQS visibility) or **local** (embedded SQLite, the file outbox, log alerts, SES's
//! figures from a file, no SES), and that builds every function's dependencies from the
//! environment. Entry points (`src/bin`, [`crate::cli`]) call it; nothing below them does.
//! "Config is expensive, clients are cheap": the AWS SDK configuration is loaded here once per
//! process, and only when something needs AWS.
//!
//! The store address decides the composition: `SESGUARD_STORE=dynamodb` is a deployment, so
//! every AWS part comes with it; `sqlite:PATH` is a local run, where an SNS alert topic is the
//! only AWS part that may still be configured.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use aws_config::SdkConfig;

use crate::adapters::alerts::{LogAlerts, SnsAlerts};
use crate::adapters::cloudwatch::CloudWatchReputation;
use crate::adapters::dns::{HickoryResolver, NoDns};
use crate::adapters::dynamodb::{DynamoStore, Tables};
use crate::adapters::outbox::FileOutbox;
use crate::adapters::ses_figures_file::SesFiguresFile;
use crate::adapters::sesv2::{NoSes, Sesv2Accounts};
use crate::adapters::sns_https::{GivenCertificate, SnsHttp};
use crate::adapters::sqlite::SqliteStore;
use crate::adapters::sqs::SqsVisibility;
use crate::adapters::store_url::{DEFAULT_STORE, StoreUrl};
use crate::app::context::{Context, Parts};
use crate::app::send::SenderMemory;
use crate::app::webhook::Certificates;
use crate::config::Config;
use crate::ports::{
    AlertSink, CertificateSource, Clock, DomainResolver, MailTransport, QueueVisibility,
    SesAccount, SesReputation, Store, SubscriptionConfirmer, SystemClock,
};

/// The environment variables the wiring reads, captured once. Tests build one from pairs
/// instead of changing the process environment.
#[derive(Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
}

/// Variables that hold secrets: never printed.
const SECRET_VARS: &[&str] = &["SESGUARD_ADMIN_TOKEN"];

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.vars.iter().map(|(key, value)| {
            let value = if SECRET_VARS.contains(&key.as_str()) {
                "[redacted]"
            } else {
                value.as_str()
            };
            (key, value)
        });
        f.debug_map().entries(shown).finish()
    }
}

impl Environment {
    /// The process's `SESGUARD_*` variables, and `AWS_ENDPOINT_URL` (a run against a local
    /// emulator: [`SnsOrigin`](crate::domain::sns::delivery::SnsOrigin)). Any other variable is
    /// never read, so one that is not UTF-8 does no harm; one of these that is not is left out.
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars_os().filter_map(|(key, value)| {
            let key = key.into_string().ok()?;
            let value = value.into_string().ok()?;
            (key.starts_with("SESGUARD_") || key == "AWS_ENDPOINT_URL").then_some((key, value))
        }))
    }

    /// An environment of these variables only.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// One variable's value.
    pub fn var(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }
}

/// Which parts a process runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Composition {
    /// In AWS: DynamoDB, SESv2, SNS, SQS.
    Deployed,
    /// On this machine: the embedded store at this path, the file outbox, log alerts.
    Local(PathBuf),
}

/// How the admin API authenticates its callers.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// The function URL's `AWS_IAM` auth: the verified caller is in the request context.
    Iam,
    /// A bearer token (its SHA-256; `None`: no token configured, nothing is served).
    Token(Option<[u8; 32]>),
}

impl std::fmt::Debug for Auth {
    // Not even the token's digest is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Iam => f.write_str("Iam"),
            Auth::Token(Some(_)) => f.write_str("Token(set)"),
            Auth::Token(None) => f.write_str("Token(unset)"),
        }
    }
}

impl Auth {
    /// A bearer token; shorter than 16 characters counts as none.
    pub fn token(token: Option<&str>) -> Self {
        use sha2::{Digest, Sha256};
        Auth::Token(
            token
                .filter(|t| t.len() >= 16)
                .map(|t| Sha256::digest(t.as_bytes()).into()),
        )
    }

    /// From `SESGUARD_ADMIN_AUTH` (`iam` or `token`, default `token`) and
    /// `SESGUARD_ADMIN_TOKEN`.
    pub fn from_environment(env: &Environment) -> anyhow::Result<Self> {
        let auth = match env.var("SESGUARD_ADMIN_AUTH") {
            Some("iam") => Auth::Iam,
            Some("token") | None => Auth::token(env.var("SESGUARD_ADMIN_TOKEN")),
            Some(other) => {
                anyhow::bail!("SESGUARD_ADMIN_AUTH is `{other}`: expected `iam` or `token`")
            }
        };
        if auth == Auth::Token(None) {
            tracing::warn!(
                "no SESGUARD_ADMIN_TOKEN of 16 characters or more: every request will be refused"
            );
        }
        Ok(auth)
    }
}

/// What the `sender` function needs.
pub struct SenderFunction {
    /// The shared ports.
    pub context: Context,
    /// Keeps deferred messages in the queue (absent in local runs without SQS).
    pub visibility: Option<Arc<dyn QueueVisibility>>,
    /// What the instance keeps between batches.
    pub memory: SenderMemory,
}

/// What the `ingest` function needs: the context, and what verifies and confirms the SNS
/// subscription messages that reach the feedback queue.
pub struct IngestFunction {
    /// The shared ports.
    pub context: Context,
    /// Signing certificates, cached per instance.
    pub certificates: Certificates,
    /// Confirms subscriptions.
    pub confirmer: Arc<dyn SubscriptionConfirmer>,
}

/// What the `webhook` function needs.
pub struct WebhookFunction {
    /// The shared ports.
    pub context: Context,
    /// Signing certificates, cached per instance.
    pub certificates: Certificates,
    /// Confirms subscriptions.
    pub confirmer: Arc<dyn SubscriptionConfirmer>,
}

/// What the `admin` function needs.
pub struct AdminFunction {
    /// The shared ports.
    pub context: Context,
    /// How callers are authenticated.
    pub auth: Auth,
}

/// The loaded configuration, the chosen composition and, when AWS is needed, the SDK's
/// configuration: everything the builders below draw on.
pub struct Wiring {
    env: Environment,
    config: Config,
    composition: Composition,
    sdk: Option<SdkConfig>,
}

impl Wiring {
    /// From the process environment; the AWS SDK configuration is loaded from it (its usual
    /// chain; `AWS_ENDPOINT_URL` for a local emulator) when the composition needs AWS.
    pub async fn from_env() -> anyhow::Result<Self> {
        Self::from_environment(Environment::from_process()).await
    }

    /// From `env`; the AWS SDK configuration from the process's usual chain when needed.
    pub async fn from_environment(env: Environment) -> anyhow::Result<Self> {
        let mut wiring = Self::plan(env, None)?;
        if wiring.needs_aws() {
            wiring.sdk = Some(aws_config::load_from_env().await);
        }
        Ok(wiring)
    }

    /// From `env` with a given AWS SDK configuration (tests: a region and a local endpoint,
    /// no credentials chain). Building calls no AWS service.
    pub fn with_sdk(env: Environment, sdk: SdkConfig) -> anyhow::Result<Self> {
        Self::plan(env, Some(sdk))
    }

    fn plan(env: Environment, sdk: Option<SdkConfig>) -> anyhow::Result<Self> {
        let config_path = env.var("SESGUARD_CONFIG").map(PathBuf::from);
        let config = Config::load_with(config_path.as_deref(), |key| {
            env.var(key).map(str::to_owned)
        })?;
        let store = env.var("SESGUARD_STORE").unwrap_or(DEFAULT_STORE);
        let composition = match store.parse::<StoreUrl>()? {
            StoreUrl::Dynamodb => Composition::Deployed,
            StoreUrl::Sqlite(path) => Composition::Local(path),
        };
        Ok(Self {
            env,
            config,
            composition,
            sdk,
        })
    }

    /// For the CLI: an explicit configuration file and store address.
    pub async fn for_cli(config: Option<&Path>, store: &str) -> anyhow::Result<Self> {
        let mut pairs = vec![("SESGUARD_STORE".to_owned(), store.to_owned())];
        if let Some(path) = config {
            pairs.push(("SESGUARD_CONFIG".into(), path.display().to_string()));
        }
        // The configuration's own environment overrides still apply.
        let env = Environment::from_pairs(
            Environment::from_process()
                .vars
                .into_iter()
                .filter(|(key, _)| key != "SESGUARD_CONFIG" && key != "SESGUARD_STORE")
                .chain(pairs),
        );
        Self::from_environment(env).await
    }

    fn needs_aws(&self) -> bool {
        self.composition == Composition::Deployed || self.config.alerts.topic_arn.is_some()
    }

    fn sdk(&self, part: &str) -> anyhow::Result<&SdkConfig> {
        self.sdk
            .as_ref()
            .with_context(|| format!("{part} needs the AWS SDK configuration"))
    }

    /// Which parts this process runs on.
    pub fn composition(&self) -> &Composition {
        &self.composition
    }

    /// The loaded configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Creates the DynamoDB tables where they do not exist (`sesguard store create-tables`);
    /// nothing to do for the embedded store, which creates its schema when opened.
    pub async fn create_tables(&self) -> anyhow::Result<()> {
        if self.composition == Composition::Deployed {
            let sdk = self.sdk("the DynamoDB store")?;
            DynamoStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                Tables::from(&self.config.tables),
            )
            .create_tables()
            .await?;
        }
        Ok(())
    }

    /// Where SNS signing certificates come from: the certificate at `given` (tests, and
    /// `sesguard sns verify --cert`), else fetched over HTTPS from the URL each message names.
    /// The second part is the HTTPS client, which also confirms subscriptions.
    pub fn certificate_source(
        &self,
        given: Option<&Path>,
    ) -> anyhow::Result<(Arc<dyn CertificateSource>, Arc<SnsHttp>)> {
        let http = Arc::new(
            SnsHttp::new(
                self.config.webhook.fetch_timeout,
                self.config.webhook.origin.https_only(),
            )
            .context("building the HTTPS client")?,
        );
        let source: Arc<dyn CertificateSource> = match given {
            Some(path) => Arc::new(GivenCertificate(
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
            )),
            None => http.clone(),
        };
        Ok((source, http))
    }

    /// The ports every function shares; the `ingest` function needs nothing more.
    pub async fn context(&self) -> anyhow::Result<Context> {
        let config = &self.config;
        let (store, ses): (Arc<dyn Store>, SesParts) = match &self.composition {
            Composition::Deployed => {
                let sdk = self.sdk("the DynamoDB store")?;
                let store = DynamoStore::new(
                    aws_sdk_dynamodb::Client::new(sdk),
                    Tables::from(&config.tables),
                );
                // One set of SESv2 clients (one per account, through its role) serves both the
                // account calls and SendEmail, so they share the quota cache.
                let sesv2 = Arc::new(Sesv2Accounts::from_config(sdk, config).await);
                // SES's own figures, per account the same way (its region, its role).
                let reputation = Arc::new(CloudWatchReputation::from_config(sdk, config).await);
                let ses = SesParts {
                    account: sesv2.clone(),
                    reputation,
                    transport: sesv2,
                };
                (Arc::new(store), ses)
            }
            Composition::Local(path) => {
                let store = SqliteStore::open(path)
                    .with_context(|| format!("opening SQLite store {}", path.display()))?;
                (Arc::new(store), local_ses(config))
            }
        };
        let alerts: Arc<dyn AlertSink> = match &config.alerts.topic_arn {
            Some(topic) => Arc::new(SnsAlerts::new(
                aws_sdk_sns::Client::new(self.sdk("the SNS alert topic")?),
                topic.clone(),
            )),
            None => Arc::new(LogAlerts::new(config.alerts.file.clone())),
        };
        let parts = Parts {
            store,
            clock: Arc::new(SystemClock),
            alerts,
            ses: ses.account,
            reputation: ses.reputation,
            transport: ses.transport,
            resolver: resolver(config)?,
        };
        Ok(Context::new(config.clone(), parts))
    }

    /// The `sender` function: the context, and SQS to keep deferred messages in their queue
    /// when deployed.
    pub async fn sender(&self) -> anyhow::Result<SenderFunction> {
        let visibility: Option<Arc<dyn QueueVisibility>> = match self.composition {
            Composition::Deployed => Some(Arc::new(SqsVisibility::new(aws_sdk_sqs::Client::new(
                self.sdk("the SQS send queue")?,
            )))),
            Composition::Local(_) => None,
        };
        Ok(SenderFunction {
            context: self.context().await?,
            visibility,
            memory: SenderMemory::default(),
        })
    }

    /// The `ingest` function: the context, and SNS's certificates and confirmations for
    /// the subscription messages of the feedback queue (see [`Wiring::webhook`] for
    /// `SESGUARD_WEBHOOK_TRUSTED_CERT`).
    pub async fn ingest(&self) -> anyhow::Result<IngestFunction> {
        let (source, http) = self.sns_certificates()?;
        Ok(IngestFunction {
            context: self.context().await?,
            certificates: Certificates::new(source),
            confirmer: http,
        })
    }

    /// The `webhook` function. `SESGUARD_WEBHOOK_TRUSTED_CERT=PATH` (local testing only)
    /// trusts that certificate as if fetched from any valid signing-certificate URL; every
    /// other check still applies.
    pub async fn webhook(&self) -> anyhow::Result<WebhookFunction> {
        let (source, http) = self.sns_certificates()?;
        Ok(WebhookFunction {
            context: self.context().await?,
            certificates: Certificates::new(source),
            confirmer: http,
        })
    }

    /// Where the functions' SNS certificates come from: SNS (or the local emulator's SNS),
    /// or the certificate `SESGUARD_WEBHOOK_TRUSTED_CERT` names, refused when deployed.
    fn sns_certificates(&self) -> anyhow::Result<(Arc<dyn CertificateSource>, Arc<SnsHttp>)> {
        let trusted = self.env.var("SESGUARD_WEBHOOK_TRUSTED_CERT").map(Path::new);
        if let Some(path) = trusted {
            if self.composition == Composition::Deployed {
                anyhow::bail!(
                    "SESGUARD_WEBHOOK_TRUSTED_CERT ({}) is for local testing only: a deployment fetches SNS's own certificates",
                    path.display()
                );
            }
            tracing::warn!(
                "SESGUARD_WEBHOOK_TRUSTED_CERT is set: signing certificates are not fetched (local testing only)"
            );
        }
        self.certificate_source(trusted)
    }

    /// The `admin` function: the context and how callers are authenticated.
    pub async fn admin(&self) -> anyhow::Result<AdminFunction> {
        Ok(AdminFunction {
            auth: Auth::from_environment(&self.env)?,
            context: self.context().await?,
        })
    }
}

/// The local composition around an existing store and clock (tests, benchmarks): no SES, SES's
/// figures from the configured file, the file outbox, alerts to the log and the configured file.
/// DNS as `prevention.dns` (`SESGUARD_DNS`) says: the system's resolver, one server, or none.
pub fn local(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Context {
    let ses = local_ses(&config);
    let resolver = resolver(&config).unwrap_or_else(|error| {
        tracing::error!(
            error = format!("{error:#}"),
            "no DNS resolver: prevention's DNS checks answer unknown"
        );
        Arc::new(NoDns)
    });
    let parts = Parts {
        store,
        clock,
        alerts: Arc::new(LogAlerts::new(config.alerts.file.clone())),
        ses: ses.account,
        reputation: ses.reputation,
        transport: ses.transport,
        resolver,
    };
    Context::new(config, parts)
}

/// Prevention's DNS as the configuration says (`prevention.dns`, `SESGUARD_DNS`).
fn resolver(config: &Config) -> anyhow::Result<Arc<dyn DomainResolver>> {
    let prevention = &config.prevention;
    Ok(
        match HickoryResolver::new(&prevention.dns, prevention.timeout)
            .context("building the DNS resolver (prevention.dns, SESGUARD_DNS)")?
        {
            Some(resolver) => Arc::new(resolver),
            None => Arc::new(NoDns),
        },
    )
}

/// A simulation's context: a fresh embedded store at `path`, `clock` as its clock, the local
/// parts otherwise.
pub fn simulation(
    config: Config,
    path: &std::path::Path,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Context> {
    let store = SqliteStore::open(path)
        .with_context(|| format!("opening the simulation's store at {}", path.display()))?;
    Ok(local(config, Arc::new(store), clock))
}

/// What a composition reaches SES through.
struct SesParts {
    /// Account calls (quotas, enforcement, the suppression list).
    account: Arc<dyn SesAccount>,
    /// SES's own reputation figures.
    reputation: Arc<dyn SesReputation>,
    /// Where mail goes.
    transport: Arc<dyn MailTransport>,
}

/// SES in a local run: no account calls (quotas come from the configuration), SES's figures
/// from `[ses_metrics] file` (none without one), mail into the file outbox.
fn local_ses(config: &Config) -> SesParts {
    SesParts {
        account: Arc::new(NoSes),
        reputation: Arc::new(SesFiguresFile::new(config.ses_metrics.file.clone())),
        transport: Arc::new(FileOutbox::new(config.sender.outbox.clone())),
    }
}

#[cfg(test)]
mod tests {
    use std::any::Any;

    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_dynamodb::config::Credentials;

    use super::*;

    /// An SDK configuration that can build clients and would reach only a closed local port:
    /// a region, an endpoint and static test credentials, so nothing is looked up.
    async fn offline_sdk() -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .load()
            .await
    }

    fn example_config() -> String {
        format!("{}/infra/sesguard.example.toml", env!("CARGO_MANIFEST_DIR"))
    }

    fn is<T: Any>(part: &dyn Any) -> bool {
        part.is::<T>()
    }

    #[tokio::test]
    async fn a_deployment_environment_sends_through_ses_and_alerts_through_sns() {
        let env = Environment::from_pairs([
            ("SESGUARD_STORE", "dynamodb"),
            ("SESGUARD_CONFIG", &example_config()),
            (
                "SESGUARD_ALERT_TOPIC_ARN",
                "arn:aws:sns:eu-west-1:111111111111:sesguard-alerts",
            ),
        ]);
        let wiring = Wiring::with_sdk(env, offline_sdk().await).expect("wiring");
        assert_eq!(wiring.composition(), &Composition::Deployed);

        let sender = wiring.sender().await.expect("sender function");
        let context = &sender.context;
        assert!(
            is::<Sesv2Accounts>(context.transport.as_ref()),
            "mail goes to SESv2"
        );
        assert!(
            is::<Sesv2Accounts>(context.ses.as_ref()),
            "quotas come from SESv2"
        );
        assert!(
            is::<DynamoStore>(context.store.as_ref()),
            "the store is DynamoDB"
        );
        assert!(
            is::<CloudWatchReputation>(context.reputation.as_ref()),
            "SES's own figures come from CloudWatch"
        );
        assert!(is::<SnsAlerts>(context.alerts.as_ref()), "alerts go to SNS");
        let visibility = sender.visibility.as_deref().expect("deferrals stay in SQS");
        assert!(is::<SqsVisibility>(visibility));

        for context in [
            wiring.context().await.expect("ingest"),
            wiring.webhook().await.expect("webhook").context,
            wiring.admin().await.expect("admin").context,
        ] {
            assert!(is::<Sesv2Accounts>(context.transport.as_ref()));
            assert!(is::<DynamoStore>(context.store.as_ref()));
            assert!(is::<SnsAlerts>(context.alerts.as_ref()));
            assert!(is::<CloudWatchReputation>(context.reputation.as_ref()));
        }
    }

    #[tokio::test]
    async fn a_local_environment_writes_the_outbox_and_logs_alerts() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = format!("sqlite:{}", dir.path().join("s.db").display());
        let env = Environment::from_pairs([
            ("SESGUARD_STORE", store.as_str()),
            ("SESGUARD_CONFIG", &example_config()),
            ("SESGUARD_ADMIN_TOKEN", "a-local-token-of-enough-length"),
        ]);
        let wiring = Wiring::with_sdk(env, offline_sdk().await).expect("wiring");
        assert_eq!(
            wiring.composition(),
            &Composition::Local(dir.path().join("s.db"))
        );

        let sender = wiring.sender().await.expect("sender function");
        let context = &sender.context;
        assert!(is::<FileOutbox>(context.transport.as_ref()));
        assert!(is::<NoSes>(context.ses.as_ref()));
        let reputation: &dyn Any = context.reputation.as_ref();
        let figures = reputation
            .downcast_ref::<SesFiguresFile>()
            .expect("SES's figures come from a file");
        assert_eq!(
            figures.path(),
            wiring.config().ses_metrics.file.as_deref(),
            "the configured file (none in the example)"
        );
        assert!(is::<SqliteStore>(context.store.as_ref()));
        assert!(is::<LogAlerts>(context.alerts.as_ref()));
        assert!(sender.visibility.is_none(), "no queue to keep deferrals in");
        let admin = wiring.admin().await.expect("admin");
        assert!(matches!(admin.auth, Auth::Token(Some(_))));
    }

    #[tokio::test]
    async fn a_store_address_that_is_neither_form_is_refused_by_name() {
        let env = Environment::from_pairs([("SESGUARD_STORE", "postgres://db")]);
        let error = Wiring::with_sdk(env, offline_sdk().await)
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("postgres://db"), "{error}");
    }

    #[test]
    fn the_environment_never_prints_the_admin_token() {
        let env = Environment::from_pairs([
            ("SESGUARD_ADMIN_TOKEN", "secret-token-value-123"),
            ("SESGUARD_STORE", "dynamodb"),
        ]);
        let shown = format!("{env:?}");
        assert!(!shown.contains("secret-token-value-123"), "{shown}");
        assert!(shown.contains("dynamodb"), "{shown}");
    }
}
