//! SNS HTTP(S) deliveries before anything acts on them: the envelope as received (raw strings,
//! never re-serialised), the string SNS signed, and the checks that come before and around the
//! signature — topic allowlist, signing-certificate URL, subscribe URL, age. Pure: the
//! signature itself is checked by [`crate::domain::sns::signature`], the time is passed in.
//!
//! Known bypasses in other implementations that these rules close: certificate URLs on any
//! `amazonaws.com` host (S3 buckets), `.pem` checks a query string satisfies, no topic check
//! (an attacker's own topic signs validly), SSRF through an unchecked SubscribeURL, visiting the
//! URL of an UnsubscribeConfirmation (it re-subscribes), SHA1-only verifiers.

use std::time::Duration;

use serde::Deserialize;

use crate::domain::common::timestamp::Timestamp;

/// How long a processed `MessageId` is remembered for replay protection. SNS retries HTTP
/// deliveries within an hour; `webhook.max_age` must stay under this, or a message replayed
/// after its id is forgotten would still be young enough to pass.
pub const REPLAY_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// Largest body accepted (SNS messages are at most 256 KB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The kinds of SNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A published message: for sesguard, SES feedback.
    Notification,
    /// Asks the endpoint to confirm a subscription by visiting `SubscribeURL`.
    SubscriptionConfirmation,
    /// Tells the endpoint it was unsubscribed. Its URL must not be visited: that re-subscribes.
    UnsubscribeConfirmation,
}

impl MessageType {
    /// The `Type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Notification => "Notification",
            MessageType::SubscriptionConfirmation => "SubscriptionConfirmation",
            MessageType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }
}

/// An SNS envelope, fields exactly as received: the HTTP shape (`SigningCertURL`) or the
/// Lambda record's (`SigningCertUrl`, `"Subject": null`), which carry the same signed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// `Type`.
    pub kind: MessageType,
    /// `MessageId`: retries reuse it.
    pub message_id: String,
    /// `TopicArn`.
    pub topic_arn: String,
    /// `Subject`, when present (notifications only).
    pub subject: Option<String>,
    /// `Message`.
    pub message: String,
    /// `Timestamp`, as received.
    pub timestamp: String,
    /// `SignatureVersion`: `1` (SHA1withRSA) or `2` (SHA256withRSA).
    pub signature_version: String,
    /// `Signature` (base64).
    pub signature: String,
    /// `SigningCertURL`.
    pub signing_cert_url: String,
    /// `SubscribeURL` (confirmations).
    pub subscribe_url: Option<String>,
    /// `Token` (confirmations).
    pub token: Option<String>,
}

/// Why a delivery is refused. `Malformed` answers 400, everything else 403.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Not JSON, too large, or a required field missing or not a string.
    #[error("malformed SNS message: {0}")]
    Malformed(String),
    /// The topic is not in the allowlist.
    #[error("topic `{0}` is not allowed")]
    UnknownTopic(String),
    /// `SignatureVersion` is neither 1 nor 2, or 1 where only 2 is accepted.
    #[error("signature version `{0}` is not accepted")]
    SignatureVersion(String),
    /// The signing-certificate URL is not an SNS certificate of the topic's region.
    #[error("signing certificate URL refused: {0}")]
    CertificateUrl(String),
    /// The certificate could not be used (not PEM, not RSA, expired, not yet valid).
    #[error("signing certificate refused: {0}")]
    Certificate(String),
    /// The signature does not verify.
    #[error("signature does not verify")]
    Signature,
    /// `Timestamp` is older than the accepted age (or too far in the future).
    #[error("message is stale: sent {0}")]
    Stale(String),
    /// The SubscribeURL is not an SNS `ConfirmSubscription` URL of the topic's region.
    #[error("subscribe URL refused: {0}")]
    SubscribeUrl(String),
}

