//! Send requests: the documented JSON an application puts on the send queue, parsed into a
//! typed request whose addresses are normalised and whose content is exactly one of a template
//! or inline subject and bodies. Unknown fields are refused: in a request they are typos.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::domain::common::address::{AddressError, EmailAddress};
use crate::domain::common::names::{NameError, StreamName};
use crate::domain::sending::routing::Priority;
use crate::domain::sending::send_record::{SEND_TAG, SendKey};

/// Tags sesguard sets itself; a request may not.
const RESERVED_TAG_PREFIXES: [&str; 2] = ["sesguard-", "ses:"];

/// A validated send request.
#[derive(Debug, Clone, PartialEq)]
pub struct SendRequest {
    /// The stream it belongs to.
    pub stream: StreamName,
    /// Recipients.
    pub to: Vec<EmailAddress>,
    /// Copy recipients.
    pub cc: Vec<EmailAddress>,
    /// Blind copy recipients.
    pub bcc: Vec<EmailAddress>,
    /// From address as written (display name kept); `None`: the account's default identity.
    pub from: Option<String>,
    /// What to send.
    pub content: MailContent,
    /// Priority; `None`: the stream's.
    pub priority: Option<Priority>,
    /// Whether the application verified the recipients.
    pub recipient_verified: bool,
    /// The application's idempotency key.
    pub idempotency_key: Option<String>,
    /// The application's own message tags.
    pub tags: BTreeMap<String, String>,
}

/// The message content.
#[derive(Debug, Clone, PartialEq)]
pub enum MailContent {
    /// An SES template and its data.
    Template {
        /// Template name.
        name: String,
        /// Template data (JSON object).
        data: Value,
    },
    /// Inline content.
    Inline {
        /// Subject line.
        subject: String,
        /// HTML body.
        html: Option<String>,
        /// Text body.
        text: Option<String>,
    },
}

/// A message ready for a transport: the account chosen, recipients left after suppression,
/// the From identity decided, and the tags that map its feedback back.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutgoingMail {
    /// The account it goes through.
    pub account: String,
    /// Its identity (also its [`SEND_TAG`] tag).
    pub key: SendKey,
    /// Its stream.
    pub stream: StreamName,
    /// From address.
    pub from: String,
    /// Recipients.
    pub to: Vec<EmailAddress>,
    /// Copy recipients.
    pub cc: Vec<EmailAddress>,
    /// Blind copy recipients.
    pub bcc: Vec<EmailAddress>,
    /// What to send.
    #[serde(skip)]
    pub content: MailContent,
    /// Message tags: the request's, plus `sesguard-account`, `sesguard-stream` and
    /// `sesguard-send`.
    pub tags: BTreeMap<String, String>,
    /// The account's configuration set.
    pub configuration_set: Option<String>,
}

impl OutgoingMail {
    /// The message for `request` (identity `key`) through `account`, to the recipients kept.
    pub fn new(
        request: &SendRequest,
        key: &SendKey,
        account: &str,
        from: String,
        configuration_set: Option<String>,
        kept: impl Fn(&EmailAddress) -> bool,
    ) -> Self {
        let keep = |list: &[EmailAddress]| list.iter().filter(|e| kept(e)).cloned().collect();
        let mut tags = request.tags.clone();
        tags.insert(
            crate::domain::feedback::attribution::ACCOUNT_TAG.to_owned(),
            account.to_owned(),
        );
        tags.insert(
            crate::domain::feedback::attribution::STREAM_TAG.to_owned(),
            request.stream.to_string(),
        );
        tags.insert(SEND_TAG.to_owned(), key.to_string());
        Self {
            account: account.to_owned(),
            key: key.clone(),
            stream: request.stream.clone(),
            from,
            to: keep(&request.to),
            cc: keep(&request.cc),
            bcc: keep(&request.bcc),
            content: request.content.clone(),
            tags,
            configuration_set,
        }
    }

