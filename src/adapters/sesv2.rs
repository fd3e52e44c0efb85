//! SES adapters: SESv2 per configured account (its region, through its role when one is set)
//! for quotas, enforcement and `SendEmail`; and a local stand-in for runs without AWS.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use aws_sdk_sesv2::error::ProvideErrorMetadata as _;

use crate::adapters::account_sdk::account_sdk;
use crate::config::{Config, Enforcement};
use aws_sdk_sesv2::types::SuppressionListReason;

use crate::domain::common::address::EmailAddress;
use crate::domain::feedback::suppression::Reason;
use crate::domain::sending::request::{MailContent, OutgoingMail};
use crate::domain::sending::ses_failure::{SendFailure, classify};
use crate::ports::{MailTransport, SendQuota, SesAccount, SesError, TransportError};
use crate::telemetry::error_chain;

/// Wraps an SDK error of `action` on `account`.
fn failed<E: std::error::Error + Send + Sync + 'static>(
    account: &str,
    action: &'static str,
) -> impl FnOnce(E) -> SesError {
    move |error| SesError {
        account: account.to_owned(),
        action,
        source: Box::new(error),
        permanent: false,
    }
}

fn local_only(account: &str, action: &'static str) -> SesError {
    SesError {
        account: account.to_owned(),
        action,
        source: "SES is not used in local runs (configure daily_quota and max_send_rate)".into(),
        permanent: true,
    }
}

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
    send_timeout: Duration,
}

