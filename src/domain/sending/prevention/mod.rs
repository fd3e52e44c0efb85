//! Prevention: what can be known about a recipient before any mail goes to it. An address is
//! undeliverable when its local part is impossible at its provider ([`local_parts`]), its
//! domain is a throw-away service (FGRibreau/mailchecker's list), or DNS says its domain does
//! not exist or takes no mail (RFC 7505's null MX; neither MX nor A/AAAA, RFC 5321 §5.1) — a
//! dead domain a small edit away from a large provider's is a `typo_domain`, with the
//! provider's domain as its suggestion. Nothing here can know that a mailbox at a live domain
//! does not exist: only the receiving server can say that, and only SES hears it.
//!
//! Two steps, so that DNS can be asked once per batch: [`Prevention::domain_to_resolve`] names
//! the domain whose DNS answer is still needed (none when the address is already decided, or
//! its domain is a large provider's), and [`Prevention::check`] concludes with that answer.
//! An unknown answer (a resolver that timed out) leaves the address deliverable: prevention
//! fails open. Pure.

use std::collections::{BTreeSet, HashSet};
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::domain::common::address::EmailAddress;
use crate::domain::feedback::provider::CONSUMER_DOMAINS;

pub mod local_parts;
#[cfg(test)]
mod tests;

use local_parts::LocalPartRule;

/// Why an address cannot receive mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Undeliverable {
    /// The domain does not exist (NXDOMAIN).
    NoSuchDomain,
    /// The domain exists but takes no mail: a null MX, or neither MX nor A/AAAA.
    NoMailDomain,
    /// The local part breaks the provider's own rules for its addresses.
    ImpossibleLocalPart,
    /// A dead domain one small edit from a large provider's.
    TypoDomain,
    /// A throw-away mail service.
    Disposable,
}

impl Undeliverable {
    /// Every reason, in the order status tables list them.
    pub const ALL: [Undeliverable; 5] = [
        Undeliverable::NoSuchDomain,
        Undeliverable::NoMailDomain,
        Undeliverable::ImpossibleLocalPart,
        Undeliverable::TypoDomain,
        Undeliverable::Disposable,
    ];

    /// The reason as logs, metrics and the API name it.
    pub fn name(self) -> &'static str {
        match self {
            Undeliverable::NoSuchDomain => "no_such_domain",
            Undeliverable::NoMailDomain => "no_mail_domain",
            Undeliverable::ImpossibleLocalPart => "impossible_local_part",
            Undeliverable::TypoDomain => "typo_domain",
            Undeliverable::Disposable => "disposable",
        }
    }

    /// The reason named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl std::fmt::Display for Undeliverable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What DNS says of a domain's mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailDomain {
    /// It has MX records (not a null MX), or an A/AAAA record to take mail at.
    Receives,
    /// NXDOMAIN.
    NoSuchDomain,
    /// A null MX, or neither MX nor A/AAAA.
    NoMailDomain,
}

impl MailDomain {
    /// The answer as the store and the API name it.
    pub fn name(self) -> &'static str {
        match self {
            MailDomain::Receives => "receives",
            MailDomain::NoSuchDomain => "no_such_domain",
            MailDomain::NoMailDomain => "no_mail_domain",
        }
    }

    /// The answer named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Receives, Self::NoSuchDomain, Self::NoMailDomain]
            .into_iter()
            .find(|a| a.name() == name)
    }
}

/// The DNS answer a check concludes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dns {
    /// Not needed: the address was decided without it, or its domain is a large provider's.
    NotNeeded,
    /// Asked, and no answer came (a timeout, a failing resolver, DNS turned off).
    Unknown,
    /// The answer.
    Known(MailDomain),
}

