//! Recipient addresses in the one normalised form used for every suppression key and lookup.
//!
//! Normalisation: a display name and its angle brackets are stripped (`"Jane" <Jane@X.com>`),
//! surrounding white space is trimmed, and the whole address is lower-cased, local part
//! included. RFC 5321 allows a case-sensitive local part, but no mainstream mailbox provider
//! uses one, and SES's own suppression list ignores case; treating `Jane@x.com` and
//! `jane@x.com` as two addresses would let a bounced address be mailed again. Quoted local
//! parts and address literals (`user@[10.0.0.1]`) are rejected as unparseable.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

const MAX_LOCAL: usize = 64;
const MAX_DOMAIN: usize = 253;
const MAX_LABEL: usize = 63;
/// The longest address a mail path carries (RFC 5321: 256 octets of path, less the brackets).
const MAX_ADDRESS: usize = 254;

/// A normalised, syntactically valid recipient address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

/// Why a text is not a usable address. Each variant carries the text as received.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    /// Nothing but white space.
    #[error("address is empty")]
    Empty,
    /// `<` without a matching `>`, or the reverse.
    #[error("address `{0}` has unbalanced angle brackets")]
    Brackets(String),
    /// No `@` separating local part and domain.
    #[error("address `{0}` has no `@`")]
    MissingAt(String),
    /// The part before `@` is empty, too long, or holds a character not allowed unquoted.
    #[error("address `{0}` has an invalid local part")]
    LocalPart(String),
    /// The domain is empty, too long, has fewer than two labels, or a bad label.
    #[error("address `{0}` has an invalid domain")]
    Domain(String),
}

impl EmailAddress {
    /// Parses and normalises one address, with or without a display name.
    pub fn parse(raw: &str) -> Result<Self, AddressError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(AddressError::Empty);
        }
        let bare =
            strip_display_name(trimmed).ok_or_else(|| AddressError::Brackets(raw.to_owned()))?;
        let (local, domain) = bare
            .rsplit_once('@')
            .ok_or_else(|| AddressError::MissingAt(raw.to_owned()))?;
        if !valid_local(local) {
            return Err(AddressError::LocalPart(raw.to_owned()));
        }
        if !valid_domain(domain) || local.len() + 1 + domain.len() > MAX_ADDRESS {
            return Err(AddressError::Domain(raw.to_owned()));
        }
        Ok(Self(format!("{local}@{domain}").to_lowercase()))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The domain part (already lower-case).
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, domain)| domain)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl<'de> Deserialize<'de> for EmailAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        EmailAddress::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The address inside `Name <address>`, or the text itself when it has no brackets.
fn strip_display_name(text: &str) -> Option<&str> {
    match (text.rfind('<'), text.ends_with('>')) {
        (Some(open), true) => Some(text[open + 1..text.len() - 1].trim()),
        (None, false) if !text.contains('>') => Some(text),
        _ => None,
    }
}

fn valid_local(local: &str) -> bool {
    const FORBIDDEN: &str = "\"(),:;<>@[\\]";
    !local.is_empty()
        && local.len() <= MAX_LOCAL
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !FORBIDDEN.contains(c))
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    !domain.is_empty()
        && domain.len() <= MAX_DOMAIN
        && labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> String {
        EmailAddress::parse(raw).unwrap().as_str().to_owned()
    }

    #[test]
    fn display_names_case_and_white_space_are_normalised_away() {
        assert_eq!(norm("  Jane.Doe@Example.COM "), "jane.doe@example.com");
        assert_eq!(
            norm("\"Doe, Jane\" <Jane.Doe@Example.com>"),
            "jane.doe@example.com"
        );
        assert_eq!(norm("Jane <  jane@example.com >"), "jane@example.com");
        assert_eq!(
            norm("<bounce+tag@sub.example.co.uk>"),
            "bounce+tag@sub.example.co.uk"
        );
    }

    #[test]
    fn international_domains_are_accepted_and_lower_cased() {
        assert_eq!(norm("user@BÜCHER.de"), "user@bücher.de");
        assert_eq!(
            EmailAddress::parse("a@B.example").unwrap().domain(),
            "b.example"
        );
    }

    #[test]
    fn each_kind_of_bad_address_is_named() {
        use AddressError::*;
        type Kind = fn(String) -> AddressError;
        let cases: [(&str, Kind); 9] = [
            ("Jane <jane@example.com", Brackets),
            ("jane@example.com>", Brackets),
            ("jane.example.com", MissingAt),
            ("@example.com", LocalPart),
            ("ja ne@example.com", LocalPart),
            ("jane..doe@example.com", LocalPart),
            ("jane@localhost", Domain),
            ("jane@-bad.example", Domain),
            ("jane@example..com", Domain),
        ];
        for (raw, kind) in cases {
            assert_eq!(EmailAddress::parse(raw), Err(kind(raw.to_owned())), "{raw}");
        }
        assert_eq!(EmailAddress::parse("   "), Err(Empty));
    }

    #[test]
    fn overlong_parts_are_rejected() {
        let local = "a".repeat(65);
        assert!(EmailAddress::parse(&format!("{local}@example.com")).is_err());
        let label = "b".repeat(64);
        assert!(EmailAddress::parse(&format!("a@{label}.com")).is_err());
    }
}