impl Sesv2Accounts {
    /// Clients for every configured account, from the shared SDK configuration: the account's
    /// region, and its role assumed when `role_arn` is set. Nothing is called yet.
    pub async fn from_config(sdk: &aws_config::SdkConfig, config: &Config) -> Self {
        let mut accounts = HashMap::new();
        for account in &config.accounts {
            let account_sdk = account_sdk(sdk, account).await;
            accounts.insert(
                account.name.to_string(),
                AccountClient {
                    client: aws_sdk_sesv2::Client::new(&account_sdk),
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
            send_timeout: SEND_TIMEOUT,
        }
    }

    /// With another limit on one `SendEmail` than [`SEND_TIMEOUT`] (tests).
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    fn account(&self, name: &str, action: &'static str) -> Result<&AccountClient, SesError> {
        self.accounts.get(name).ok_or_else(|| SesError {
            account: name.to_owned(),
            action,
            source: "not a configured account".into(),
            permanent: true,
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
            .map_err(failed(account, action))?;
        let quota = output.send_quota().ok_or_else(|| SesError {
            account: account.to_owned(),
            action,
            source: "the answer has no SendQuota".into(),
            permanent: false,
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

    async fn list_suppressed(
        &self,
        account: &str,
        next: Option<String>,
    ) -> Result<(Vec<(EmailAddress, Reason)>, Option<String>), SesError> {
        let action = "ListSuppressedDestinations";
        let client = self.account(account, action)?;
        let output = client
            .client
            .list_suppressed_destinations()
            .set_next_token(next)
            .page_size(1000)
            .send()
            .await
            .map_err(failed(account, action))?;
        let mut found = Vec::new();
        for summary in output.suppressed_destination_summaries() {
            let reason = match summary.reason() {
                SuppressionListReason::Complaint => Reason::Complaint,
                _ => Reason::Bounce,
            };
            match EmailAddress::parse(summary.email_address()) {
                Ok(email) => found.push((email, reason)),
                Err(error) => {
                    tracing::warn!(account, error = %error, "SES suppression list entry skipped");
                }
            }
        }
        Ok((found, output.next_token().map(str::to_owned)))
    }

    async fn put_suppressed(
        &self,
        account: &str,
        email: &EmailAddress,
        reason: Reason,
    ) -> Result<(), SesError> {
        let action = "PutSuppressedDestination";
        let client = self.account(account, action)?;
        let reason = match reason {
            Reason::Complaint => SuppressionListReason::Complaint,
            _ => SuppressionListReason::Bounce,
        };
        client
            .client
            .put_suppressed_destination()
            .email_address(email.as_str())
            .reason(reason)
            .send()
            .await
            .map_err(failed(account, action))?;
        Ok(())
    }

    async fn set_sending(&self, account: &str, enabled: bool) -> Result<bool, SesError> {
        let client = self.account(account, "enforcement")?;
        let failed = |action: &'static str| {
            move |e: Box<dyn std::error::Error + Send + Sync>| SesError {
                account: account.to_owned(),
                action,
                source: e,
                permanent: false,
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
        Err(local_only(account, "GetAccount"))
    }

    async fn list_suppressed(
        &self,
        account: &str,
        _next: Option<String>,
    ) -> Result<(Vec<(EmailAddress, Reason)>, Option<String>), SesError> {
        Err(local_only(account, "ListSuppressedDestinations"))
    }

    async fn put_suppressed(
        &self,
        account: &str,
        _email: &EmailAddress,
        _reason: Reason,
    ) -> Result<(), SesError> {
        Err(local_only(account, "PutSuppressedDestination"))
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

fn message_tag(name: &str, value: &str) -> Result<aws_sdk_sesv2::types::MessageTag, String> {
    aws_sdk_sesv2::types::MessageTag::builder()
        .name(name)
        .value(value)
        .build()
        .map_err(|e| e.to_string())
}

fn email_content(content: &MailContent) -> Result<aws_sdk_sesv2::types::EmailContent, String> {
    use aws_sdk_sesv2::types::{Body, Content, EmailContent, Message, Template};
    let text = |data: &str| {
        Content::builder()
            .data(data)
            .charset("UTF-8")
            .build()
            .map_err(|e| e.to_string())
    };
    Ok(match content {
        MailContent::Template { name, data } => EmailContent::builder()
            .template(
                Template::builder()
                    .template_name(name)
                    .template_data(data.to_string())
                    .build(),
            )
            .build(),
        MailContent::Inline {
            subject,
            html,
            text: plain,
        } => {
            let mut body = Body::builder();
            if let Some(html) = html {
                body = body.html(text(html)?);
            }
            if let Some(plain) = plain {
                body = body.text(text(plain)?);
            }
            let message = Message::builder()
                .subject(text(subject)?)
                .body(body.build())
                .build();
            EmailContent::builder().simple(message).build()
        }
    })
}

/// How long one `SendEmail` may take before it is given up (and is in doubt).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether SES may have accepted the message although the call failed: the request may have
/// gone out (a timeout, a connection lost after connecting, an unreadable response) or SES
/// answered 5xx. Not when it was never built, the connection was never made, or SES answered
/// with a 4xx: those surely did not send.
fn ambiguous(
    error: &aws_sdk_sesv2::error::SdkError<
        aws_sdk_sesv2::operation::send_email::SendEmailError,
        aws_sdk_sesv2::config::http::HttpResponse,
    >,
) -> bool {
    use aws_sdk_sesv2::error::SdkError;
    match error {
        SdkError::ConstructionFailure(_) => false,
        SdkError::DispatchFailure(_) => !never_connected(error),
        SdkError::ServiceError(service) => service.raw().status().is_server_error(),
        _ => true,
    }
}

/// Whether `error`'s chain says its connection was never established: the HTTP client's own
/// connect error (DNS resolution, a refused or timed-out connection, a failed TLS handshake).
/// Decided from the errors' types, never their text: "connection closed before message
/// completed" is a connection lost *after* the request may have gone out.
fn never_connected(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| {
        e.downcast_ref::<hyper_util::client::legacy::Error>()
            .is_some_and(hyper_util::client::legacy::Error::is_connect)
    })
}

/// The error code of a modeled SendEmail error, from its variant (the response metadata may
/// not carry it).
fn modeled_code(
    error: &aws_sdk_sesv2::operation::send_email::SendEmailError,
) -> Option<&'static str> {
    use aws_sdk_sesv2::operation::send_email::SendEmailError as E;
    Some(match error {
        E::AccountSuspendedException(_) => "AccountSuspendedException",
        E::BadRequestException(_) => "BadRequestException",
        E::LimitExceededException(_) => "LimitExceededException",
        E::MailFromDomainNotVerifiedException(_) => "MailFromDomainNotVerifiedException",
        E::MessageRejected(_) => "MessageRejected",
        E::NotFoundException(_) => "NotFoundException",
        E::SendingPausedException(_) => "SendingPausedException",
        E::TooManyRequestsException(_) => "TooManyRequestsException",
        _ => return None,
    })
}

#[async_trait]
impl MailTransport for Sesv2Accounts {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, TransportError> {
        let refused = |failure, detail: String| TransportError {
            account: mail.account.clone(),
            failure,
            detail,
            ambiguous: false,
        };
        let client = self
            .account(&mail.account, "SendEmail")
            .map_err(|e| refused(SendFailure::Configuration, error_chain(&e)))?;
        let list = |addresses: &[crate::domain::common::address::EmailAddress]| {
            Some(
                addresses
                    .iter()
                    .map(|a| a.as_str().to_owned())
                    .collect::<Vec<_>>(),
            )
        };
        let destination = aws_sdk_sesv2::types::Destination::builder()
            .set_to_addresses(list(&mail.to))
            .set_cc_addresses(list(&mail.cc))
            .set_bcc_addresses(list(&mail.bcc))
            .build();
        let content =
            email_content(&mail.content).map_err(|e| refused(SendFailure::Rejected, e))?;
        let mut request = client
            .client
            .send_email()
            .from_email_address(&mail.from)
            .destination(destination)
            .content(content)
            .set_configuration_set_name(mail.configuration_set.clone());
        for (name, value) in &mail.tags {
            request = request.email_tags(
                message_tag(name, value).map_err(|e| refused(SendFailure::Rejected, e))?,
            );
        }
        // One attempt, bounded: the SDK's own retries of an ambiguous failure could send twice.
        let once = aws_sdk_sesv2::config::Builder::default()
            .retry_config(aws_sdk_sesv2::config::retry::RetryConfig::disabled())
            .timeout_config(
                aws_sdk_sesv2::config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(self.send_timeout)
                    .build(),
            );
        match request.customize().config_override(once).send().await {
            Ok(output) => Ok(output.message_id().unwrap_or_default().to_owned()),
            Err(error) => {
                let ambiguous = ambiguous(&error);
                let status = error.raw_response().map(|r| r.status().as_u16());
                let code = error
                    .as_service_error()
                    .and_then(modeled_code)
                    .or(error.code())
                    .map(str::to_owned);
                let message = error
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| error_chain(&error));
                let failure = classify(code.as_deref(), &message, status);
                Err(TransportError {
                    ambiguous,
                    ..refused(
                        failure,
                        format!("{}: {message}", code.as_deref().unwrap_or("transport")),
                    )
                })
            }
        }
    }
}
