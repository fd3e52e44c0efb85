//! What an SES `SendEmail` failure means for sesguard: each class has its own reaction (the
//! sender's job), decided here from the error code, the message text and the HTTP status.
//! Texts come from SESv2 and from SMTP-style errors seen in the wild.

/// The class of a failed send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// Sending rate exceeded: pause the account briefly, defer this message, move the rest of
    /// the batch to the next account.
    Rate,
    /// The 24-hour quota is used up: the account is exhausted until its quota frees.
    DailyQuota,
    /// The account or its configuration set is paused at SES: mark it paused, alert, fail over.
    Paused,
    /// The account is suspended: as paused, and it will not lift by itself.
    Suspended,
    /// The message itself was refused (content, bad request): record it, never retry.
    Rejected,
    /// The account's credentials or permissions were refused (access denied, an expired or
    /// unknown token from its assumed role, a bad signature from clock skew): a fault of the
    /// account's set-up, not of the message. Pause the account with an alert naming the fault,
    /// fail over; the message is never dropped for it.
    AccessDenied,
    /// sesguard's or SES's configuration is wrong (unverified identity or MAIL FROM domain,
    /// missing configuration set or template): alert the operators; the message waits.
    Configuration,
    /// A fault on the way (timeout, TLS, 5xx, throttled connection): retry with backoff, then
    /// defer. Also anything unrecognised, so that no message is dropped on a guess.
    Transient,
}

/// Error codes of AWS's authentication and authorisation, from SES and from STS (the
/// account's assumed role).
const ACCESS_CODES: [&str; 13] = [
    "AccessDenied",
    "AccessDeniedException",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "MissingAuthenticationTokenException",
    "NotAuthorized",
    "RequestExpired",
];

/// Texts of the same faults where no code came back (a credentials provider failing before the
/// request was sent, or a proxy's answer).
const ACCESS_TEXTS: [&str; 5] = [
    "not authorized to perform",
    "security token included in the request",
    "failed to load credentials",
    "credentials provider",
    "signature we calculated does not match",
];

const RATE_TEXTS: [&str; 11] = [
    "maximum sending rate exceeded",
    "excessive message rate",
    "too many messages",
    "rate limit exceeded",
    "sending rate exceeded",
    "throttl",
    "quota exceeded",
    "message rate limit",
    "451 4.7.0",
    "452 4.2.1",
    "421 4.7.0",
];

