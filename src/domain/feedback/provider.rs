//! Which mailbox provider a recipient's mail goes to. A consumer domain is looked up in a
//! table kept as data (the large providers' own domains, from their public sign-up and help
//! pages); any other domain is attributed by the receiving host the feedback names — the
//! diagnostic of a bounce, the SMTP response of a delivery (`... - gsmtp`,
//! `...prod.outlook.com`) — so that a company domain hosted by Google Workspace or Microsoft
//! 365 counts with its provider. What names no known host is `other`. Pure.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;

use crate::domain::common::address::EmailAddress;

/// The name counters and alerts use for mail to every provider not in the tables.
pub const OTHER: &str = "other";

/// Consumer domains and their provider.
pub const CONSUMER_DOMAINS: &[(&str, &str)] = &[
    ("gmail.com", "google"),
    ("googlemail.com", "google"),
    ("outlook.com", "microsoft"),
    ("hotmail.com", "microsoft"),
    ("hotmail.co.uk", "microsoft"),
    ("hotmail.fr", "microsoft"),
    ("hotmail.de", "microsoft"),
    ("hotmail.it", "microsoft"),
    ("hotmail.es", "microsoft"),
    ("live.com", "microsoft"),
    ("live.co.uk", "microsoft"),
    ("live.fr", "microsoft"),
    ("msn.com", "microsoft"),
    ("outlook.fr", "microsoft"),
    ("outlook.de", "microsoft"),
    ("yahoo.com", "yahoo"),
    ("yahoo.co.uk", "yahoo"),
    ("yahoo.fr", "yahoo"),
    ("yahoo.de", "yahoo"),
    ("yahoo.it", "yahoo"),
    ("yahoo.es", "yahoo"),
    ("yahoo.ca", "yahoo"),
    ("yahoo.com.br", "yahoo"),
    ("ymail.com", "yahoo"),
    ("rocketmail.com", "yahoo"),
    ("aol.com", "yahoo"),
    ("aim.com", "yahoo"),
    ("icloud.com", "apple"),
    ("me.com", "apple"),
    ("mac.com", "apple"),
    ("gmx.de", "united_internet"),
    ("gmx.net", "united_internet"),
    ("gmx.com", "united_internet"),
    ("web.de", "united_internet"),
    ("mail.com", "united_internet"),
    ("mail.ru", "vk"),
    ("bk.ru", "vk"),
    ("inbox.ru", "vk"),
    ("list.ru", "vk"),
    ("yandex.ru", "yandex"),
    ("yandex.com", "yandex"),
    ("ya.ru", "yandex"),
    ("proton.me", "proton"),
    ("protonmail.com", "proton"),
    ("zoho.com", "zoho"),
    ("comcast.net", "comcast"),
    ("orange.fr", "orange"),
    ("wanadoo.fr", "orange"),
    ("qq.com", "tencent"),
    ("163.com", "netease"),
    ("126.com", "netease"),
    ("naver.com", "naver"),
    ("t-online.de", "t_online"),
    ("libero.it", "italiaonline"),
    ("seznam.cz", "seznam"),
];

/// Receiving-host names (and the markers providers put in their replies) and their provider,
/// for domains hosted by a provider under their own name.
pub const HOST_MARKERS: &[(&str, &str)] = &[
    ("gsmtp", "google"),
    ("google.com", "google"),
    ("googlemail.com", "google"),
    ("protection.outlook.com", "microsoft"),
    ("prod.outlook.com", "microsoft"),
    ("outlook.com", "microsoft"),
    ("hotmail.com", "microsoft"),
    ("yahoodns.net", "yahoo"),
    ("yahoo.com", "yahoo"),
    ("yahooinc.com", "yahoo"),
    ("icloud.com", "apple"),
    ("apple.com", "apple"),
    ("mimecast", "mimecast"),
    ("pphosted.com", "proofpoint"),
    ("ppe-hosted.com", "proofpoint"),
    ("messagelabs.com", "broadcom"),
    ("zoho.com", "zoho"),
    ("yandex.net", "yandex"),
    ("mail.ru", "vk"),
];

