//! The diagnostic phrases that name a bounce's reason, as data: one phrase per rule, matched
//! case-insensitively anywhere in `diagnosticCode`, the first rule in this order winning. The
//! most specific come first (a provider's own codes), then the reasons that are about the
//! sender (a refusal of *us* often also says "rejected" or "does not exist" of something), then
//! the address's reasons. Each rule names its source: a provider's or an RFC's public
//! documentation, or "common" for wording many MTAs share (Postfix, Exim, Exchange, qmail).
//! Written for sesguard; the reason names follow the established taxonomy of bounce
//! classifiers (sisimai, Postmark's bounce types) but no table was copied.

use super::BounceReason::{self, *};

/// One phrase and the reason it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// Matched case-insensitively as a substring of the diagnostic.
    pub phrase: &'static str,
    /// The reason it names.
    pub reason: BounceReason,
    /// Where the wording is documented.
    pub source: &'static str,
}

const GMAIL: &str = "Gmail SMTP errors and codes (support.google.com/a/answer/3726730)";
const MICROSOFT: &str = "Exchange Online NDRs (learn.microsoft.com/exchange/mail-flow-best-practices/non-delivery-reports-in-exchange-online)";
const OUTLOOK: &str = "Outlook.com postmaster (sendersupport.olc.protection.outlook.com/pm)";
const YAHOO: &str = "Yahoo Sender Hub SMTP error codes (senders.yahooinc.com/smtp-error-codes)";
const RFC5321: &str = "RFC 5321 §4.2 reply texts";
const RFC7505: &str = "RFC 7505 (null MX)";
const BLOCKLISTS: &str = "DNS blocklist rejections (Postfix reject_rbl_client, Spamhaus, Spamcop)";
const AUTH: &str = "RFC 7208 (SPF), RFC 6376 (DKIM), RFC 7489 (DMARC) rejections";
const COMMON: &str = "common MTA wording (Postfix, Exim, Exchange, qmail)";

const fn rule(phrase: &'static str, reason: BounceReason, source: &'static str) -> Rule {
    Rule {
        phrase,
        reason,
        source,
    }
}