impl Rejection {
    /// The HTTP status for this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Rejection::Malformed(_) => 400,
            _ => 403,
        }
    }

    /// A short machine-readable reason.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::UnknownTopic(_) => "unknown_topic",
            Rejection::SignatureVersion(_) => "signature_version",
            Rejection::CertificateUrl(_) => "certificate_url",
            Rejection::Certificate(_) => "certificate",
            Rejection::Signature => "bad_signature",
            Rejection::Stale(_) => "stale",
            Rejection::SubscribeUrl(_) => "subscribe_url",
        }
    }
}

#[derive(Deserialize)]
struct Raw {
    #[serde(rename = "Type")]
    kind: Option<String>,
    #[serde(rename = "MessageId")]
    message_id: Option<String>,
    #[serde(rename = "TopicArn")]
    topic_arn: Option<String>,
    #[serde(rename = "Subject")]
    subject: Option<String>,
    #[serde(rename = "Message")]
    message: Option<String>,
    #[serde(rename = "Timestamp")]
    timestamp: Option<String>,
    #[serde(rename = "SignatureVersion")]
    signature_version: Option<String>,
    #[serde(rename = "Signature")]
    signature: Option<String>,
    // The Lambda record shape spells these `SigningCertUrl`, `SubscribeUrl`; the signed fields
    // are the same.
    #[serde(rename = "SigningCertURL", alias = "SigningCertUrl")]
    signing_cert_url: Option<String>,
    #[serde(rename = "SubscribeURL", alias = "SubscribeUrl")]
    subscribe_url: Option<String>,
    #[serde(rename = "Token")]
    token: Option<String>,
}

impl Envelope {
    /// Reads an HTTP delivery body. Strings are taken as received; JSON escapes are decoded,
    /// which is what SNS signed.
    pub fn parse(body: &[u8]) -> Result<Self, Rejection> {
        if body.len() > MAX_BODY_BYTES {
            return Err(Rejection::Malformed(format!(
                "body of {} bytes is over 256 KB",
                body.len()
            )));
        }
        let raw: Raw = serde_json::from_slice(body)
            .map_err(|e| Rejection::Malformed(format!("not an SNS envelope: {e}")))?;
        Self::from_raw(raw)
    }

    /// Reads an envelope already decoded as JSON (an SQS message body's), as [`Envelope::parse`].
    pub fn from_value(value: serde_json::Value) -> Result<Self, Rejection> {
        let raw: Raw = serde_json::from_value(value)
            .map_err(|e| Rejection::Malformed(format!("not an SNS envelope: {e}")))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: Raw) -> Result<Self, Rejection> {
        let need = |value: Option<String>, name: &str| {
            value.ok_or_else(|| Rejection::Malformed(format!("no `{name}`")))
        };
        let kind = match need(raw.kind, "Type")?.as_str() {
            "Notification" => MessageType::Notification,
            "SubscriptionConfirmation" => MessageType::SubscriptionConfirmation,
            "UnsubscribeConfirmation" => MessageType::UnsubscribeConfirmation,
            other => return Err(Rejection::Malformed(format!("unknown `Type` `{other}`"))),
        };
        let envelope = Self {
            kind,
            message_id: need(raw.message_id, "MessageId")?,
            topic_arn: need(raw.topic_arn, "TopicArn")?,
            subject: raw.subject,
            message: need(raw.message, "Message")?,
            timestamp: need(raw.timestamp, "Timestamp")?,
            signature_version: need(raw.signature_version, "SignatureVersion")?,
            signature: need(raw.signature, "Signature")?,
            signing_cert_url: need(raw.signing_cert_url, "SigningCertURL")?,
            subscribe_url: raw.subscribe_url,
            token: raw.token,
        };
        if kind != MessageType::Notification {
            if envelope.subscribe_url.is_none() {
                return Err(Rejection::Malformed("no `SubscribeURL`".into()));
            }
            if envelope.token.is_none() {
                return Err(Rejection::Malformed("no `Token`".into()));
            }
        }
        Ok(envelope)
    }