/// The provider of a recipient at `domain` (lower-cased), given what the feedback says of the
/// receiving host (`hints`: a diagnostic, an SMTP response).
pub fn provider_of(domain: &str, hints: &[Option<&str>]) -> &'static str {
    if let Some((_, provider)) = CONSUMER_DOMAINS.iter().find(|(d, _)| *d == domain) {
        return provider;
    }
    hints
        .iter()
        .flatten()
        .find_map(|hint| marked(hint))
        .unwrap_or(OTHER)
}

/// Every host marker in one case-insensitive automaton; pattern `i` is `HOST_MARKERS[i]`.
static MARKERS: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .build(HOST_MARKERS.iter().map(|(marker, _)| marker))
        .expect("the host marker table builds")
});

/// The provider of the first marker in `text` that stands as whole host labels (not
/// `notgoogle.com`).
fn marked(text: &str) -> Option<&'static str> {
    let label = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'-');
    let bytes = text.as_bytes();
    MARKERS
        .find_overlapping_iter(text)
        .find(|m| {
            let before = m.start().checked_sub(1).and_then(|i| bytes.get(i));
            !label(before) && !label(bytes.get(m.end()))
        })
        .map(|m| HOST_MARKERS[m.pattern().as_usize()].1)
}

/// The providers of some recipients as their domains tell (no feedback yet: Google Workspace
/// and Microsoft 365 domains are `other` here), each once.
pub fn providers_of<'a>(
    recipients: impl IntoIterator<Item = &'a EmailAddress>,
) -> Vec<&'static str> {
    let mut providers: Vec<&'static str> = recipients
        .into_iter()
        .map(|r| provider_of(r.domain(), &[]))
        .collect();
    providers.sort_unstable();
    providers.dedup();
    providers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_domain_is_its_provider_whatever_the_feedback_says() {
        assert_eq!(provider_of("gmail.com", &[]), "google");
        assert_eq!(provider_of("aol.com", &[Some("outlook.com")]), "yahoo");
        assert_eq!(provider_of("icloud.com", &[None]), "apple");
    }

    #[test]
    fn another_domain_is_attributed_by_the_receiving_host_it_names() {
        let gsmtp =
            "smtp; 550-5.1.1 The email account that you tried to reach does not exist. - gsmtp";
        assert_eq!(provider_of("example.com", &[Some(gsmtp)]), "google");
        let microsoft = "550 5.4.1 Recipient address rejected: Access denied [DM6NAM12FT012.eop-nam12.prod.protection.outlook.com]";
        assert_eq!(
            provider_of("corp.example", &[None, Some(microsoft)]),
            "microsoft"
        );
        assert_eq!(
            provider_of(
                "example.org",
                &[Some("250 ok dirdel"), Some("mx1.example.org")]
            ),
            OTHER
        );
        // A marker inside another name is not the provider.
        assert_eq!(
            provider_of("example.org", &[Some("relay.notgoogle.com")]),
            OTHER
        );
        assert_eq!(provider_of("example.org", &[Some("gsmtpx")]), OTHER);
    }

    #[test]
    fn the_tables_hold_lower_case_names_once() {
        let mut domains: Vec<&str> = CONSUMER_DOMAINS.iter().map(|(d, _)| *d).collect();
        domains.sort_unstable();
        domains.dedup();
        assert_eq!(
            domains.len(),
            CONSUMER_DOMAINS.len(),
            "a domain listed twice"
        );
        for (name, provider) in CONSUMER_DOMAINS.iter().chain(HOST_MARKERS) {
            assert_eq!(*name, name.to_ascii_lowercase());
            assert!(provider.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            assert_ne!(*provider, OTHER);
        }
    }
}
