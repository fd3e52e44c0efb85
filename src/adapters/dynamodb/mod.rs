//! The DynamoDB store. Two tables, names from the configuration, both on-demand with the TTL
//! attribute `expires_at` (epoch seconds):
//!
//! - suppressions — key `email` (S): one item per address; suppressed items carry `reason`
//!   and never expire; soft-bounce trackers expire a window after their last bounce. The
//!   sparse index `by-reason` (`reason` + `email`) holds the suppressed ones alone.
//! - state — key `pk` (S) + `sk` (S): de-duplication claims (`claim#KEY` / `claim`), send
//!   records (`send#KEY` / `send`, with `owner`, `state`, `claimed_at`), counter
//!   buckets in shards (`account#NAME` / `bucket#MILLIS#SHARD`, per-stream counters as
//!   `s:STREAM:COUNTER` attributes of the same item; readers add a bucket's shards up), the account's guard state (`account#NAME` /
//!   `bucket~state`, sorting after the buckets so one query reads both), its history
//!   (`account#NAME` / `history#MILLIS#VERSION`), unconfigured accounts
//!   (`unconfigured-accounts` / NAME), the template policy (`policy` / `templates`), and the
//!   send-rate limiter: operators' limits and window counts (`account#NAME` / `rate`), the
//!   paced bucket's parts (`rate#NAME` / `part#PART`), prevention's domain answers
//!   (`domain#DOMAIN` / `domain`) and daily counts (`prevented#DAY` / `prevented`).
//!
//! A batch's [`ChangeSet`] is one `TransactWriteItems`: claims conditional on no live claim,
//! address updates (conditional on the version read when they carry a soft-bounce state),
//! counter `ADD`s. TTL deletes lazily, so every read filters expired items itself.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::builders::KeysAndAttributesBuilder;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, KeySchemaElement, KeyType,
    KeysAndAttributes, Put, ReturnValue, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem, Update, WriteRequest,
};
use sha2::Digest as _;

use crate::config::TablesConfig;
use crate::domain::common::address::EmailAddress;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::plan::{ChangeSet, Claim};
use crate::domain::feedback::suppression::{AddressState, Reason, Suppression, SuppressionUpdate};
use crate::domain::reputation::counters::{Bucket, CounterDelta, Counts, ProviderCounts};
use crate::domain::reputation::history::HistoryEntry;
use crate::domain::reputation::state::AccountState;
use crate::domain::sending::rate_limit::{Grant, LimitsPatch, RateLimits, RateState};
use crate::domain::sending::send_record::{SendKey, SendRecord, SendState};
use crate::domain::sending::template_policy::TemplatePolicy;
use crate::ports::{
    AccountWindow, ApplyError, AuditEntry, AuditLog, CounterWindow, FeedbackLedger, GateRead,
    GateView, GuardLedger, ManualSuppression, MessageLedger, Page, PolicyStore, RateLedger,
    RateRecord, SendClaim, SendLedger, StoreError, SuppressionAdmin, SuppressionList,
};

mod audit;
mod changes;
mod codec;
mod domains;
mod gate;
mod guard_state;
mod jobs;
mod messages;
mod rate_bucket;
mod schema;
mod sends;
mod suppressions;
mod templates;
mod window;
use codec::*;

/// DynamoDB's limit on actions in one `TransactWriteItems`.
pub const MAX_TRANSACTION_ITEMS: usize = 100;
/// DynamoDB's limit on keys in one `BatchGetItem`.
const MAX_BATCH_GET: usize = 100;
/// DynamoDB's limit on requests in one `BatchWriteItem`.
const MAX_BATCH_WRITE: usize = 25;

/// Sets a table's consistency and projection in a `BatchGetItem`.
type Configure = fn(KeysAndAttributesBuilder) -> KeysAndAttributesBuilder;

fn consistent(k: KeysAndAttributesBuilder) -> KeysAndAttributesBuilder {
    k.consistent_read(true)
}