/// Classifies a failure by its error code (`TooManyRequestsException`...), its message and the
/// HTTP status, when there was a response at all.
pub fn classify(code: Option<&str>, message: &str, status: Option<u16>) -> SendFailure {
    let text = message.to_ascii_lowercase();
    let code = code.unwrap_or("");
    if text.contains("daily message quota exceeded")
        || (text.contains("daily") && text.contains("quota"))
    {
        return SendFailure::DailyQuota;
    }
    match code {
        "TooManyRequestsException" | "ThrottlingException" | "Throttling" => {
            return SendFailure::Rate;
        }
        "SendingPausedException" => return SendFailure::Paused,
        code if ACCESS_CODES.contains(&code) => return SendFailure::AccessDenied,
        "AccountSuspendedException" => return SendFailure::Suspended,
        "MailFromDomainNotVerifiedException" | "NotFoundException" => {
            return SendFailure::Configuration;
        }
        _ => {}
    }
    if ACCESS_TEXTS.iter().any(|t| text.contains(t)) || (status == Some(403) && code.is_empty()) {
        return SendFailure::AccessDenied;
    }
    if text.contains("sending paused") {
        return SendFailure::Paused;
    }
    if RATE_TEXTS.iter().any(|t| text.contains(t)) {
        return SendFailure::Rate;
    }
    match code {
        "MessageRejected" if text.contains("not verified") => SendFailure::Configuration,
        // Only what SES documents as the message's own fault drops it. An unknown code, even
        // with a 4xx status, is deferred: no message is dropped on a guess.
        "MessageRejected" | "BadRequestException" => SendFailure::Rejected,
        _ => SendFailure::Transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_named_in_the_facts_has_its_class() {
        use SendFailure::*;
        let cases: [(Option<&str>, &str, Option<u16>, SendFailure); 18] = [
            (
                Some("TooManyRequestsException"),
                "Too many requests",
                Some(429),
                Rate,
            ),
            (
                Some("MessageRejected"),
                "Maximum sending rate exceeded.",
                Some(400),
                Rate,
            ),
            (
                None,
                "454 Throttling failure: Maximum sending rate exceeded",
                None,
                Rate,
            ),
            (
                None,
                "451 4.7.0 Temporary server error, excessive message rate",
                None,
                Rate,
            ),
            (None, "421 4.7.0 Try again later", None, Rate),
            (None, "Rate limit exceeded", None, Rate),
            (
                Some("MessageRejected"),
                "Daily message quota exceeded.",
                Some(400),
                DailyQuota,
            ),
            (
                Some("LimitExceededException"),
                "Daily message quota exceeded",
                Some(400),
                DailyQuota,
            ),
            (
                Some("SendingPausedException"),
                "Sending paused for this account.",
                Some(400),
                Paused,
            ),
            (
                Some("MessageRejected"),
                "Sending paused for this configuration set",
                Some(400),
                Paused,
            ),
            (
                Some("AccountSuspendedException"),
                "suspended",
                Some(400),
                Suspended,
            ),
            (
                Some("MessageRejected"),
                "Email address is not verified. The following identities failed the check",
                Some(400),
                Configuration,
            ),
            (
                Some("MailFromDomainNotVerifiedException"),
                "MAIL FROM domain not verified",
                Some(400),
                Configuration,
            ),
            (
                Some("NotFoundException"),
                "Configuration set does not exist",
                Some(404),
                Configuration,
            ),
            (
                Some("MessageRejected"),
                "Message content rejected",
                Some(400),
                Rejected,
            ),
            (
                Some("BadRequestException"),
                "Illegal address",
                Some(400),
                Rejected,
            ),
            (
                None,
                "dispatch failure: io error: connection reset (TLS EOF)",
                None,
                Transient,
            ),
            (
                Some("InternalFailure"),
                "We encountered an internal error",
                Some(500),
                Transient,
            ),
        ];
        for (code, message, status, expected) in cases {
            assert_eq!(
                classify(code, message, status),
                expected,
                "{code:?} {message}"
            );
        }
    }

    #[test]
    fn unrecognised_failures_are_transient_so_nothing_is_dropped_on_a_guess() {
        assert_eq!(
            classify(None, "something new", None),
            SendFailure::Transient
        );
        assert_eq!(
            classify(Some("BrandNewException"), "?", Some(503)),
            SendFailure::Transient
        );
        assert_eq!(
            classify(Some("BrandNewException"), "?", Some(400)),
            SendFailure::Transient
        );
        assert_eq!(
            classify(Some("RequestTimeout"), "?", Some(408)),
            SendFailure::Transient
        );
    }

    #[test]
    fn credential_and_permission_faults_belong_to_the_account_not_the_message() {
        for code in ACCESS_CODES {
            assert_eq!(
                classify(Some(code), "refused", Some(403)),
                SendFailure::AccessDenied,
                "{code}"
            );
        }
        assert_eq!(
            classify(
                None,
                "User: arn:aws:sts::222222222222:assumed-role/sesguard/s is not authorized to perform: ses:SendEmail",
                Some(400)
            ),
            SendFailure::AccessDenied
        );
        assert_eq!(
            classify(None, "dispatch failure: failed to load credentials", None),
            SendFailure::AccessDenied
        );
        assert_eq!(
            classify(None, "Forbidden", Some(403)),
            SendFailure::AccessDenied
        );
    }

    #[test]
    fn only_the_documented_message_faults_are_rejected() {
        assert_eq!(
            classify(
                Some("LimitExceededException"),
                "too many resources",
                Some(400)
            ),
            SendFailure::Transient
        );
        assert_eq!(
            classify(Some("BadRequestException"), "bad", Some(400)),
            SendFailure::Rejected
        );
    }
}
