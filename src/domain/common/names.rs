//! The names operators give accounts and streams, parsed once where they come in (the
//! configuration, a send request, an operator's command) so that a bad name is refused there
//! with its rule, and what carries one past that point cannot hold anything else.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

/// A name that breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// An account name.
    #[error("account name `{0}` must be lower-case letters, digits, `-` or `_`")]
    Account(String),
    /// A stream name.
    #[error("stream name `{0}` must be non-empty, without spaces or `:`")]
    Stream(String),
}

/// sesguard's name for an SES account (`primary`, `backup-eu`): lower-case letters, digits,
/// `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountName(String);

/// A stream of mail (`verification`, `transactional`, `bulk`): non-empty, without white space
/// or `:` (the separator of the store's keys).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamName(String);

impl AccountName {
    /// `text` as an account name, or why it is not one.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let valid = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(NameError::Account(text.to_owned()))
        }
    }
}

impl StreamName {
    /// `text` as a stream name, or why it is not one.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c == ':') {
            Err(NameError::Stream(text.to_owned()))
        } else {
            Ok(Self(text.to_owned()))
        }
    }
}

/// What both names share: read as text, compared with text, shown as written.
macro_rules! name_traits {
    ($name:ident) => {
        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;

            fn try_from(text: String) -> Result<Self, NameError> {
                Self::parse(&text)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;

            fn from_str(text: &str) -> Result<Self, NameError> {
                Self::parse(text)
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }
    };
}

name_traits!(AccountName);
name_traits!(StreamName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_name_is_lower_case_letters_digits_dashes_and_underscores() {
        assert_eq!(AccountName::parse("backup-eu_2").unwrap(), "backup-eu_2");
        for bad in ["", "Primary", "main account", "a:b", "café"] {
            assert_eq!(
                AccountName::parse(bad),
                Err(NameError::Account(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_stream_name_has_no_spaces_or_colons() {
        assert_eq!(StreamName::parse("Sign-Up.EU").unwrap(), "Sign-Up.EU");
        for bad in ["", "sign up", "a:b", "tab\there"] {
            assert!(StreamName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_read_and_write_as_plain_json_strings_and_refuse_bad_ones() {
        let name: AccountName = serde_json::from_str("\"primary\"").unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"primary\"");
        let refused = serde_json::from_str::<AccountName>("\"Primary\"").unwrap_err();
        assert!(refused.to_string().contains("lower-case"), "{refused}");
        assert!(serde_json::from_str::<StreamName>("\"a b\"").is_err());
    }
}