/// What a check says of one address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// The address checked.
    pub address: EmailAddress,
    /// Whether mail to it may go (an unknown DNS answer leaves it deliverable).
    pub deliverable: bool,
    /// Why not, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Undeliverable>,
    /// The large provider's domain it probably meant (`gmial.com` → `gmail.com`), even when
    /// the typed domain takes mail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// What decided it, in words.
    pub detail: String,
    /// The DNS answer used.
    pub dns: Dns,
}

/// The throw-away domains, read once from the list into a set.
static DISPOSABLE: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| mailchecker::blacklist().into_iter().collect());

/// How many domains the throw-away list holds.
pub fn disposable_domains() -> usize {
    DISPOSABLE.len()
}

/// The checks, with the operator's allowed domains (never judged: a partner's domain the
/// throw-away list names by mistake, a test domain).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prevention {
    allowed: BTreeSet<String>,
}

impl Prevention {
    /// The checks, never judging an address at `allowed` domains (or their subdomains).
    pub fn new(allowed: impl IntoIterator<Item = String>) -> Self {
        Self {
            allowed: allowed
                .into_iter()
                .map(|d| d.to_ascii_lowercase())
                .collect(),
        }
    }

    /// The domain whose DNS answer [`Prevention::check`] still needs for `address`; `None`
    /// when the address is decided without DNS or its domain is a large provider's.
    pub fn domain_to_resolve<'a>(&self, address: &'a EmailAddress) -> Option<&'a str> {
        let domain = address.domain();
        let decided = self.allowed_domain(domain)
            || local_part_breach(address).is_some()
            || disposable(domain)
            || consumer(domain);
        (!decided).then_some(domain)
    }

    /// What can be said of `address` given the DNS answer for its domain.
    pub fn check(&self, address: &EmailAddress, dns: Dns) -> Check {
        let domain = address.domain();
        let verdict =
            |reason: Option<Undeliverable>, suggestion: Option<String>, detail: String| Check {
                address: address.clone(),
                deliverable: reason.is_none(),
                reason,
                suggestion,
                detail,
                dns,
            };
        if self.allowed_domain(domain) {
            return verdict(
                None,
                None,
                format!("{domain} is allowed by the configuration"),
            );
        }
        if let Some(breach) = local_part_breach(address) {
            return verdict(Some(Undeliverable::ImpossibleLocalPart), None, breach);
        }
        let suggestion = typo_of(domain).map(str::to_owned);
        if disposable(domain) {
            // The list holds squatted typos of the large providers (`gmial.com`): what the
            // sender meant is the more useful answer.
            return match suggestion {
                Some(meant) => verdict(
                    Some(Undeliverable::TypoDomain),
                    Some(meant.clone()),
                    format!("{domain} is a throw-away service at a typo; did you mean {meant}?"),
                ),
                None => verdict(
                    Some(Undeliverable::Disposable),
                    None,
                    format!("{domain} is a throw-away mail service"),
                ),
            };
        }
        match dns {
            Dns::Known(answer @ (MailDomain::NoSuchDomain | MailDomain::NoMailDomain)) => {
                let dead = if answer == MailDomain::NoSuchDomain {
                    "does not exist"
                } else {
                    "takes no mail (a null MX, or neither MX nor A/AAAA)"
                };
                let reason = match (&suggestion, answer) {
                    (Some(_), _) => Undeliverable::TypoDomain,
                    (None, MailDomain::NoSuchDomain) => Undeliverable::NoSuchDomain,
                    (None, _) => Undeliverable::NoMailDomain,
                };
                let detail = match &suggestion {
                    Some(meant) => format!("{domain} {dead}; did you mean {meant}?"),
                    None => format!("{domain} {dead}"),
                };
                verdict(Some(reason), suggestion, detail)
            }
            Dns::Known(MailDomain::Receives) => {
                verdict(None, suggestion, format!("{domain} takes mail"))
            }
            Dns::Unknown => verdict(
                None,
                suggestion,
                format!("no DNS answer for {domain}: the mail may go (prevention fails open)"),
            ),
            Dns::NotNeeded => verdict(None, suggestion, format!("{domain} is a large provider's")),
        }
    }

    fn allowed_domain(&self, domain: &str) -> bool {
        suffixes(domain).any(|d| self.allowed.contains(d))
    }
}

