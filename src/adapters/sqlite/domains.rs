//! Prevention's rows: a domain's mail answer until it expires, and a day's prevented counts
//! per stream, reason and action.

use std::collections::BTreeMap;

use super::*;
use crate::domain::sending::prevention::{MailDomain, Undeliverable};
use crate::ports::{AnswerSource, DomainLedger, DomainRecord, PreventAction, PreventedKey};

fn corrupt(detail: String) -> StoreError {
    StoreError::Corrupt {
        what: "prevention row",
        detail,
    }
}

/// The rows of `domains`, expired ones too.
pub(super) fn read_domains(
    connection: &Connection,
    domains: Vec<String>,
) -> Result<Vec<DomainRecord>, StoreError> {
    let mut select = connection
        .prepare_cached("SELECT answer, source, expires_at FROM domains WHERE domain = ?1")
        .map_err(unavailable("reading domain answers"))?;
    let mut found = Vec::new();
    for domain in domains {
        let row: Option<(String, String, i64)> = select
            .query_row([&domain], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .optional()
            .map_err(unavailable("reading domain answers"))?;
        if let Some((answer, source, expires_at)) = row {
            found.push(DomainRecord {
                answer: MailDomain::parse(&answer)
                    .ok_or_else(|| corrupt(format!("{domain}: answer `{answer}`")))?,
                domain,
                source: AnswerSource::parse(&source),
                expires_at: Timestamp::from_millis(expires_at),
            });
        }
    }
    Ok(found)
}

#[async_trait]
impl DomainLedger for SqliteStore {
    async fn domains(
        &self,
        domains: &[String],
        now: Timestamp,
    ) -> Result<Vec<DomainRecord>, StoreError> {
        let domains = domains.to_vec();
        let mut records = self
            .run(move |connection| read_domains(connection, domains))
            .await?;
        records.retain(|r| r.expires_at > now);
        Ok(records)
    }

    async fn put_domains(&self, records: &[DomainRecord]) -> Result<(), StoreError> {
        let records = records.to_vec();
        self.run(move |connection| {
            let transaction = connection
                .transaction()
                .map_err(unavailable("keeping domain answers"))?;
            for record in &records {
                transaction
                    .execute(
                        "INSERT INTO domains (domain, answer, source, expires_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (domain) DO UPDATE SET answer = excluded.answer,
                             source = excluded.source, expires_at = excluded.expires_at",
                        params![
                            record.domain,
                            record.answer.name(),
                            record.source.name(),
                            record.expires_at.as_millis()
                        ],
                    )
                    .map_err(unavailable("keeping domain answers"))?;
            }
            transaction
                .commit()
                .map_err(unavailable("keeping domain answers"))
        })
        .await
    }

    async fn count_prevented(
        &self,
        day: &str,
        counts: &BTreeMap<PreventedKey, u64>,
    ) -> Result<(), StoreError> {
        let (day, counts) = (day.to_owned(), counts.clone());
        self.run(move |connection| {
            let transaction = connection
                .transaction()
                .map_err(unavailable("counting prevented recipients"))?;
            for (key, count) in &counts {
                transaction
                    .execute(
                        "INSERT INTO prevented (day, stream, reason, action, count) VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (day, stream, reason, action) DO UPDATE SET count = count + excluded.count",
                        params![day, key.stream, key.reason.name(), key.action.name(), *count as i64],
                    )
                    .map_err(unavailable("counting prevented recipients"))?;
            }
            transaction
                .commit()
                .map_err(unavailable("counting prevented recipients"))
        })
        .await
    }

    async fn prevented(&self, day: &str) -> Result<BTreeMap<PreventedKey, u64>, StoreError> {
        let day = day.to_owned();
        self.run(move |connection| {
            let mut select = connection
                .prepare_cached(
                    "SELECT stream, reason, action, count FROM prevented WHERE day = ?1",
                )
                .map_err(unavailable("reading prevented counts"))?;
            let rows = select
                .query_map([&day], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                    ))
                })
                .map_err(unavailable("reading prevented counts"))?;
            let mut counts = BTreeMap::new();
            for row in rows {
                let (stream, reason, action, count) =
                    row.map_err(unavailable("reading prevented counts"))?;
                let key = PreventedKey {
                    reason: Undeliverable::parse(&reason)
                        .ok_or_else(|| corrupt(format!("reason `{reason}`")))?,
                    action: PreventAction::parse(&action)
                        .ok_or_else(|| corrupt(format!("action `{action}`")))?,
                    stream,
                };
                counts.insert(key, count as u64);
            }
            Ok(counts)
        })
        .await
    }
}