fn suppression_reason(k: KeysAndAttributesBuilder) -> KeysAndAttributesBuilder {
    k.projection_expression("email, #reason")
        .expression_attribute_names("#reason", "reason")
}
/// The suppressions table's sparse index of suppressed addresses by reason.
pub const BY_REASON_INDEX: &str = "by-reason";
/// TTL attribute on both tables.
pub const TTL_ATTRIBUTE: &str = "expires_at";
const UNCONFIGURED: &str = "unconfigured-accounts";
/// Sort key of an account's state item: after every `bucket#...` key, so the window query
/// returns the state with the buckets.
const STATE_SORT_KEY: &str = "bucket~state";
const RATE_SORT_KEY: &str = "rate";
const POLICY_KEY: &str = "policy";
const POLICY_SORT_KEY: &str = "templates";

/// The two table names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// The suppression list.
    pub suppressions: String,
    /// Claims, counters and account state.
    pub state: String,
}

impl From<&TablesConfig> for Tables {
    fn from(config: &TablesConfig) -> Self {
        Self {
            suppressions: config.suppressions.clone(),
            state: config.state.clone(),
        }
    }
}

/// Items each counter bucket may be written across. A bucket takes every counter write of
/// its account in its quarter hour — ingest's and the senders' — in transactions, and in
/// DynamoDB two transactions on one item at once cancel each other: an instance keeps to one
/// shard and moves to another at random when its transaction meets another there, so that
/// the instances writing at once (ingest's 20 at most) settle on shards of their own, nearly.
/// Only shards written exist, so a window query reads about as many items per bucket as
/// instances wrote in it, at most this many (docs/scale.md).
pub const COUNTER_SHARDS: u16 = 16;

/// A DynamoDB-backed store.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
    shards: Shards,
    parts_seen: rate_bucket::PartsSeen,
}

/// Picks the shard of each counter write — the instance's own until its transaction meets
/// another's there ([`Shards::hop`]) — and the part of each send-rate take, round robin from a
/// random start, so that instances do not move in step.
#[derive(Debug, Clone)]
struct Shards {
    count: u16,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
    own: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// A number good enough to spread writers apart (not for secrets): the standard library's
/// per-process random hasher over the time.
fn random() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

impl Shards {
    fn new(count: u16) -> Self {
        Self {
            count: count.max(1),
            next: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(random())),
            own: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(random())),
        }
    }

    /// The counter shard this instance writes.
    fn pick(&self) -> u16 {
        let own = self.own.load(std::sync::atomic::Ordering::Relaxed);
        (own % u64::from(self.count)) as u16
    }

    /// Moves to another counter shard, at random: this one met another instance's transaction.
    fn hop(&self) {
        let from = self.pick();
        let step = 1 + random() % u64::from(self.count.max(2) - 1);
        let to = (u64::from(from) + step) % u64::from(self.count);
        self.own.store(to, std::sync::atomic::Ordering::Relaxed);
    }

    /// The next of `count` (the send-rate bucket's parts take their turn from here too).
    fn pick_of(&self, count: u16) -> u16 {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (n % u64::from(count.max(1))) as u16
    }
}

impl DynamoStore {
    /// A store over these tables with this client (built once at init), writing counter
    /// buckets across [`COUNTER_SHARDS`] items.
    pub fn new(client: Client, tables: Tables) -> Self {
        Self {
            client,
            tables,
            shards: Shards::new(COUNTER_SHARDS),
            parts_seen: Default::default(),
        }
    }

    /// The tables it uses.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// The same store writing each counter bucket across `shards` items (at least one).
    /// Readers add up whatever shards exist, so the number may change at any time.
    pub fn with_counter_shards(mut self, shards: u16) -> Self {
        self.shards = Shards::new(shards);
        self
    }