    /// The string SNS signed: `key\nvalue\n` for each signed field, in SNS's order.
    pub fn string_to_sign(&self) -> String {
        let mut fields: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.kind {
            MessageType::Notification => {
                if let Some(subject) = &self.subject {
                    fields.push(("Subject", subject));
                }
                fields.extend([
                    ("Timestamp", self.timestamp.as_str()),
                    ("TopicArn", &self.topic_arn),
                ]);
            }
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => {
                fields.extend([
                    ("SubscribeURL", self.subscribe_url.as_deref().unwrap_or("")),
                    ("Timestamp", &self.timestamp),
                    ("Token", self.token.as_deref().unwrap_or("")),
                    ("TopicArn", &self.topic_arn),
                ]);
            }
        }
        fields.push(("Type", self.kind.as_str()));
        let mut text = String::new();
        for (key, value) in fields {
            text.push_str(key);
            text.push('\n');
            text.push_str(value);
            text.push('\n');
        }
        text
    }
}

/// The region of a topic ARN (`arn:aws:sns:REGION:ACCOUNT:NAME`), and whether it is in China.
pub fn topic_region(topic_arn: &str) -> Option<(&str, bool)> {
    let mut parts = topic_arn.split(':');
    let (arn, partition, service, region) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let valid_region = !region.is_empty()
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (arn == "arn" && service == "sns" && valid_region && partition.starts_with("aws"))
        .then_some((region, partition == "aws-cn"))
}

/// The only host an SNS URL of this topic may have.
fn sns_host(topic_arn: &str) -> Option<String> {
    let (region, china) = topic_region(topic_arn)?;
    Some(if china {
        format!("sns.{region}.amazonaws.com.cn")
    } else {
        format!("sns.{region}.amazonaws.com")
    })
}

/// `https://HOST/PATH[?QUERY]` split strictly: no user info, no port, no fragment.
fn split_https(url: &str) -> Result<(&str, &str, Option<&str>), String> {
    let rest = url.strip_prefix("https://").ok_or("not https")?;
    if rest.contains('#') {
        return Err("has a fragment".into());
    }
    let (authority, path_query) = rest.split_at(rest.find('/').ok_or("has no path")?);
    if authority.contains('@') {
        return Err("has user info".into());
    }
    if authority.contains(':') {
        return Err("has a port".into());
    }
    let (path, query) = match path_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_query, None),
    };
    Ok((authority, path, query))
}

/// Where SNS's signing certificates and confirmation URLs may be: on AWS, the SNS host of the
/// topic's region over https; in a run against a local emulator (`AWS_ENDPOINT_URL` on a
/// loopback address, see [`SnsOrigin::from_endpoint`]), a loopback address, where the
/// emulator's SNS serves the certificate it signs with. Every other check (signature, topic,
/// age, query) is the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SnsOrigin {
    /// Real SNS: `https://sns.REGION.amazonaws.com[.cn]`.
    #[default]
    Aws,
    /// A local emulator: `http(s)://127.0.0.1`, `localhost` or `[::1]`, any port.
    Emulator,
}

/// The host of a loopback `http(s)://HOST[:PORT]` authority, or `None`.
fn loopback(authority: &str) -> Option<&str> {
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]").then_some(host)
}

impl SnsOrigin {
    /// The emulator when `endpoint` is a loopback URL (`http(s)://127.0.0.1`, `localhost` or
    /// `[::1]`, any port), else real SNS: a deployed function never has such an endpoint, so
    /// nothing but a local run trusts loopback URLs.
    pub fn from_endpoint(endpoint: Option<&str>) -> Self {
        let authority = endpoint.map(|e| e.trim_end_matches('/')).and_then(|e| {
            e.strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"))
        });
        match authority.and_then(loopback) {
            Some(_) => Self::Emulator,
            None => Self::Aws,
        }
    }

