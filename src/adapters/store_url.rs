//! The `--store` / `SESGUARD_STORE` address that names a store adapter: `sqlite:PATH` or
//! `dynamodb`. Parsing only; [`crate::wiring`] opens it.

use std::path::PathBuf;
use std::str::FromStr;

/// Where the store lives: `sqlite:PATH` or `dynamodb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// DynamoDB, with the table names from the configuration and the endpoint from the AWS
    /// SDK's usual settings (`AWS_ENDPOINT_URL` for a local server).
    Dynamodb,
}

/// The default store: an SQLite file under `.sesguard/` in the working directory.
pub const DEFAULT_STORE: &str = "sqlite:.sesguard/sesguard.db";

/// A store address that is neither form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("store `{0}` is not `sqlite:PATH` or `dynamodb`")]
pub struct BadStoreUrl(pub String);

impl FromStr for StoreUrl {
    type Err = BadStoreUrl;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some(("sqlite", path)) if !path.is_empty() => Ok(StoreUrl::Sqlite(PathBuf::from(path))),
            None if text == "dynamodb" => Ok(StoreUrl::Dynamodb),
            _ => Err(BadStoreUrl(text.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_sqlite_files_or_dynamodb() {
        assert_eq!(
            "sqlite:/tmp/x.db".parse(),
            Ok(StoreUrl::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!("dynamodb".parse(), Ok(StoreUrl::Dynamodb));
        for bad in ["sqlite:", "postgres://x", "dynamo", ""] {
            assert_eq!(
                bad.parse::<StoreUrl>(),
                Err(BadStoreUrl(bad.into())),
                "{bad}"
            );
        }
    }
}