    /// How many recipients it goes to (what SES counts against the quota).
    pub fn recipients(&self) -> usize {
        self.to.len() + self.cc.len() + self.bcc.len()
    }
}

/// Why a request is refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not JSON, or an unknown field or a field of the wrong type.
    #[error("send request is not valid JSON of the documented shape: {0}")]
    Json(#[from] serde_json::Error),
    /// No recipient in `to`, `cc` or `bcc`.
    #[error("send request has no recipient in `to`, `cc` or `bcc`")]
    NoRecipient,
    /// A bad address.
    #[error("send request field `{field}`: {error}")]
    Address {
        /// `to`, `cc`, `bcc` or `from`.
        field: &'static str,
        /// What is wrong with it.
        error: AddressError,
    },
    /// Both `template` and inline content, or neither.
    #[error(
        "send request needs exactly one of `template` or inline content (`subject` with `html` and/or `text`)"
    )]
    Content,
    /// Inline content without a subject or without any body.
    #[error("inline content needs a `subject` and at least one of `html` or `text`")]
    Inline,
    /// `template.data` that is not a JSON object.
    #[error("`template.data` must be a JSON object")]
    TemplateData,
    /// An empty value where one is required.
    #[error("send request field `{0}` is empty")]
    Empty(&'static str),
    /// A stream name no stream can have.
    #[error("send request field `stream`: {0}")]
    Stream(NameError),
    /// A tag SES would refuse, or one sesguard reserves.
    #[error(
        "tag `{0}`: names and values are 1-256 of A-Z a-z 0-9 _ - (names starting `sesguard-` or `ses:` are reserved)"
    )]
    Tag(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    stream: String,
    #[serde(default)]
    to: Vec<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    bcc: Vec<String>,
    from: Option<String>,
    template: Option<RawTemplate>,
    subject: Option<String>,
    html: Option<String>,
    text: Option<String>,
    priority: Option<Priority>,
    #[serde(default)]
    recipient_verified: bool,
    idempotency_key: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    name: String,
    #[serde(default = "empty_object")]
    data: Value,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn addresses(field: &'static str, raw: &[String]) -> Result<Vec<EmailAddress>, RequestError> {
    raw.iter()
        .map(|a| EmailAddress::parse(a).map_err(|error| RequestError::Address { field, error }))
        .collect()
}

/// JSON text with every object's keys sorted, whatever order the map keeps them in (a
/// dependency may turn on serde_json's `preserve_order`): equal data, equal text.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn sorted(list: &[EmailAddress]) -> Vec<&str> {
    let mut list: Vec<&str> = list.iter().map(EmailAddress::as_str).collect();
    list.sort_unstable();
    list
}