    /// Whether URLs must be https (always, but for an emulator on loopback).
    pub fn https_only(&self) -> bool {
        matches!(self, Self::Aws)
    }

    /// `url`'s path and query, when it is on this origin for `topic_arn`.
    fn split<'u>(
        &self,
        url: &'u str,
        topic_arn: &str,
    ) -> Result<(&'u str, Option<&'u str>), String> {
        let expected = sns_host(topic_arn).ok_or("belongs to no valid topic ARN")?;
        match self {
            Self::Aws => {
                let (host, path, query) = split_https(url)?;
                if !host.eq_ignore_ascii_case(&expected) {
                    return Err(format!("is not on {expected}"));
                }
                Ok((path, query))
            }
            Self::Emulator => {
                let rest = url
                    .strip_prefix("http://")
                    .or_else(|| url.strip_prefix("https://"))
                    .ok_or("is not http(s)")?;
                if rest.contains('#') {
                    return Err("has a fragment".into());
                }
                let (authority, path_query) = rest.split_at(rest.find('/').ok_or("has no path")?);
                loopback(authority).ok_or("is not on a local emulator (loopback)")?;
                Ok(match path_query.split_once('?') {
                    Some((path, query)) => (path, Some(query)),
                    None => (path_query, None),
                })
            }
        }
    }
}

