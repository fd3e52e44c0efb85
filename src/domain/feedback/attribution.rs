//! Which configured account (and stream) a notification belongs to: the `sesguard-account`
//! tag the sender sets, else the sending AWS account id and the region of `sourceArn`.
//! Feedback that matches no configured account gets a stable name `ACCOUNTID-REGION`.

use serde::{Deserialize, Serialize};

use crate::domain::feedback::notification::Mail;

/// Message tag naming the sesguard account that sent a message.
pub const ACCOUNT_TAG: &str = "sesguard-account";
/// Message tag naming the stream a message belongs to.
pub const STREAM_TAG: &str = "sesguard-stream";

/// Where an account's send count comes from: exactly one source, never both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendSource {
    /// SES `Send` events from the configuration set (event publishing).
    #[default]
    SesEvents,
    /// The sesguard sender function counts what it sends; `Send` events are ignored.
    Sender,
}

/// A configured account, as attribution needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownAccount {
    /// sesguard's name for it.
    pub name: String,
    /// The 12-digit AWS account id.
    pub account_id: String,
    /// The SES region.
    pub region: String,
    /// Where its send count comes from.
    pub send_source: SendSource,
}

/// What a bounce that refuses the sender (blocklists, authentication, policy) does to its
/// recipient's address in a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderBounces {
    /// Recorded with its reason; the address stays sendable (the default).
    #[default]
    Record,
    /// Handled as SES does: a permanent one suppresses, a transient one counts as soft.
    Suppress,
}

/// The configured accounts, and the streams that suppress on sender-class bounces.
#[derive(Debug, Clone, Default)]
pub struct AccountDirectory {
    accounts: Vec<KnownAccount>,
    suppressing_streams: Vec<String>,
}

/// The account and stream a notification is counted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// The account's name.
    pub account: String,
    /// The stream, when the message was tagged with one.
    pub stream: Option<String>,
    /// Whether the account is in the configuration.
    pub configured: bool,
}

/// The account feedback is counted under when nothing in it names the sender.
pub const UNATTRIBUTED: &str = "unattributed";

impl AccountDirectory {
    /// A directory of these accounts.
    pub fn new(accounts: Vec<KnownAccount>) -> Self {
        Self {
            accounts,
            suppressing_streams: Vec::new(),
        }
    }

    /// The same directory, with these streams handling sender-class bounces as SES does.
    pub fn with_suppressing_streams(mut self, streams: Vec<String>) -> Self {
        self.suppressing_streams = streams;
        self
    }

    /// What a sender-class bounce does in `stream` (untagged mail: recorded only).
    pub fn sender_bounces(&self, stream: Option<&str>) -> SenderBounces {
        match stream {
            Some(name) if self.suppressing_streams.iter().any(|s| s == name) => {
                SenderBounces::Suppress
            }
            _ => SenderBounces::Record,
        }
    }

    /// The configured accounts, in configuration order.
    pub fn accounts(&self) -> &[KnownAccount] {
        &self.accounts
    }

    /// Attributes a message to an account and stream.
    pub fn attribute(&self, mail: &Mail) -> Attribution {
        let stream = mail.tag(STREAM_TAG).map(str::to_owned);
        if let Some(name) = mail.tag(ACCOUNT_TAG) {
            return Attribution {
                account: name.to_owned(),
                stream,
                configured: self.find(name).is_some(),
            };
        }
        if mail.sending_account_id.is_none() && mail.source_region().is_none() {
            // Nothing names the sender (a damaged notification without its `mail`): one
            // stable account collects it.
            return Attribution {
                account: UNATTRIBUTED.to_owned(),
                stream,
                configured: false,
            };
        }
        let id = mail.sending_account_id.as_deref().unwrap_or("unknown");
        let region = mail.source_region().unwrap_or("unknown");
        match self
            .accounts
            .iter()
            .find(|a| a.account_id == id && a.region == region)
        {
            Some(account) => Attribution {
                account: account.name.clone(),
                stream,
                configured: true,
            },
            None => Attribution {
                account: format!("{id}-{region}"),
                stream,
                configured: false,
            },
        }
    }

    /// Where the named account's send count comes from (`SesEvents` when not configured).
    pub fn send_source(&self, account: &str) -> SendSource {
        self.find(account)
            .map_or(SendSource::SesEvents, |a| a.send_source)
    }

    fn find(&self, name: &str) -> Option<&KnownAccount> {
        self.accounts.iter().find(|a| a.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> AccountDirectory {
        AccountDirectory::new(vec![KnownAccount {
            name: "primary".into(),
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
            send_source: SendSource::Sender,
        }])
    }

    fn mail(account: &str, arn_region: &str, tags: &[(&str, &str)]) -> Mail {
        Mail {
            sending_account_id: Some(account.into()),
            source_arn: Some(format!(
                "arn:aws:ses:{arn_region}:{account}:identity/example.com"
            )),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
                .collect(),
            ..Mail::default()
        }
    }

    #[test]
    fn the_account_tag_wins_over_the_sending_account() {
        let a = directory().attribute(&mail(
            "111122223333",
            "eu-west-1",
            &[(ACCOUNT_TAG, "backup"), (STREAM_TAG, "verification")],
        ));
        assert_eq!(a.account, "backup");
        assert_eq!(a.stream.as_deref(), Some("verification"));
        assert!(!a.configured);
    }

    #[test]
    fn account_id_and_region_map_to_the_configured_name() {
        let a = directory().attribute(&mail("111122223333", "eu-west-1", &[]));
        assert_eq!((a.account.as_str(), a.configured), ("primary", true));
    }

    #[test]
    fn unmatched_feedback_gets_a_stable_name_from_id_and_region() {
        let a = directory().attribute(&mail("111122223333", "us-east-1", &[]));
        assert_eq!(
            (a.account.as_str(), a.configured),
            ("111122223333-us-east-1", false)
        );
        assert_eq!(
            directory().attribute(&Mail::default()).account,
            UNATTRIBUTED
        );
    }

    #[test]
    fn send_source_defaults_to_ses_events_for_unknown_accounts() {
        assert_eq!(directory().send_source("primary"), SendSource::Sender);
        assert_eq!(directory().send_source("other"), SendSource::SesEvents);
    }
}