/// The rules, most specific first.
pub const RULES: &[Rule] = &[
    // Providers' own codes and sentences.
    rule("AS(201806281)", UserUnknown, MICROSOFT),
    rule("S3150", Blocked, OUTLOOK),
    rule("S3140", Blocked, OUTLOOK),
    rule("S3114", Blocked, OUTLOOK),
    rule("banned sending IP", Blocked, MICROSOFT),
    rule("5.7.606", Blocked, MICROSOFT),
    rule("5.7.511", Blocked, MICROSOFT),
    rule("5.7.708", Blocked, MICROSOFT),
    rule("5.7.750", Blocked, MICROSOFT),
    rule(
        "email account that you tried to reach does not exist",
        UserUnknown,
        GMAIL,
    ),
    rule(
        "email account that you tried to reach is disabled",
        Suspended,
        GMAIL,
    ),
    rule(
        "email account that you tried to reach is over quota",
        MailboxFull,
        GMAIL,
    ),
    rule("inbox is out of storage space", MailboxFull, GMAIL),
    rule("unusual rate of unsolicited mail", Blocked, GMAIL),
    rule("very low reputation", Blocked, GMAIL),
    rule("does not meet IPv6 sending guidelines", Blocked, GMAIL),
    rule(
        "IP address sending this message does not have a PTR",
        Blocked,
        GMAIL,
    ),
    rule("[TS01]", Blocked, YAHOO),
    rule("[TS02]", Blocked, YAHOO),
    rule("[TS03]", Blocked, YAHOO),
    rule("[TSS04]", Blocked, YAHOO),
    rule("[TSS09]", Blocked, YAHOO),
    rule("unexpected volume or user complaints", Blocked, YAHOO),
    rule("doesn't have a yahoo.com account", UserUnknown, YAHOO),
    rule("doesn't have a ymail.com account", UserUnknown, YAHOO),
    // The sender's authentication.
    rule("DMARC", Authentication, AUTH),
    rule("DKIM", Authentication, AUTH),
    rule("SPF", Authentication, AUTH),
    rule("sender policy framework", Authentication, AUTH),
    rule("unauthenticated email", Authentication, GMAIL),
    rule("not authenticated", Authentication, AUTH),
    rule("authentication failed", Authentication, AUTH),
    rule("sender address has null MX", Authentication, RFC7505),
    // The receiver blocks the sender's IP or domain.
    rule("blocked using", Blocked, BLOCKLISTS),
    rule("blocklist", Blocked, BLOCKLISTS),
    rule("block list", Blocked, BLOCKLISTS),
    rule("blacklist", Blocked, BLOCKLISTS),
    rule("spamhaus", Blocked, BLOCKLISTS),
    rule("spamcop", Blocked, BLOCKLISTS),
    rule("barracuda", Blocked, BLOCKLISTS),
    rule("sorbs", Blocked, BLOCKLISTS),
    rule("dnsbl", Blocked, BLOCKLISTS),
    rule("RBL", Blocked, BLOCKLISTS),
    rule("listed at", Blocked, BLOCKLISTS),
    rule("listed on", Blocked, BLOCKLISTS),
    rule("listed in", Blocked, BLOCKLISTS),
    rule("client host rejected", Blocked, COMMON),
    rule("client host", Blocked, COMMON),
    rule("poor reputation", Blocked, COMMON),
    rule("bad reputation", Blocked, COMMON),
    rule("low reputation", Blocked, COMMON),
    rule("sender reputation", Blocked, COMMON),
    rule("IP reputation", Blocked, COMMON),
    rule("reverse DNS", Blocked, COMMON),
    rule("PTR record", Blocked, COMMON),
    rule("rDNS", Blocked, COMMON),
    rule("your IP", Blocked, COMMON),
    rule("sending IP", Blocked, COMMON),
    rule("IP address", Blocked, COMMON),
    rule("access denied, banned", Blocked, COMMON),
    rule("blocked", Blocked, COMMON),
    // The receiver's policy: content, spam, rate, relaying, size, the sender's address.
    rule("sender address rejected", Policy, COMMON),
    rule("sender domain", Policy, COMMON),
    rule("relay access denied", Policy, COMMON),
    rule("relaying denied", Policy, COMMON),
    rule("relay not permitted", Policy, COMMON),
    rule("unable to relay", Policy, COMMON),
    rule("not permitted to relay", Policy, COMMON),
    rule("spam", Policy, COMMON),
    rule("unsolicited", Policy, COMMON),
    rule("junk mail", Policy, COMMON),
    rule("virus", Policy, COMMON),
    rule("malware", Policy, COMMON),
    rule("phishing", Policy, COMMON),
    rule("suspicious", Policy, COMMON),
    rule("content rejected", Policy, COMMON),
    rule("message content", Policy, COMMON),
    rule("attachment", Policy, COMMON),
    rule("message size exceeds", Policy, RFC5321),
    rule("message too large", Policy, COMMON),
    rule("message is too large", Policy, COMMON),
    rule("too big", Policy, COMMON),
    rule("rate limit", Policy, COMMON),
    rule("too many messages", Policy, COMMON),
    rule("too many connections", Policy, COMMON),
    rule("too many recipients", Policy, COMMON),
    rule("try again later", Policy, COMMON),
    rule("local policy", Policy, COMMON),
    rule("policy reasons", Policy, COMMON),
    rule("policy violation", Policy, COMMON),
    rule("rejected by policy", Policy, COMMON),
    rule("administrative prohibition", Policy, COMMON),
    // The mailbox is disabled, full or gone for a while.
    rule("account has been disabled", Suspended, COMMON),
    rule("account is disabled", Suspended, COMMON),
    rule("mailbox disabled", Suspended, RFC5321),
    rule("mailbox is disabled", Suspended, COMMON),
    rule("deactivated", Suspended, COMMON),
    rule("suspended", Suspended, COMMON),
    rule("inactive", Suspended, COMMON),
    rule("account has expired", Suspended, COMMON),
    rule("no longer active", Suspended, COMMON),
    rule("account is locked", Suspended, COMMON),
    rule("temporarily disabled", Suspended, COMMON),
    rule("mailbox full", MailboxFull, COMMON),
    rule("mailbox is full", MailboxFull, COMMON),
    rule("over quota", MailboxFull, COMMON),
    rule("overquota", MailboxFull, COMMON),
    rule("quota exceeded", MailboxFull, COMMON),
    rule("exceeded storage", MailboxFull, RFC5321),
    rule("insufficient storage", MailboxFull, COMMON),
    rule("storage space", MailboxFull, COMMON),
    rule("mailbox size limit", MailboxFull, COMMON),
    rule("would exceed", MailboxFull, COMMON),
    // The domain cannot receive mail.
    rule("null MX", HostUnknown, RFC7505),
    rule("does not accept mail", HostUnknown, RFC7505),
    rule("host not found", HostUnknown, COMMON),
    rule("host unknown", HostUnknown, COMMON),
    rule("unknown host", HostUnknown, COMMON),
    rule("domain not found", HostUnknown, COMMON),
    rule("no such domain", HostUnknown, COMMON),
    rule("domain does not exist", HostUnknown, COMMON),
    rule("domain name not found", HostUnknown, COMMON),
    rule("unrouteable mail domain", HostUnknown, COMMON),
    rule("unroutable mail domain", HostUnknown, COMMON),
    rule("unrouteable address", HostUnknown, COMMON),
    rule("NXDOMAIN", HostUnknown, COMMON),
    rule("name or service not known", HostUnknown, COMMON),
    rule("no MX", HostUnknown, COMMON),
    rule("no valid MX", HostUnknown, COMMON),
    rule("MX record", HostUnknown, COMMON),
    rule("DNS error", HostUnknown, COMMON),
    // The mailbox does not exist.
    rule("user unknown", UserUnknown, COMMON),
    rule("unknown user", UserUnknown, COMMON),
    rule("no such user", UserUnknown, COMMON),
    rule("user not found", UserUnknown, COMMON),
    rule("user doesn't exist", UserUnknown, COMMON),
    rule("user does not exist", UserUnknown, COMMON),
    rule("recipient not found", UserUnknown, COMMON),
    rule("recipient unknown", UserUnknown, COMMON),
    rule("unknown recipient", UserUnknown, COMMON),
    rule("invalid recipient", UserUnknown, COMMON),
    rule("no such recipient", UserUnknown, COMMON),
    rule("recipient address rejected", UserUnknown, COMMON),
    rule("address rejected", UserUnknown, COMMON),
    rule("mailbox not found", UserUnknown, COMMON),
    rule("mailbox does not exist", UserUnknown, COMMON),
    rule("mailbox unavailable", UserUnknown, RFC5321),
    rule("no mailbox", UserUnknown, COMMON),
    rule("no such mailbox", UserUnknown, COMMON),
    rule("invalid mailbox", UserUnknown, COMMON),
    rule("not a valid mailbox", UserUnknown, COMMON),
    rule("mailbox unknown", UserUnknown, COMMON),
    rule("address unknown", UserUnknown, COMMON),
    rule("unknown address", UserUnknown, COMMON),
    rule("address does not exist", UserUnknown, COMMON),
    rule("account does not exist", UserUnknown, COMMON),
    rule("does not exist", UserUnknown, COMMON),
    rule("doesn't exist", UserUnknown, COMMON),
    rule("unknown or illegal alias", UserUnknown, COMMON),
    rule("bad destination mailbox", UserUnknown, COMMON),
    rule("undeliverable address", UserUnknown, COMMON),
    rule("not our customer", UserUnknown, COMMON),
    rule("no longer available", UserUnknown, COMMON),
    rule("not found", UserUnknown, COMMON),
    rule("user not local", UserUnknown, RFC5321),
    // Delivery gave up.
    rule("delivery time expired", Expired, COMMON),
    rule("retry timeout exceeded", Expired, COMMON),
    rule("retry time not reached", Expired, COMMON),
    rule("message expired", Expired, COMMON),
    rule("expired", Expired, COMMON),
    rule("timed out", Expired, COMMON),
    rule("timeout", Expired, COMMON),
    rule("connection refused", Expired, COMMON),
    rule("could not be delivered within", Expired, COMMON),
];