/// Checks a `SigningCertURL`: https only; no port, user info, query or fragment; host exactly
/// the SNS host of the topic's region; path `/SimpleNotificationService-<alphanumerics>.pem`.
/// On an emulator's origin, any path of it without a query.
pub fn check_certificate_url(
    url: &str,
    topic_arn: &str,
    origin: &SnsOrigin,
) -> Result<(), Rejection> {
    let refuse = |why: &str| Rejection::CertificateUrl(format!("`{url}` {why}"));
    let (path, query) = origin.split(url, topic_arn).map_err(|why| refuse(&why))?;
    if query.is_some() {
        return Err(refuse("has a query"));
    }
    if *origin == SnsOrigin::Emulator {
        return Ok(());
    }
    let name = path
        .strip_prefix("/SimpleNotificationService-")
        .and_then(|rest| rest.strip_suffix(".pem"))
        .ok_or_else(|| refuse("is not /SimpleNotificationService-<id>.pem"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(refuse("is not /SimpleNotificationService-<id>.pem"));
    }
    Ok(())
}

/// Checks a `SubscribeURL` before it is visited: the topic's SNS host, `Action=ConfirmSubscription`,
/// the same topic, https, no port, user info or fragment (on an emulator's origin: its base URL).
pub fn check_subscribe_url(
    url: &str,
    topic_arn: &str,
    origin: &SnsOrigin,
) -> Result<(), Rejection> {
    let refuse = |why: &str| Rejection::SubscribeUrl(format!("`{url}` {why}"));
    let (path, query) = origin.split(url, topic_arn).map_err(|why| refuse(&why))?;
    if path != "/" {
        return Err(refuse("has a path"));
    }
    let pairs: Vec<(&str, &str)> = query
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .collect();
    let value = |key: &str| {
        pairs
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .collect::<Vec<_>>()
    };
    if value("Action") != ["ConfirmSubscription"] {
        return Err(refuse("is not one ConfirmSubscription action"));
    }
    let topic = value("TopicArn");
    let encoded = topic_arn.replace(':', "%3A");
    if !(topic.len() == 1 && (topic[0] == topic_arn || topic[0].eq_ignore_ascii_case(&encoded))) {
        return Err(refuse("is for another topic"));
    }
    Ok(())
}

/// Refuses a message older than `max_age` (or more than five minutes in the future).
pub fn check_age(timestamp: &str, now: Timestamp, max_age: Duration) -> Result<(), Rejection> {
    let sent = Timestamp::parse_rfc3339(timestamp)
        .map_err(|_| Rejection::Malformed(format!("`Timestamp` `{timestamp}` is not RFC 3339")))?;
    if now.since(sent) > max_age || sent.since(now) > Duration::from_secs(300) {
        return Err(Rejection::Stale(timestamp.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "arn:aws:sns:us-east-1:111111111111:ses-feedback";

    #[test]
    fn the_string_to_sign_follows_the_order_and_fields_of_each_type() {
        let mut e = Envelope::parse(include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/events/sns-http-bounce.json"
        )))
        .unwrap();
        e.message = "m".into();
        e.timestamp = "t".into();
        assert_eq!(
            e.string_to_sign(),
            format!(
                "Message\nm\nMessageId\n{}\nTimestamp\nt\nTopicArn\n{TOPIC}\nType\nNotification\n",
                e.message_id
            )
        );
        e.subject = Some("s".into());
        assert!(
            e.string_to_sign().contains(
                "MessageId\na1b2c3d4-0000-4000-8000-000000000001\nSubject\ns\nTimestamp\n"
            )
        );
        e.kind = MessageType::SubscriptionConfirmation;
        e.subscribe_url = Some("u".into());
        e.token = Some("k".into());
        assert_eq!(
            e.string_to_sign(),
            format!(
                "Message\nm\nMessageId\n{}\nSubscribeURL\nu\nTimestamp\nt\nToken\nk\nTopicArn\n{TOPIC}\nType\nSubscriptionConfirmation\n",
                e.message_id
            )
        );
    }

    #[test]
    fn only_certificates_of_the_topics_region_on_sns_are_accepted() {
        let good = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem";
        assert_eq!(check_certificate_url(good, TOPIC, &SnsOrigin::Aws), Ok(()));
        let china = "arn:aws-cn:sns:cn-north-1:111111111111:t";
        assert_eq!(
            check_certificate_url(
                "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem",
                china,
                &SnsOrigin::Aws
            ),
            Ok(())
        );
        let bad = [
            "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com:443/SimpleNotificationService-abc.pem",
            "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem?x=.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem#.pem",
            "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://evil-bucket.s3.amazonaws.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/evil/SimpleNotificationService-abc.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-../x.pem",
            "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-.pem",
            "https://sns.us-east-1.amazonaws.com/cert.pem",
        ];
        for url in bad {
            assert!(
                matches!(
                    check_certificate_url(url, TOPIC, &SnsOrigin::Aws),
                    Err(Rejection::CertificateUrl(_))
                ),
                "{url}"
            );
        }
        assert!(check_certificate_url(good, "arn:aws:s3:::bucket", &SnsOrigin::Aws).is_err());
    }

    #[test]
    fn a_subscribe_url_must_confirm_this_topic_on_its_sns_host() {
        let good = format!(
            "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={}&Token=abc",
            TOPIC.replace(':', "%3A")
        );
        assert_eq!(check_subscribe_url(&good, TOPIC, &SnsOrigin::Aws), Ok(()));
        let bad = [
            good.replace("sns.us-east-1", "sns.us-west-2"),
            good.replace("https://", "http://"),
            good.replace("ConfirmSubscription", "Unsubscribe"),
            good.replace("ses-feedback", "other-topic"),
            good.replace(".com/", ".com:8443/"),
            good.replace(".com/", ".com/redirect"),
            format!("{good}&Action=Unsubscribe"),
            "https://169.254.169.254/latest/meta-data/".to_owned(),
        ];
        for url in bad {
            assert!(
                matches!(
                    check_subscribe_url(&url, TOPIC, &SnsOrigin::Aws),
                    Err(Rejection::SubscribeUrl(_))
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn only_a_loopback_endpoint_is_an_emulator_and_only_its_own_urls_pass_there() {
        for endpoint in [
            "http://127.0.0.1:4566",
            "http://localhost:4566/",
            "https://[::1]:8443",
        ] {
            assert_eq!(
                SnsOrigin::from_endpoint(Some(endpoint)),
                SnsOrigin::Emulator,
                "{endpoint}"
            );
        }
        for endpoint in [
            None,
            Some("https://sns.us-east-1.amazonaws.com"),
            Some("http://127.0.0.1.evil.com:80"),
            Some("http://10.0.0.1:4566"),
            Some("127.0.0.1:4566"),
        ] {
            assert_eq!(
                SnsOrigin::from_endpoint(endpoint),
                SnsOrigin::Aws,
                "{endpoint:?}"
            );
        }
        let local = SnsOrigin::from_endpoint(Some("http://127.0.0.1:4566"));
        assert!(!local.https_only() && SnsOrigin::Aws.https_only());
        let cert = "http://127.0.0.1:4566/_fakecloud/sns/cert.pem";
        assert_eq!(check_certificate_url(cert, TOPIC, &local), Ok(()));
        assert!(check_certificate_url(cert, TOPIC, &SnsOrigin::Aws).is_err());
        let confirm =
            format!("http://127.0.0.1:4566/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=t");
        assert_eq!(check_subscribe_url(&confirm, TOPIC, &local), Ok(()));
        for url in [
            "http://10.0.0.1:4566/_fakecloud/sns/cert.pem".to_owned(),
            "http://127.0.0.1:4566@evil.com/cert.pem".to_owned(),
            "http://127.0.0.1.evil.com/cert.pem".to_owned(),
            format!("{cert}?x=1"),
        ] {
            assert!(check_certificate_url(&url, TOPIC, &local).is_err(), "{url}");
        }
        for url in [
            confirm.replace("ConfirmSubscription", "Unsubscribe"),
            confirm.replace("ses-feedback", "other-topic"),
            confirm.replace(":4566/", ":4566/path"),
            confirm.replace("127.0.0.1", "169.254.169.254"),
        ] {
            assert!(check_subscribe_url(&url, TOPIC, &local).is_err(), "{url}");
        }
    }

    #[test]
    fn stale_and_future_messages_are_refused() {
        let now = Timestamp::parse_rfc3339("2026-11-20T12:00:00Z").unwrap();
        let hour = Duration::from_secs(3600);
        assert_eq!(check_age("2026-11-20T11:30:00.000Z", now, hour), Ok(()));
        assert!(matches!(
            check_age("2026-11-20T10:59:59.000Z", now, hour),
            Err(Rejection::Stale(_))
        ));
        assert!(matches!(
            check_age("2026-11-20T12:06:00.000Z", now, hour),
            Err(Rejection::Stale(_))
        ));
        assert!(matches!(
            check_age("yesterday", now, hour),
            Err(Rejection::Malformed(_))
        ));
    }

    #[test]
    fn malformed_envelopes_name_what_is_missing() {
        assert_eq!(Envelope::parse(b"nope").unwrap_err().status(), 400);
        let e = Envelope::parse(br#"{"Type":"Notification","MessageId":"m"}"#).unwrap_err();
        assert_eq!(e, Rejection::Malformed("no `TopicArn`".into()));
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert!(
            Envelope::parse(&big)
                .unwrap_err()
                .to_string()
                .contains("over 256 KB")
        );
        let odd = br#"{"Type":"Ping","MessageId":"m","TopicArn":"t","Message":"x","Timestamp":"t","SignatureVersion":"1","Signature":"s","SigningCertURL":"u"}"#;
        assert!(
            Envelope::parse(odd)
                .unwrap_err()
                .to_string()
                .contains("unknown `Type` `Ping`")
        );
    }

    #[test]
    fn topic_regions_come_from_the_arn() {
        assert_eq!(topic_region(TOPIC), Some(("us-east-1", false)));
        assert_eq!(
            topic_region("arn:aws-cn:sns:cn-north-1:1:t"),
            Some(("cn-north-1", true))
        );
        assert_eq!(topic_region("arn:aws:sqs:us-east-1:1:q"), None);
        assert_eq!(topic_region("arn:aws:sns:US-EAST-1.evil.com/:1:t"), None);
    }
}