/// What makes `address`'s local part impossible at its provider, if anything.
fn local_part_breach(address: &EmailAddress) -> Option<String> {
    let (local, domain) = address.as_str().rsplit_once('@')?;
    LocalPartRule::of(domain)?.breach(local)
}

/// `domain` and each domain it is under (`a.b.example.com`, `b.example.com`, `example.com`).
fn suffixes(domain: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(domain), |d| d.split_once('.').map(|(_, rest)| rest))
        .filter(|d| d.contains('.'))
}

/// Whether `domain`, or a domain it is under, is on the throw-away list.
fn disposable(domain: &str) -> bool {
    suffixes(domain).any(|d| DISPOSABLE.contains(d))
}

/// Whether `domain` is a large provider's own.
fn consumer(domain: &str) -> bool {
    CONSUMER_DOMAINS.iter().any(|(d, _)| *d == domain)
}

/// The large provider's domain `domain` is probably a typo of: one edit away (an insertion, a
/// deletion, a substitution or two neighbours swapped), two for domains of 12 characters or
/// more. Domains under 7 characters (`me.com`, `gm.com`) are too near too many others to take
/// or suggest. The table's order breaks ties: the larger providers come first. Only provider
/// domains within the allowed edits in length and in letters are compared, and one edit is
/// checked in one pass: a few hundred nanoseconds a domain, on every check.
pub fn typo_of(domain: &str) -> Option<&'static str> {
    if consumer(domain) || domain.len() < 7 {
        return None;
    }
    let most = if domain.len() >= 12 { 2 } else { 1 };
    let candidates = CONSUMER_DOMAINS
        .iter()
        .map(|(d, _)| *d)
        .filter(|d| d.len() >= 7 && d.len().abs_diff(domain.len()) <= most);
    let mut best: Option<(usize, &'static str)> = None;
    for candidate in candidates {
        let distance = if one_edit(domain.as_bytes(), candidate.as_bytes()) {
            1
        } else if most == 2 && bag_distance(domain.as_bytes(), candidate.as_bytes()) <= 2 {
            strsim::osa_distance(domain, candidate)
        } else {
            continue;
        };
        if distance <= most && best.is_none_or(|(shortest, _)| distance < shortest) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, d)| d)
}

/// A lower bound of the edit distance in one pass, without allocating: the larger of the
/// characters `a` has that `b` lacks and the reverse (each edit changes each side by at most
/// one).
fn bag_distance(a: &[u8], b: &[u8]) -> usize {
    let mut counts = [0i16; 256];
    for &c in a {
        counts[usize::from(c)] += 1;
    }
    for &c in b {
        counts[usize::from(c)] -= 1;
    }
    let (mut extra, mut missing) = (0usize, 0usize);
    for count in counts {
        if count > 0 {
            extra += count as usize;
        } else {
            missing += count.unsigned_abs() as usize;
        }
    }
    extra.max(missing)
}

/// Whether `a` and `b` are exactly one edit apart: an insertion, a deletion, a substitution,
/// or two neighbours swapped (the optimal string alignment distance is 1).
fn one_edit(a: &[u8], b: &[u8]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let same = short.iter().zip(long).take_while(|(x, y)| x == y).count();
    match long.len() - short.len() {
        0 if same == short.len() => false,
        0 => {
            let substituted = short[same + 1..] == long[same + 1..];
            let swapped = same + 1 < short.len()
                && short[same] == long[same + 1]
                && short[same + 1] == long[same]
                && short[same + 2..] == long[same + 2..];
            substituted || swapped
        }
        1 => short[same..] == long[same + 1..],
        _ => false,
    }
}