fn valid_tag_part(text: &str) -> bool {
    (1..=256).contains(&text.len())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl SendRequest {
    /// Parses and validates one request.
    pub fn parse(text: &str) -> Result<Self, RequestError> {
        let raw: RawRequest = serde_json::from_str(text)?;
        if raw.stream.trim().is_empty() {
            return Err(RequestError::Empty("stream"));
        }
        let stream = StreamName::parse(&raw.stream).map_err(RequestError::Stream)?;
        let (to, cc, bcc) = (
            addresses("to", &raw.to)?,
            addresses("cc", &raw.cc)?,
            addresses("bcc", &raw.bcc)?,
        );
        if to.is_empty() && cc.is_empty() && bcc.is_empty() {
            return Err(RequestError::NoRecipient);
        }
        if let Some(from) = &raw.from {
            EmailAddress::parse(from).map_err(|error| RequestError::Address {
                field: "from",
                error,
            })?;
        }
        let inline = raw.subject.is_some() || raw.html.is_some() || raw.text.is_some();
        let content = match (raw.template, inline) {
            (Some(template), false) => {
                if template.name.trim().is_empty() {
                    return Err(RequestError::Empty("template.name"));
                }
                if !template.data.is_object() {
                    return Err(RequestError::TemplateData);
                }
                MailContent::Template {
                    name: template.name,
                    data: template.data,
                }
            }
            (None, true) => match raw.subject {
                Some(subject)
                    if !subject.trim().is_empty() && (raw.html.is_some() || raw.text.is_some()) =>
                {
                    MailContent::Inline {
                        subject,
                        html: raw.html,
                        text: raw.text,
                    }
                }
                _ => return Err(RequestError::Inline),
            },
            _ => return Err(RequestError::Content),
        };
        if raw
            .idempotency_key
            .as_deref()
            .is_some_and(|k| k.trim().is_empty())
        {
            return Err(RequestError::Empty("idempotency_key"));
        }
        for (name, value) in &raw.tags {
            let reserved = RESERVED_TAG_PREFIXES.iter().any(|p| name.starts_with(p));
            if reserved || !valid_tag_part(name) || !valid_tag_part(value) {
                return Err(RequestError::Tag(name.clone()));
            }
        }
        Ok(Self {
            stream,
            to,
            cc,
            bcc,
            from: raw.from,
            content,
            priority: raw.priority,
            recipient_verified: raw.recipient_verified,
            idempotency_key: raw.idempotency_key,
            tags: raw.tags,
        })
    }

    /// Every recipient, in `to`, `cc`, `bcc` order.
    pub fn recipients(&self) -> impl Iterator<Item = &EmailAddress> {
        self.to.iter().chain(&self.cc).chain(&self.bcc)
    }

    /// The template name, when the content is a template.
    pub fn template(&self) -> Option<&str> {
        match &self.content {
            MailContent::Template { name, .. } => Some(name),
            MailContent::Inline { .. } => None,
        }
    }

    /// The request's identity: its idempotency key, or else the queue message `origin` that
    /// carries it.
    pub fn send_key(&self, origin: &str) -> SendKey {
        SendKey::new(self.idempotency_key.as_deref(), origin)
    }

    /// For a request without an idempotency key, the key that makes an equal request within
    /// the stream's debounce a double submission: a SHA-256 of the sorted recipients of each
    /// kind and the content (template and data, or subject and bodies). The same message to
    /// the same people is the same key.
    pub fn content_key(&self) -> Option<String> {
        if self.idempotency_key.is_some() {
            return None;
        }
        let content = match &self.content {
            MailContent::Template { name, data } => {
                serde_json::json!({"template": name, "data": data})
            }
            MailContent::Inline {
                subject,
                html,
                text,
            } => serde_json::json!({"subject": subject, "html": html, "text": text}),
        };
        let message = serde_json::json!({
            "to": sorted(&self.to), "cc": sorted(&self.cc), "bcc": sorted(&self.bcc), "content": content,
        });
        let mut text = String::new();
        canonical(&message, &mut text);
        let digest = Sha256::digest(text.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        Some(format!("send:hash:{hex}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<SendRequest, String> {
        SendRequest::parse(json).map_err(|e| e.to_string())
    }

    #[test]
    fn a_template_request_is_parsed_with_normalised_recipients() {
        let r = parse(
            r#"{"stream":"transactional","to":["Jane <Jane@Example.com>"],"bcc":["audit@example.com"],
                "template":{"name":"receipt","data":{"order":42}},"priority":"critical",
                "recipient_verified":true,"idempotency_key":"order-42","tags":{"order":"42"}}"#,
        )
        .unwrap();
        assert_eq!(r.to[0].as_str(), "jane@example.com");
        assert_eq!(r.recipients().count(), 2);
        assert_eq!(r.template(), Some("receipt"));
        assert_eq!(r.priority, Some(Priority::Critical));
        assert_eq!(r.send_key("m1"), SendKey::new(Some("order-42"), "m2"));
        assert_eq!(
            r.content_key(),
            None,
            "the key is the identity: no debounce"
        );
    }

    #[test]
    fn inline_content_needs_a_subject_and_a_body() {
        let ok = parse(r#"{"stream":"s","to":["a@example.com"],"subject":"Hi","text":"hello"}"#)
            .unwrap();
        assert!(matches!(ok.content, MailContent::Inline { .. }));
        assert_eq!(ok.template(), None);
        assert!(
            parse(r#"{"stream":"s","to":["a@example.com"],"subject":"Hi"}"#)
                .unwrap_err()
                .contains("inline content needs")
        );
    }

    #[test]
    fn each_invalid_request_names_its_problem() {
        let cases = [
            ("not json", "not valid JSON"),
            (
                r#"{"stream":"s","to":[],"subject":"x","text":"y"}"#,
                "no recipient",
            ),
            (
                r#"{"stream":"s","to":["nope"],"subject":"x","text":"y"}"#,
                "field `to`: address `nope` has no `@`",
            ),
            (
                r#"{"stream":"s","to":["a@example.com"],"from":"x@","subject":"x","text":"y"}"#,
                "field `from`",
            ),
            (
                r#"{"stream":"s","to":["a@example.com"]}"#,
                "exactly one of `template` or inline",
            ),
            (
                r#"{"stream":"s","to":["a@example.com"],"template":{"name":"t"},"text":"y"}"#,
                "exactly one of",
            ),
            (
                r#"{"stream":"s","to":["a@example.com"],"template":{"name":"t","data":[1]}}"#,
                "`template.data` must be a JSON object",
            ),
            (
                r#"{"stream":" ","to":["a@example.com"],"template":{"name":"t"}}"#,
                "field `stream` is empty",
            ),
            (
                r#"{"stream":"sign up","to":["a@example.com"],"template":{"name":"t"}}"#,
                "field `stream`: stream name `sign up` must be non-empty, without spaces or `:`",
            ),
            (
                r#"{"stream":"s","to":["a@example.com"],"template":{"name":"t"},"colour":"red"}"#,
                "unknown field `colour`",
            ),
            (
                r#"{"stream":"s","to":["a@example.com"],"template":{"name":"t"},"tags":{"sesguard-account":"x"}}"#,
                "tag `sesguard-account`",
            ),
            (
                r#"{"stream":"s","to":["a@example.com"],"template":{"name":"t"},"tags":{"a b":"x"}}"#,
                "tag `a b`",
            ),
            (
                r#"{"stream":"s","to":["a@example.com"],"template":{"name":"t"},"priority":"urgent"}"#,
                "not valid JSON",
            ),
        ];
        for (json, expected) in cases {
            let error = parse(json).unwrap_err();
            assert!(error.contains(expected), "{json}: {error}");
        }
    }

    #[test]
    fn the_same_message_to_the_same_people_has_the_same_key_in_any_order() {
        let a = parse(r#"{"stream":"s","to":["b@example.com","a@example.com"],"template":{"name":"t","data":{"x":1,"y":2}}}"#).unwrap();
        let b = parse(r#"{"stream":"s","to":["A@example.com","b@example.com"],"template":{"name":"t","data":{"y":2,"x":1}},"priority":"bulk"}"#).unwrap();
        assert_eq!(a.content_key(), b.content_key());
        assert!(a.content_key().unwrap().starts_with("send:hash:"));
        assert_ne!(
            a.send_key("m1"),
            b.send_key("m2"),
            "two messages, two identities"
        );
        let other_data = parse(r#"{"stream":"s","to":["a@example.com","b@example.com"],"template":{"name":"t","data":{"x":2}}}"#).unwrap();
        assert_ne!(a.content_key(), other_data.content_key());
        let as_cc = parse(r#"{"stream":"s","cc":["a@example.com","b@example.com"],"template":{"name":"t","data":{"x":1,"y":2}}}"#).unwrap();
        assert_ne!(
            a.content_key(),
            as_cc.content_key(),
            "to and cc are different messages"
        );
    }
}
