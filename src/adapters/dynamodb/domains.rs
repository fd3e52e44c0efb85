//! Prevention's items in the state table: a domain's mail answer (`domain#DOMAIN` / `domain`,
//! gone with its TTL) and a day's prevented counts (`prevented#DAY` / `prevented`, one number
//! attribute per stream, reason and action, added to with `ADD`).

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::PutRequest;

use super::*;
use crate::domain::sending::prevention::{MailDomain, Undeliverable};
use crate::ports::{AnswerSource, DomainLedger, DomainRecord, PreventAction, PreventedKey};

const DOMAIN_SORT_KEY: &str = "domain";
const PREVENTED_SORT_KEY: &str = "prevented";
/// Counts are kept for a week.
const PREVENTED_DAYS: i64 = 7;

pub(super) fn domain_key(domain: &str) -> Item {
    state_key(format!("domain#{domain}"), DOMAIN_SORT_KEY)
}

fn corrupt_domain(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "domain record",
        detail: detail.to_string(),
    }
}

pub(super) fn parse_domain(item: &Item) -> Result<DomainRecord, StoreError> {
    let pk = text(item, "pk").unwrap_or_default();
    let domain = pk
        .strip_prefix("domain#")
        .ok_or_else(|| corrupt_domain(format!("key `{pk}`")))?;
    let answer = text(item, "answer")
        .and_then(|a| MailDomain::parse(&a))
        .ok_or_else(|| corrupt_domain(format!("{domain}: no readable `answer`")))?;
    let expires = number::<i64>(item, "expires_ms", "domain record")?
        .ok_or_else(|| corrupt_domain(format!("{domain}: no `expires_ms`")))?;
    Ok(DomainRecord {
        domain: domain.to_owned(),
        answer,
        source: AnswerSource::parse(&text(item, "source").unwrap_or_default()),
        expires_at: Timestamp::from_millis(expires),
    })
}

/// The attribute of one count: `stream|reason|action` (a stream name holds no `|`).
fn count_attribute(key: &PreventedKey) -> String {
    format!("{}|{}|{}", key.stream, key.reason.name(), key.action.name())
}

fn parse_count_attribute(name: &str) -> Option<PreventedKey> {
    let mut parts = name.split('|');
    let (stream, reason, action) = (parts.next()?, parts.next()?, parts.next()?);
    Some(PreventedKey {
        stream: stream.to_owned(),
        reason: Undeliverable::parse(reason)?,
        action: PreventAction::parse(action)?,
    })
}

#[async_trait]
impl DomainLedger for DynamoStore {
    async fn domains(
        &self,
        domains: &[String],
        now: Timestamp,
    ) -> Result<Vec<DomainRecord>, StoreError> {
        if domains.is_empty() {
            return Ok(Vec::new());
        }
        let keys = domains.iter().map(|d| domain_key(d)).collect();
        let items = self
            .batch_get(&self.tables.state, keys, |k| k, "reading domain answers")
            .await?;
        let records = items
            .iter()
            .map(parse_domain)
            .collect::<Result<Vec<_>, _>>()?;
        // DynamoDB deletes expired items within days, not at once.
        Ok(records.into_iter().filter(|r| r.expires_at > now).collect())
    }

    async fn put_domains(&self, records: &[DomainRecord]) -> Result<(), StoreError> {
        let action = "keeping domain answers";
        let puts = records.iter().map(|record| {
            let mut item = domain_key(&record.domain);
            item.insert("answer".into(), s(record.answer.name()));
            item.insert("source".into(), s(record.source.name()));
            item.insert("expires_ms".into(), n(record.expires_at.as_millis()));
            item.insert(
                TTL_ATTRIBUTE.into(),
                n(record.expires_at.as_epoch_seconds() + 1),
            );
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| build_error(action, e))?;
            Ok(WriteRequest::builder().put_request(put).build())
        });
        self.write_records(puts, action).await
    }

    async fn count_prevented(
        &self,
        day: &str,
        counts: &BTreeMap<PreventedKey, u64>,
    ) -> Result<(), StoreError> {
        if counts.is_empty() {
            return Ok(());
        }
        let expires = Timestamp::parse_rfc3339(&format!("{day}T00:00:00Z"))
            .map_err(|e| corrupt_domain(format!("day `{day}`: {e}")))?
            .plus(Duration::from_secs(PREVENTED_DAYS as u64 * 86_400));
        let mut x = Expression::default();
        for (key, count) in counts {
            x.add(&count_attribute(key), n(count));
        }
        x.set(TTL_ATTRIBUTE, n(expires.as_epoch_seconds()));
        self.client
            .update_item()
            .table_name(&self.tables.state)
            .set_key(Some(state_key(
                format!("prevented#{day}"),
                PREVENTED_SORT_KEY,
            )))
            .update_expression(x.update_expression())
            .set_expression_attribute_names(Some(x.names))
            .set_expression_attribute_values(Some(x.values))
            .send()
            .await
            .map_err(|e| failure("counting prevented recipients", e))?;
        Ok(())
    }

    async fn prevented(&self, day: &str) -> Result<BTreeMap<PreventedKey, u64>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.state)
            .set_key(Some(state_key(
                format!("prevented#{day}"),
                PREVENTED_SORT_KEY,
            )))
            .send()
            .await
            .map_err(|e| failure("reading prevented counts", e))?;
        let Some(item) = output.item else {
            return Ok(BTreeMap::new());
        };
        let mut counts = BTreeMap::new();
        for name in item.keys() {
            if let Some(key) = parse_count_attribute(name) {
                counts.insert(key, number(&item, name, "prevented counts")?.unwrap_or(0));
            }
        }
        Ok(counts)
    }
}
