//! DNS, as prevention asks it: what a domain's records say of its mail, and for how long.

use super::*;
use crate::domain::sending::prevention::MailDomain;

/// A domain's mail answer and how long it holds (the records' TTL; for a negative answer, the
/// zone's SOA minimum, RFC 2308).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resolved {
    /// The answer.
    pub answer: MailDomain,
    /// How long it may be kept.
    pub ttl: std::time::Duration,
}

/// Why no answer came: the mail goes (prevention fails open).
#[derive(Debug, thiserror::Error)]
#[error("no DNS answer for {domain}: {detail}")]
pub struct ResolveError {
    /// The domain asked about.
    pub domain: String,
    /// What went wrong (a timeout, SERVFAIL, DNS turned off).
    pub detail: String,
}

/// Asks DNS about recipient domains.
#[async_trait]
pub trait DomainResolver: Any + Send + Sync {
    /// What `domain`'s MX records (and, without any, its A/AAAA records) say of its mail.
    async fn resolve(&self, domain: &str) -> Result<Resolved, ResolveError>;
}