    /// Writes up to 25 requests to the state table in one `BatchWriteItem`, retrying
    /// unprocessed ones with backoff (at most 8 times).
    async fn batch_write(
        &self,
        mut requests: Vec<WriteRequest>,
        action: &str,
    ) -> Result<(), StoreError> {
        let mut attempt = 0;
        while !requests.is_empty() {
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.tables.state, std::mem::take(&mut requests))
                .send()
                .await
                .map_err(|e| failure(action, e))?;
            requests = output
                .unprocessed_items
                .and_then(|mut items| items.remove(&self.tables.state))
                .unwrap_or_default();
            if !requests.is_empty() {
                attempt += 1;
                if attempt > 8 {
                    return Err(StoreError::Unavailable {
                        action: action.into(),
                        source: "unprocessed writes after 8 retries".into(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
            }
        }
        Ok(())
    }

    /// Puts or deletes items of the state table, 25 to a `BatchWriteItem`.
    async fn write_records(
        &self,
        requests: impl Iterator<Item = Result<WriteRequest, StoreError>>,
        action: &str,
    ) -> Result<(), StoreError> {
        let requests = requests.collect::<Result<Vec<_>, _>>()?;
        for chunk in requests.chunks(MAX_BATCH_WRITE) {
            self.batch_write(chunk.to_vec(), action).await?;
        }
        Ok(())
    }

    /// Deletes these items of the state table, 25 to a `BatchWriteItem`.
    async fn delete_all(
        &self,
        keys: impl IntoIterator<Item = Item>,
        action: &str,
    ) -> Result<(), StoreError> {
        // Gathered first: the callers' key iterators need not live across the writes.
        let keys: Vec<Item> = keys.into_iter().collect();
        let deletes = keys.into_iter().map(|key| {
            let delete = DeleteRequest::builder()
                .set_key(Some(key))
                .build()
                .map_err(|e| build_error(action, e))?;
            Ok(WriteRequest::builder().delete_request(delete).build())
        });
        self.write_records(deletes, action).await
    }

    /// Reads items by key from one table: [`Self::batch_get_tables`] with one table.
    async fn batch_get(
        &self,
        table: &str,
        keys: Vec<Item>,
        configure: Configure,
        action: &str,
    ) -> Result<Vec<Item>, StoreError> {
        let mut found = self
            .batch_get_tables(vec![(table, keys, configure)], action)
            .await?;
        Ok(found.remove(table).unwrap_or_default())
    }

    /// Reads items by key from several tables together, 100 keys per `BatchGetItem` (so one
    /// request for up to 100 keys in all), retrying unprocessed keys with backoff.
    /// `configure` sets each table's consistency and projection. Items come back by table.
    async fn batch_get_tables(
        &self,
        wanted: Vec<(&str, Vec<Item>, Configure)>,
        action: &str,
    ) -> Result<HashMap<String, Vec<Item>>, StoreError> {
        let configures: HashMap<&str, Configure> =
            wanted.iter().map(|(table, _, c)| (*table, *c)).collect();
        let keys: Vec<(&str, Item)> = wanted
            .into_iter()
            .flat_map(|(table, keys, _)| keys.into_iter().map(move |key| (table, key)))
            .collect();
        let mut found: HashMap<String, Vec<Item>> = HashMap::new();
        for chunk in keys.chunks(MAX_BATCH_GET) {
            let mut by_table: HashMap<&str, Vec<Item>> = HashMap::new();
            for (table, key) in chunk {
                by_table.entry(table).or_default().push(key.clone());
            }
            let mut request = HashMap::new();
            for (table, keys) in by_table {
                let keys_and_attributes = configures[table](KeysAndAttributes::builder())
                    .set_keys(Some(keys))
                    .build()
                    .map_err(|e| build_error(action, e))?;
                request.insert(table.to_owned(), keys_and_attributes);
            }
            let mut attempt = 0;
            while !request.is_empty() {
                let output = self
                    .client
                    .batch_get_item()
                    .set_request_items(Some(std::mem::take(&mut request)))
                    .send()
                    .await
                    .map_err(|e| failure(action, e))?;
                for (table, items) in output.responses.unwrap_or_default() {
                    found.entry(table).or_default().extend(items);
                }
                request = output.unprocessed_keys.unwrap_or_default();
                request.retain(|_, keys| !keys.keys().is_empty());
                if !request.is_empty() {
                    attempt += 1;
                    if attempt > 8 {
                        return Err(StoreError::Unavailable {
                            action: action.into(),
                            source: "unprocessed keys after 8 retries".into(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::Shards;

    #[test]
    fn an_instance_keeps_its_counter_shard_until_it_hops_to_another() {
        let shards = Shards::new(32);
        let first = shards.pick();
        assert!((0..10).all(|_| shards.pick() == first), "kept");
        for _ in 0..100 {
            let before = shards.pick();
            shards.hop();
            let after = shards.pick();
            assert!(after != before && after < 32, "{before} -> {after}");
        }
        let one = Shards::new(1);
        one.hop();
        assert_eq!(one.pick(), 0, "one shard: nowhere to go");
    }
}
