//! Suppression imports and exports line by line: the accepted formats (plain addresses, CSV,
//! JSON lines), and an importer that writes in chunks and reports every invalid line.

use super::*;

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// Lines or entries read.
    pub read: u64,
    /// Addresses newly suppressed.
    pub added: u64,
    /// Addresses that were suppressed already (they keep their reason).
    pub already: u64,
    /// Lines that could not be used, with why (the first 100).
    pub invalid: Vec<InvalidLine>,
    /// How many lines could not be used in all.
    pub invalid_count: u64,
}

/// A line an import could not use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvalidLine {
    /// 1-based line number.
    pub line: u64,
    /// Why.
    pub error: String,
}

impl ImportReport {
    /// Notes a line that could not be used.
    pub fn invalid(&mut self, line: u64, error: impl Into<String>) {
        self.invalid_count += 1;
        if self.invalid.len() < 100 {
            self.invalid.push(InvalidLine {
                line,
                error: error.into(),
            });
        }
    }
}

/// The formats of suppression imports and exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LineFormat {
    /// `email,reason` per line (reason optional, default `manual`); a header line
    /// `email,...` is skipped.
    Csv,
    /// One JSON object per line: `{"email": "...", "reason": "..."}` (reason optional).
    #[default]
    Jsonl,
}

impl std::str::FromStr for LineFormat {
    type Err = AdminError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "csv" => Ok(LineFormat::Csv),
            "jsonl" | "ndjson" => Ok(LineFormat::Jsonl),
            other => Err(AdminError::Invalid(format!(
                "unknown format `{other}` (expected csv or jsonl)"
            ))),
        }
    }
}

/// An import line in JSON: other fields (those of an export) are ignored, so that an export
/// imports again.
#[derive(serde::Deserialize)]
pub(super) struct JsonLine {
    pub(super) email: String,
    #[serde(default)]
    pub(super) reason: Option<String>,
}

impl LineFormat {
    /// One import line: the suppression it asks for, `None` for a blank or header line, or why
    /// it cannot be used.
    pub fn parse(self, line: &str) -> Result<Option<ManualSuppression>, String> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(None);
        }
        let (email, reason) = match self {
            LineFormat::Csv => {
                let mut fields = line.split(',').map(|f| f.trim().trim_matches('"'));
                let email = fields.next().unwrap_or_default();
                if email.eq_ignore_ascii_case("email") {
                    return Ok(None);
                }
                (email.to_owned(), fields.next().map(str::to_owned))
            }
            LineFormat::Jsonl => {
                let parsed: JsonLine = serde_json::from_str(line).map_err(|e| e.to_string())?;
                (parsed.email, parsed.reason)
            }
        };
        let email = EmailAddress::parse(&email).map_err(|e| e.to_string())?;
        let reason = match reason.as_deref().filter(|r| !r.is_empty()) {
            None => Reason::Manual,
            Some(reason) => reason
                .parse()
                .map_err(|e: crate::domain::feedback::suppression::UnknownReason| e.to_string())?,
        };
        Ok(Some(ManualSuppression { email, reason }))
    }

    /// One export line (without its newline); CSV is `email,reason,count,first_seen,last_seen`.
    pub fn line(self, suppression: &Suppression) -> String {
        match self {
            LineFormat::Csv => format!(
                "{},{},{},{},{}",
                suppression.email,
                suppression.reason,
                suppression.count,
                suppression.first_seen,
                suppression.last_seen
            ),
            LineFormat::Jsonl => serde_json::to_string(suppression).unwrap_or_default(),
        }
    }

    /// The header line of an export, if the format has one.
    pub fn header(self) -> Option<&'static str> {
        match self {
            LineFormat::Csv => Some("email,reason,count,first_seen,last_seen"),
            LineFormat::Jsonl => None,
        }
    }
}

/// Addresses written per store call by imports (one SQLite transaction; 20 rounds of 25
/// concurrent updates on DynamoDB).
pub const IMPORT_CHUNK: usize = 500;

/// A streaming import: lines in, one chunk of writes per [`IMPORT_CHUNK`] addresses, so any
/// number of lines takes bounded memory.
pub struct Importer<'a, 'b> {
    pub(super) admin: &'b Admin<'a>,
    pub(super) format: LineFormat,
    pub(super) now: Timestamp,
    pub(super) chunk: Vec<ManualSuppression>,
    pub(super) lines: u64,
    pub(super) report: ImportReport,
}

impl<'a, 'b> Importer<'a, 'b> {
    /// Reads the next line; writes when a chunk is full.
    pub async fn line(&mut self, line: &str) -> Result<(), AdminError> {
        self.lines += 1;
        match self.format.parse(line) {
            Ok(None) => Ok(()),
            Ok(Some(entry)) => self.entry(entry).await,
            Err(why) => {
                self.report.read += 1;
                self.report.invalid(self.lines, why);
                Ok(())
            }
        }
    }

    /// Takes an entry that is already parsed (from SES's list); writes when a chunk is full.
    pub async fn entry(&mut self, entry: ManualSuppression) -> Result<(), AdminError> {
        self.report.read += 1;
        self.chunk.push(entry);
        if self.chunk.len() == IMPORT_CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    pub(super) async fn flush(&mut self) -> Result<(), AdminError> {
        let added = self
            .admin
            .deps
            .store
            .suppress(&self.chunk, self.now)
            .await? as u64;
        self.report.added += added;
        self.report.already += self.chunk.len() as u64 - added;
        self.chunk.clear();
        Ok(())
    }

    /// Writes what is left and records the import (from `source`) in the audit log.
    pub async fn finish(mut self, source: &str, reason: &str) -> Result<ImportReport, AdminError> {
        self.flush().await?;
        let report = self.report;
        let detail = serde_json::json!({
            "read": report.read, "added": report.added, "already": report.already,
            "invalid": report.invalid_count,
        });
        self.admin
            .audit("suppression.import", source, reason, detail, self.now)
            .await?;
        Ok(report)
    }
}
