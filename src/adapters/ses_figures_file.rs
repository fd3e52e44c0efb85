//! SES's reputation figures for local runs: a small JSON file standing in for CloudWatch's
//! `AWS/SES` metrics, `{"ACCOUNT": {"bounce_rate": 0.095, "complaint_rate": 0.0001, "at":
//! "2026-12-05T10:00:00Z"}}`, read afresh on every ask so that a demo or a test can rewrite
//! it between reviews. Not a cache and not a writer: nothing here changes the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::Deserialize;

use crate::domain::common::timestamp::Timestamp;
use crate::domain::reputation::ses_view::SesFigures;
use crate::ports::{SesError, SesReputation};

/// One account's entry in the file: a figure may be left out, nothing else may be added.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    bounce_rate: Option<f64>,
    #[serde(default)]
    complaint_rate: Option<f64>,
    at: Timestamp,
}

/// SES's figures from a local file (`[ses_metrics] file`); none when no file is configured.
#[derive(Debug, Clone, Default)]
pub struct SesFiguresFile {
    path: Option<PathBuf>,
}

impl SesFiguresFile {
    /// Figures from the file at `path` when it is given; an absent file gives none.
    pub fn new(path: Option<PathBuf>) -> Self {
        Self { path }
    }

    /// The file read, when it is configured.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

fn failed(account: &str, path: &Path, problem: String) -> SesError {
    SesError {
        account: account.to_owned(),
        action: "reading the SES figures file",
        source: format!("{}: {problem}", path.display()).into(),
        // The file may be rewritten: asking again can help.
        permanent: false,
    }
}

fn a_rate(value: Option<f64>) -> bool {
    value.is_none_or(|v| v.is_finite() && (0.0..=1.0).contains(&v))
}

#[async_trait]
impl SesReputation for SesFiguresFile {
    /// The account's entry as the file holds it now, `at` taken as given (the file is the
    /// whole of SES's view here: no lookback applies). `None` when no file is configured, the
    /// file does not exist, or the account is not in it. A file that is not JSON of this shape,
    /// or a rate outside 0..1, is an error naming the file and the problem.
    async fn reputation(
        &self,
        account: &str,
        _now: Timestamp,
    ) -> Result<Option<SesFigures>, SesError> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let text = match tokio::fs::read_to_string(path).await {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(failed(account, path, error.to_string())),
        };
        let mut entries: HashMap<String, Entry> = serde_json::from_str(&text).map_err(|e| {
            failed(
                account,
                path,
                format!("not a JSON object of accounts' figures: {e}"),
            )
        })?;
        let Some(entry) = entries.remove(account) else {
            return Ok(None);
        };
        if !a_rate(entry.bounce_rate) || !a_rate(entry.complaint_rate) {
            return Err(failed(
                account,
                path,
                format!("`{account}`: rates are fractions from 0 to 1 (0.05 is 5 %)"),
            ));
        }
        Ok(Some(SesFigures {
            bounce_rate: entry.bounce_rate,
            complaint_rate: entry.complaint_rate,
            at: entry.at,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::error_chain;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-12-05T10:05:00Z").unwrap()
    }

    fn file_with(text: &str) -> (tempfile::TempDir, SesFiguresFile) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ses-figures.json");
        std::fs::write(&path, text).unwrap();
        (dir, SesFiguresFile::new(Some(path)))
    }

    #[tokio::test]
    async fn an_accounts_figures_are_read_as_the_file_holds_them_now() {
        let (dir, figures) = file_with(
            r#"{"backup": {"bounce_rate": 0.095, "complaint_rate": 0.0001, "at": "2026-12-05T10:00:00Z"},
                "primary": {"complaint_rate": 0.002, "at": "2026-12-05T09:00:00.500Z"}}"#,
        );
        let backup = figures.reputation("backup", now()).await.unwrap();
        assert_eq!(
            backup,
            Some(SesFigures {
                bounce_rate: Some(0.095),
                complaint_rate: Some(0.0001),
                at: Timestamp::parse_rfc3339("2026-12-05T10:00:00Z").unwrap(),
            })
        );
        let primary = figures.reputation("primary", now()).await.unwrap().unwrap();
        assert_eq!(
            (primary.bounce_rate, primary.complaint_rate),
            (None, Some(0.002))
        );

        // Rewritten between two asks: the second sees the new figure.
        std::fs::write(
            dir.path().join("ses-figures.json"),
            r#"{"backup": {"bounce_rate": 0.02, "at": "2026-12-05T10:04:00Z"}}"#,
        )
        .unwrap();
        let again = figures.reputation("backup", now()).await.unwrap().unwrap();
        assert_eq!(again.bounce_rate, Some(0.02));
    }

    #[tokio::test]
    async fn no_file_an_absent_file_or_an_account_not_in_it_gives_no_figures() {
        let unconfigured = SesFiguresFile::new(None);
        assert_eq!(
            unconfigured.reputation("primary", now()).await.unwrap(),
            None
        );

        let dir = tempfile::tempdir().unwrap();
        let absent = SesFiguresFile::new(Some(dir.path().join("nothing-here.json")));
        assert_eq!(absent.reputation("primary", now()).await.unwrap(), None);

        let (_dir, figures) =
            file_with(r#"{"backup": {"bounce_rate": 0.01, "at": "2026-12-05T10:00:00Z"}}"#);
        assert_eq!(figures.reputation("primary", now()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_malformed_file_is_an_error_naming_the_file_and_the_problem() {
        for (text, problem) in [
            ("{not json", "not a JSON object of accounts' figures"),
            (
                r#"{"backup": {"bounce": 0.1, "at": "2026-12-05T10:00:00Z"}}"#,
                "unknown field `bounce`",
            ),
            (r#"{"backup": {"bounce_rate": 0.1}}"#, "missing field `at`"),
            (
                r#"{"backup": {"bounce_rate": 0.1, "at": "yesterday"}}"#,
                "`yesterday` is not an RFC 3339 timestamp",
            ),
            (
                r#"{"backup": {"bounce_rate": 9.5, "at": "2026-12-05T10:00:00Z"}}"#,
                "`backup`: rates are fractions from 0 to 1",
            ),
        ] {
            let (_dir, figures) = file_with(text);
            let error = figures.reputation("backup", now()).await.unwrap_err();
            let chain = error_chain(&error);
            let path = figures.path().unwrap().display().to_string();
            assert!(chain.contains(&path), "{chain}");
            assert!(chain.contains(problem), "{text}: {chain}");
            assert!(
                !error.permanent,
                "the file may be fixed: asking again can help"
            );
        }
    }
}
