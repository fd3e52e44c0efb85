//! SES account adapters: SESv2 per configured account (its region, through its role when one
//! is set), and a local stand-in for runs without AWS.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::config::{Config, Enforcement};
use crate::ports::{SendQuota, SesAccount, SesError};

/// How long a `GetAccount` answer is reused.
pub const QUOTA_REFRESH: Duration = Duration::from_secs(300);

/// One account's SESv2 client and enforcement setting.
#[derive(Debug, Clone)]
pub struct AccountClient {
    /// The client (in the account's region, with its role's credentials).
    pub client: aws_sdk_sesv2::Client,
    /// What a pause switches off at SES.
    pub enforcement: Enforcement,
    /// The account's configuration set, for `Enforcement::ConfigurationSet`.
    pub configuration_set: Option<String>,
}

/// SESv2 for every configured account.
#[derive(Debug)]
pub struct Sesv2Accounts {
    accounts: HashMap<String, AccountClient>,
    quotas: Mutex<HashMap<String, (Instant, SendQuota)>>,
}

impl Sesv2Accounts {
    /// Clients for every configured account, from the shared SDK configuration: the account's
    /// region, and its role assumed when `role_arn` is set. Nothing is called yet.
    pub async fn from_config(sdk: &aws_config::SdkConfig, config: &Config) -> Self {
        let mut accounts = HashMap::new();
        for account in &config.accounts {
            let mut builder = aws_sdk_sesv2::config::Builder::from(sdk)
                .region(aws_sdk_sesv2::config::Region::new(account.region.clone()));
            if let Some(role) = &account.role_arn {
                let provider = aws_config::sts::AssumeRoleProvider::builder(role)
                    .session_name("sesguard")
                    .region(aws_sdk_sesv2::config::Region::new(account.region.clone()))
                    .configure(sdk)
                    .build()
                    .await;
                builder = builder.credentials_provider(provider);
            }
            accounts.insert(
                account.name.clone(),
                AccountClient {
                    client: aws_sdk_sesv2::Client::from_conf(builder.build()),
                    enforcement: account.enforce_at_ses,
                    configuration_set: account.configuration_set.clone(),
                },
            );
        }
        Self::with_clients(accounts)
    }

    /// Over prepared clients (tests).
    pub fn with_clients(accounts: HashMap<String, AccountClient>) -> Self {
        Self {
            accounts,
            quotas: Mutex::new(HashMap::new()),
        }
    }

    fn account(&self, name: &str, action: &'static str) -> Result<&AccountClient, SesError> {
        self.accounts.get(name).ok_or_else(|| SesError {
            account: name.to_owned(),
            action,
            source: "not a configured account".into(),
        })
    }
}

fn whole(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        value as u64
    } else {
        0
    }
}

#[async_trait]
impl SesAccount for Sesv2Accounts {
    async fn send_quota(&self, account: &str) -> Result<SendQuota, SesError> {
        if let Some((at, quota)) = self
            .quotas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(account)
            && at.elapsed() < QUOTA_REFRESH
        {
            return Ok(*quota);
        }
        let action = "GetAccount";
        let client = self.account(account, action)?;
        let output = client
            .client
            .get_account()
            .send()
            .await
            .map_err(|e| SesError {
                account: account.to_owned(),
                action,
                source: Box::new(e),
            })?;
        let quota = output.send_quota().ok_or_else(|| SesError {
            account: account.to_owned(),
            action,
            source: "the answer has no SendQuota".into(),
        })?;
        let quota = SendQuota {
            max_24_hour_send: whole(quota.max24_hour_send()),
            max_send_rate: quota.max_send_rate(),
            sent_last_24_hours: whole(quota.sent_last24_hours()),
        };
        self.quotas
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(account.to_owned(), (Instant::now(), quota));
        Ok(quota)
    }

    async fn set_sending(&self, account: &str, enabled: bool) -> Result<bool, SesError> {
        let client = self.account(account, "enforcement")?;
        let failed = |action: &'static str| {
            move |e: Box<dyn std::error::Error + Send + Sync>| SesError {
                account: account.to_owned(),
                action,
                source: e,
            }
        };
        match (client.enforcement, &client.configuration_set) {
            (Enforcement::Off, _) => Ok(false),
            (Enforcement::Account, _) => {
                let action = "PutAccountSendingAttributes";
                client
                    .client
                    .put_account_sending_attributes()
                    .sending_enabled(enabled)
                    .send()
                    .await
                    .map_err(|e| failed(action)(Box::new(e)))?;
                Ok(true)
            }
            (Enforcement::ConfigurationSet, set) => {
                let action = "PutConfigurationSetSendingOptions";
                let set = set
                    .as_deref()
                    .ok_or_else(|| failed(action)("no configuration set configured".into()))?;
                client
                    .client
                    .put_configuration_set_sending_options()
                    .configuration_set_name(set)
                    .sending_enabled(enabled)
                    .send()
                    .await
                    .map_err(|e| failed(action)(Box::new(e)))?;
                Ok(true)
            }
        }
    }
}

/// No SES at all: local runs on the embedded store. Quotas must be configured; enforcement is
/// logged, not applied.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSes;

#[async_trait]
impl SesAccount for NoSes {
    async fn send_quota(&self, account: &str) -> Result<SendQuota, SesError> {
        Err(SesError {
            account: account.to_owned(),
            action: "GetAccount",
            source: "SES is not used in local runs: configure daily_quota and max_send_rate".into(),
        })
    }

    async fn set_sending(&self, account: &str, enabled: bool) -> Result<bool, SesError> {
        tracing::info!(
            account,
            enabled,
            "local run: SES sending switch not applied"
        );
        Ok(false)
    }
}
