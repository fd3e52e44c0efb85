//! The DynamoDB store. Two tables, names from the configuration, both on-demand with the TTL
//! attribute `expires_at` (epoch seconds):
//!
//! - suppressions — key `email` (S): one item per address; suppressed items carry `reason`
//!   and never expire; soft-bounce trackers expire a window after their last bounce.
//! - state — key `pk` (S) + `sk` (S): de-duplication claims (`claim#KEY` / `claim`), counter
//!   buckets (`account#NAME` / `bucket#MILLIS`, per-stream counters as `s:STREAM:COUNTER`
//!   attributes of the same item), the account's guard state (`account#NAME` /
//!   `bucket~state`, sorting after the buckets so one query reads both), its history
//!   (`account#NAME` / `history#MILLIS#VERSION`), unconfigured accounts
//!   (`unconfigured-accounts` / NAME), the template policy (`policy` / `templates`), and the
//!   send-rate limiter's state (`account#NAME` / `rate`).
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

use crate::domain::common::address::EmailAddress;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::plan::{ChangeSet, Claim};
use crate::domain::feedback::suppression::{AddressState, Reason, Suppression, SuppressionUpdate};
use crate::domain::reputation::counters::{Bucket, CounterDelta, Counts};
use crate::domain::reputation::guard::{AccountState, HistoryEntry};
use crate::domain::sending::rate_limit::{Grant, LimitsPatch, RateLimits, RateState};
use crate::domain::sending::template_policy::TemplatePolicy;
use crate::ports::{
    AccountWindow, ApplyError, AuditEntry, AuditLog, CounterWindow, FeedbackLedger, GateRead,
    GateView, GuardLedger, ManualSuppression, MessageLedger, Page, PolicyStore, RateLedger,
    RateRecord, StoreError, SuppressionAdmin, SuppressionList,
};

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

/// A DynamoDB-backed store.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

type Item = HashMap<String, AttributeValue>;

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn number<T: std::str::FromStr>(
    item: &Item,
    name: &str,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(value)) => {
            value.parse().map(Some).map_err(|_| StoreError::Corrupt {
                what,
                detail: format!("`{name}` is `{value}`"),
            })
        }
        Some(other) => Err(StoreError::Corrupt {
            what,
            detail: format!("`{name}` is not a number: {other:?}"),
        }),
    }
}

/// Maps an SDK failure: invalid requests are rejected, everything else is retryable.
fn failure<E, R>(action: &str, error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let rejected = matches!(
        error.code(),
        Some("ValidationException" | "ResourceNotFoundException" | "AccessDeniedException")
    );
    let action = action.to_owned();
    let source = Box::new(error);
    if rejected {
        StoreError::Rejected { action, source }
    } else {
        StoreError::Unavailable { action, source }
    }
}

fn build_error(action: &str, error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Rejected {
        action: action.to_owned(),
        source: Box::new(error),
    }
}

/// Collects the clauses and placeholders of one update expression. Every attribute name
/// goes through a placeholder: `count`, `status` and many others are reserved words.
#[derive(Default)]
struct Expression {
    set: Vec<String>,
    add: Vec<String>,
    remove: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expression {
    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn set(&mut self, attribute: &str, value: AttributeValue) {
        let (name, value) = (self.name(attribute), self.value(value));
        self.set.push(format!("{name} = {value}"));
    }

    fn set_if_absent(&mut self, attribute: &str, value: AttributeValue) {
        let (name, value) = (self.name(attribute), self.value(value));
        self.set
            .push(format!("{name} = if_not_exists({name}, {value})"));
    }

    fn set_or_remove(&mut self, attribute: &str, value: Option<&String>) {
        match value {
            Some(value) => self.set(attribute, s(value)),
            None => self.remove(attribute),
        }
    }

    fn add(&mut self, attribute: &str, value: AttributeValue) {
        let (name, value) = (self.name(attribute), self.value(value));
        self.add.push(format!("{name} {value}"));
    }

    fn remove(&mut self, attribute: &str) {
        let name = self.name(attribute);
        self.remove.push(name);
    }

    fn update_expression(&self) -> String {
        [
            ("SET", &self.set),
            ("ADD", &self.add),
            ("REMOVE", &self.remove),
        ]
        .iter()
        .filter(|(_, clauses)| !clauses.is_empty())
        .map(|(keyword, clauses)| format!("{keyword} {}", clauses.join(", ")))
        .collect::<Vec<_>>()
        .join(" ")
    }
}

fn bucket_sort_key(start: Timestamp) -> String {
    format!("bucket#{:015}", start.as_millis().max(0))
}

fn account_key(account: &str) -> String {
    format!("account#{account}")
}

fn stream_attribute(stream: &str, counter: &str) -> String {
    format!("s:{stream}:{counter}")
}

impl DynamoStore {
    /// A store over these tables with this client (built once at init).
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
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

    /// Creates both tables (on-demand, TTL on `expires_at`) if they do not exist: for local
    /// servers and tests. In AWS the SAM template creates them.
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| build_error("defining a table", e))
        };
        let key = |name: &str, key_type| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(key_type)
                .build()
                .map_err(|e| build_error("defining a table", e))
        };
        let definitions = [
            (&self.tables.suppressions, vec![("email", KeyType::Hash)]),
            (
                &self.tables.state,
                vec![("pk", KeyType::Hash), ("sk", KeyType::Range)],
            ),
        ];
        for (table, keys) in definitions {
            let mut request = self
                .client
                .create_table()
                .table_name(table)
                .billing_mode(BillingMode::PayPerRequest);
            for (name, key_type) in keys {
                request = request
                    .attribute_definitions(attribute(name)?)
                    .key_schema(key(name, key_type)?);
            }
            match request.send().await {
                Ok(_) => {}
                Err(e) if e.code() == Some("ResourceInUseException") => continue,
                Err(e) => return Err(failure(&format!("creating table {table}"), e)),
            }
            let ttl = TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(|e| build_error("enabling TTL", e))?;
            self.client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(ttl)
                .send()
                .await
                .map_err(|e| failure(&format!("enabling TTL on {table}"), e))?;
        }
        Ok(())
    }

    fn claim_put(&self, claim: &Claim, now: Timestamp) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.tables.state)
            .item("pk", s(format!("claim#{}", claim.key)))
            .item("sk", s("claim"))
            .item(TTL_ATTRIBUTE, n(claim.expires_at.as_epoch_seconds()))
            .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now.as_epoch_seconds()))
            .build()
            .map_err(|e| build_error("building a claim", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn suppression_update(
        &self,
        update: &SuppressionUpdate,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut x = Expression::default();
        x.add("version", n(1));
        if let Some(reason) = update.suppress {
            x.set_if_absent("reason", s(reason.as_str()));
            x.remove(TTL_ATTRIBUTE);
        }
        if let Some(feedback) = &update.feedback {
            x.add("count", n(feedback.events));
            x.set_if_absent("first_seen", n(feedback.first_seen.as_millis()));
            x.set("last_seen", n(feedback.last_seen.as_millis()));
            x.set("message_id", s(&feedback.message_id));
            x.set_or_remove("feedback_id", feedback.feedback_id.as_ref());
            if let Some(bounce) = &feedback.bounce {
                x.set("bounce_type", s(&bounce.bounce_type));
                x.set("bounce_subtype", s(&bounce.bounce_subtype));
                x.set_or_remove("status", bounce.status.as_ref());
                x.set_or_remove("diagnostic_code", bounce.diagnostic_code.as_ref());
            }
            if let Some(feedback_type) = &feedback.complaint_feedback_type {
                x.set("complaint_feedback_type", s(feedback_type));
            }
        }
        let mut condition = None;
        if let Some(soft) = &update.soft {
            let times = soft.bounces.iter().map(|t| n(t.as_millis())).collect();
            x.set("soft_bounces", AttributeValue::L(times));
            if update.suppress.is_none() {
                match soft.expires_at {
                    Some(at) => x.set(TTL_ATTRIBUTE, n(at.as_epoch_seconds())),
                    None => x.remove(TTL_ATTRIBUTE),
                }
            }
            let version = x.name("version");
            condition = Some(if soft.expected_version == 0 {
                format!("attribute_not_exists({version})")
            } else {
                let expected = x.value(n(soft.expected_version));
                format!("{version} = {expected}")
            });
        }
        let built = Update::builder()
            .table_name(&self.tables.suppressions)
            .key("email", s(update.email.as_str()))
            .update_expression(x.update_expression())
            .set_condition_expression(condition)
            .set_expression_attribute_names(Some(x.names))
            .set_expression_attribute_values(Some(x.values))
            .build()
            .map_err(|e| build_error("building an address update", e))?;
        Ok(TransactWriteItem::builder().update(built).build())
    }

    fn counter_update(&self, delta: &CounterDelta) -> Result<TransactWriteItem, StoreError> {
        let mut x = Expression::default();
        let rows = std::iter::once((None, &delta.bucket.total)).chain(
            delta
                .bucket
                .streams
                .iter()
                .map(|(stream, c)| (Some(stream.as_str()), c)),
        );
        for (stream, counts) in rows {
            for (counter, value) in Counts::NAMES.iter().zip(counts.values()) {
                if value > 0 {
                    let attribute = stream
                        .map_or_else(|| (*counter).to_owned(), |s| stream_attribute(s, counter));
                    x.add(&attribute, n(value));
                }
            }
        }
        x.set("bucket_start", n(delta.bucket.start.as_millis()));
        x.set(TTL_ATTRIBUTE, n(delta.expires_at.as_epoch_seconds()));
        let built = Update::builder()
            .table_name(&self.tables.state)
            .key("pk", s(account_key(&delta.account)))
            .key("sk", s(bucket_sort_key(delta.bucket.start)))
            .update_expression(x.update_expression())
            .set_expression_attribute_names(Some(x.names))
            .set_expression_attribute_values(Some(x.values))
            .build()
            .map_err(|e| build_error("building a counter update", e))?;
        Ok(TransactWriteItem::builder().update(built).build())
    }

    fn account_put(&self, name: &str) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.tables.state)
            .item("pk", s(UNCONFIGURED))
            .item("sk", s(name))
            .build()
            .map_err(|e| build_error("building an account registration", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

/// Reads the outcome of a cancelled transaction whose first `claims` actions were claims.
fn cancelled(
    claims: &[Claim],
    reasons: &[aws_sdk_dynamodb::types::CancellationReason],
) -> Option<ApplyError> {
    let mut taken = Vec::new();
    let mut conflict = false;
    for (index, reason) in reasons.iter().enumerate() {
        match reason.code() {
            Some("ConditionalCheckFailed") if index < claims.len() => {
                taken.push(claims[index].key.clone())
            }
            Some("ConditionalCheckFailed" | "TransactionConflict") => conflict = true,
            Some("None") | None => {}
            Some(_) => return None,
        }
    }
    if !taken.is_empty() {
        Some(ApplyError::AlreadyApplied(taken))
    } else if conflict {
        Some(ApplyError::Conflict)
    } else {
        None
    }
}

fn parse_bucket(item: &Item) -> Result<Bucket, StoreError> {
    const WHAT: &str = "counter bucket";
    let start = number::<i64>(item, "bucket_start", WHAT)?.ok_or(StoreError::Corrupt {
        what: WHAT,
        detail: "no `bucket_start`".into(),
    })?;
    let mut bucket = Bucket {
        start: Timestamp::from_millis(start),
        ..Bucket::default()
    };
    let mut totals = [0_u64; 5];
    for (i, counter) in Counts::NAMES.iter().enumerate() {
        totals[i] = number(item, counter, WHAT)?.unwrap_or(0);
    }
    bucket.total = Counts::from_values(totals);
    for name in item.keys() {
        let Some((stream, counter)) = name
            .strip_prefix("s:")
            .and_then(|rest| rest.rsplit_once(':'))
        else {
            continue;
        };
        let Some(index) = Counts::NAMES.iter().position(|c| *c == counter) else {
            continue;
        };
        let mut values = bucket
            .streams
            .get(stream)
            .copied()
            .unwrap_or_default()
            .values();
        values[index] = number(item, name, WHAT)?.unwrap_or(0);
        bucket
            .streams
            .insert(stream.to_owned(), Counts::from_values(values));
    }
    Ok(bucket)
}

fn parse_suppression(item: &Item) -> Result<Option<Suppression>, StoreError> {
    const WHAT: &str = "suppression";
    let corrupt = |detail: String| StoreError::Corrupt { what: WHAT, detail };
    let Some(reason) = text(item, "reason") else {
        return Ok(None);
    };
    let email = text(item, "email").ok_or_else(|| corrupt("no `email`".into()))?;
    Ok(Some(Suppression {
        email: EmailAddress::parse(&email).map_err(|e| corrupt(e.to_string()))?,
        reason: reason.parse().map_err(
            |e: crate::domain::feedback::suppression::UnknownReason| corrupt(e.to_string()),
        )?,
        bounce_type: text(item, "bounce_type"),
        bounce_subtype: text(item, "bounce_subtype"),
        status: text(item, "status"),
        diagnostic_code: text(item, "diagnostic_code"),
        complaint_feedback_type: text(item, "complaint_feedback_type"),
        count: number(item, "count", WHAT)?.unwrap_or(0),
        first_seen: Timestamp::from_millis(number(item, "first_seen", WHAT)?.unwrap_or(0)),
        last_seen: Timestamp::from_millis(number(item, "last_seen", WHAT)?.unwrap_or(0)),
        message_id: text(item, "message_id"),
        feedback_id: text(item, "feedback_id"),
    }))
}

fn parse_state(item: &Item, now: Timestamp) -> Result<AddressState, StoreError> {
    const WHAT: &str = "address state";
    let expired =
        number::<i64>(item, TTL_ATTRIBUTE, WHAT)?.is_some_and(|at| at <= now.as_epoch_seconds());
    let mut soft_bounces = Vec::new();
    if !expired && let Some(AttributeValue::L(list)) = item.get("soft_bounces") {
        for value in list {
            let millis = value
                .as_n()
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
                .ok_or_else(|| StoreError::Corrupt {
                    what: WHAT,
                    detail: format!("soft bounce time {value:?}"),
                })?;
            soft_bounces.push(Timestamp::from_millis(millis));
        }
    }
    Ok(AddressState {
        version: number(item, "version", WHAT)?.unwrap_or(0),
        suppressed: item.contains_key("reason"),
        soft_bounces,
    })
}

#[async_trait]
impl FeedbackLedger for DynamoStore {
    async fn address_states(
        &self,
        emails: &[EmailAddress],
        now: Timestamp,
    ) -> Result<HashMap<EmailAddress, AddressState>, StoreError> {
        let keys = emails
            .iter()
            .map(|e| HashMap::from([("email".to_owned(), s(e.as_str()))]))
            .collect();
        let items = self
            .batch_get(
                &self.tables.suppressions,
                keys,
                consistent,
                "reading address states",
            )
            .await?;
        let mut states = HashMap::new();
        for item in items {
            let email = text(&item, "email").unwrap_or_default();
            let email = EmailAddress::parse(&email).map_err(|e| StoreError::Corrupt {
                what: "address state",
                detail: e.to_string(),
            })?;
            states.insert(email, parse_state(&item, now)?);
        }
        Ok(states)
    }

    async fn apply(&self, change: &ChangeSet) -> Result<(), ApplyError> {
        if change.items() > MAX_TRANSACTION_ITEMS {
            return Err(ApplyError::Store(StoreError::Rejected {
                action: "applying a change".into(),
                source: format!(
                    "{} items, more than one transaction takes ({MAX_TRANSACTION_ITEMS})",
                    change.items()
                )
                .into(),
            }));
        }
        if change.items() == 0 {
            return Ok(());
        }
        let mut items = Vec::with_capacity(change.items());
        for claim in &change.claims {
            items.push(self.claim_put(claim, change.now)?);
        }
        for update in &change.suppressions {
            items.push(self.suppression_update(update)?);
        }
        for delta in &change.counters {
            items.push(self.counter_update(delta)?);
        }
        for name in &change.new_accounts {
            items.push(self.account_put(name)?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(error) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
                    error.as_service_error()
                    && let Some(outcome) = cancelled(&change.claims, cancel.cancellation_reasons())
                {
                    return Err(outcome);
                }
                Err(ApplyError::Store(failure("applying a change", error)))
            }
        }
    }

    fn max_items_per_apply(&self) -> usize {
        MAX_TRANSACTION_ITEMS
    }
}

#[async_trait]
impl SuppressionList for DynamoStore {
    async fn suppressed(
        &self,
        emails: &[EmailAddress],
    ) -> Result<HashMap<EmailAddress, Reason>, StoreError> {
        let items = self
            .batch_get(
                &self.tables.suppressions,
                emails.iter().map(email_key).collect(),
                suppression_reason,
                "reading suppressions",
            )
            .await?;
        parse_suppressed(&items)
    }

    async fn get(&self, email: &EmailAddress) -> Result<Option<Suppression>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.suppressions)
            .key("email", s(email.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("reading a suppression", e))?;
        output.item.as_ref().map_or(Ok(None), parse_suppression)
    }

    async fn list(
        &self,
        reason: Option<Reason>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Suppression>, StoreError> {
        let limit = limit.max(1);
        let mut items = Vec::new();
        let mut start = cursor.map(|email| HashMap::from([("email".to_owned(), s(email))]));
        loop {
            let mut request = self
                .client
                .scan()
                .table_name(&self.tables.suppressions)
                .set_exclusive_start_key(start.take())
                .expression_attribute_names("#reason", "reason");
            request = match reason {
                Some(reason) => request
                    .filter_expression("#reason = :reason")
                    .expression_attribute_values(":reason", s(reason.as_str())),
                None => request.filter_expression("attribute_exists(#reason)"),
            };
            let output = request
                .send()
                .await
                .map_err(|e| failure("listing suppressions", e))?;
            for item in output.items.unwrap_or_default() {
                if let Some(suppression) = parse_suppression(&item)? {
                    items.push(suppression);
                    if items.len() == limit {
                        let next = Some(items[limit - 1].email.as_str().to_owned());
                        return Ok(Page { items, next });
                    }
                }
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(Page { items, next: None }),
            }
        }
    }
}

#[async_trait]
impl CounterWindow for DynamoStore {
    async fn window(
        &self,
        account: &str,
        first: Timestamp,
        last: Timestamp,
    ) -> Result<AccountWindow, StoreError> {
        let mut window = AccountWindow::default();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.state)
                .key_condition_expression("pk = :pk AND sk BETWEEN :first AND :state")
                .expression_attribute_values(":pk", s(account_key(account)))
                .expression_attribute_values(":first", s(bucket_sort_key(first)))
                .expression_attribute_values(":state", s(STATE_SORT_KEY))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| failure("reading counters", e))?;
            for item in output.items.unwrap_or_default() {
                if text(&item, "sk").as_deref() == Some(STATE_SORT_KEY) {
                    window.state = parse_account_state(account, &item)?;
                } else {
                    let bucket = parse_bucket(&item)?;
                    if bucket.start <= last {
                        window.buckets.push(bucket);
                    }
                }
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(window),
            }
        }
    }

    async fn unconfigured_accounts(&self) -> Result<Vec<String>, StoreError> {
        let mut names = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&self.tables.state)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(UNCONFIGURED))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| failure("listing unconfigured accounts", e))?;
            names.extend(
                output
                    .items
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|item| text(item, "sk")),
            );
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(names),
            }
        }
    }
}

fn email_key(email: &EmailAddress) -> Item {
    HashMap::from([("email".to_owned(), s(email.as_str()))])
}

fn state_key(pk: impl Into<String>, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// The account an `account#NAME` item belongs to, if `item` is one with sort key `sk`.
fn account_of<'i>(item: &'i Item, sk: &str) -> Option<&'i str> {
    let is_sk = item.get("sk").and_then(|v| v.as_s().ok()) == Some(&sk.to_owned());
    let pk = item.get("pk").and_then(|v| v.as_s().ok())?;
    pk.strip_prefix("account#").filter(|_| is_sk)
}

/// Suppressed addresses and their reasons among `items` of the suppressions table.
fn parse_suppressed(items: &[Item]) -> Result<HashMap<EmailAddress, Reason>, StoreError> {
    let mut found = HashMap::new();
    for item in items {
        let (Some(email), Some(reason)) = (text(item, "email"), text(item, "reason")) else {
            continue;
        };
        let corrupt = |detail: String| StoreError::Corrupt {
            what: "suppression",
            detail,
        };
        let email = EmailAddress::parse(&email).map_err(|e| corrupt(e.to_string()))?;
        let reason =
            reason
                .parse()
                .map_err(|e: crate::domain::feedback::suppression::UnknownReason| {
                    corrupt(e.to_string())
                })?;
        found.insert(email, reason);
    }
    Ok(found)
}

/// One record per account of `accounts`: parsed from its item among `items` with sort key
/// `sk`, default when it has none.
fn by_account<T: Default>(
    accounts: &[String],
    items: &[Item],
    sk: &str,
    parse: impl Fn(&str, &Item) -> Result<T, StoreError>,
) -> Result<HashMap<String, T>, StoreError> {
    let mut found: HashMap<String, T> =
        accounts.iter().map(|a| (a.clone(), T::default())).collect();
    for item in items {
        if let Some(account) = account_of(item, sk) {
            found.insert(account.to_owned(), parse(account, item)?);
        }
    }
    Ok(found)
}

fn corrupt_rate(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "rate state",
        detail: detail.to_string(),
    }
}

fn parse_rate(item: &Item) -> Result<RateRecord, StoreError> {
    let state = text(item, "state")
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(corrupt_rate)?;
    let patch = text(item, "patch")
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(corrupt_rate)?;
    Ok(RateRecord {
        version: number(item, "version", "rate state")?.unwrap_or(0),
        state,
        patch: patch.unwrap_or_default(),
    })
}

fn parse_policy(item: Option<&Item>) -> Result<TemplatePolicy, StoreError> {
    match item.and_then(|item| text(item, "policy")) {
        None => Ok(TemplatePolicy::default()),
        Some(json) => serde_json::from_str(&json).map_err(corrupt_policy),
    }
}

fn corrupt_state(account: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "account state",
        detail: format!("{account}: {detail}"),
    }
}

fn parse_account_state(account: &str, item: &Item) -> Result<AccountState, StoreError> {
    let json = text(item, "state").ok_or_else(|| corrupt_state(account, "no `state`"))?;
    let mut state: AccountState =
        serde_json::from_str(&json).map_err(|e| corrupt_state(account, e))?;
    state.version = number(item, "version", "account state")?.unwrap_or(0);
    Ok(state)
}

#[async_trait]
impl GuardLedger for DynamoStore {
    async fn transition(
        &self,
        account: &str,
        expected_version: u64,
        next: &AccountState,
        entry: &HistoryEntry,
        history_expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let action = "writing an account transition";
        let state_json = serde_json::to_string(next).map_err(|e| corrupt_state(account, e))?;
        let entry_json = serde_json::to_string(entry).map_err(|e| corrupt_state(account, e))?;
        let version = expected_version + 1;
        let condition = if expected_version == 0 {
            "attribute_not_exists(version)".to_owned()
        } else {
            "version = :expected".to_owned()
        };
        let mut state = Put::builder()
            .table_name(&self.tables.state)
            .item("pk", s(account_key(account)))
            .item("sk", s(STATE_SORT_KEY))
            .item("version", n(version))
            .item("state", s(state_json))
            .condition_expression(condition);
        if expected_version > 0 {
            state = state.expression_attribute_values(":expected", n(expected_version));
        }
        let history = Put::builder()
            .table_name(&self.tables.state)
            .item("pk", s(account_key(account)))
            .item(
                "sk",
                s(format!(
                    "history#{:015}#{version:010}",
                    entry.at.as_millis().max(0)
                )),
            )
            .item("entry", s(entry_json))
            .item(TTL_ATTRIBUTE, n(history_expires_at.as_epoch_seconds()));
        let items = vec![
            TransactWriteItem::builder()
                .put(state.build().map_err(|e| build_error(action, e))?)
                .build(),
            TransactWriteItem::builder()
                .put(history.build().map_err(|e| build_error(action, e))?)
                .build(),
        ];
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(cancel)) =
                    error.as_service_error()
                    && cancel
                        .cancellation_reasons()
                        .first()
                        .and_then(|r| r.code())
                        .is_some_and(|code| code == "ConditionalCheckFailed")
                {
                    return Ok(false);
                }
                Err(failure(action, error))
            }
        }
    }

    async fn states(
        &self,
        accounts: &[String],
    ) -> Result<HashMap<String, AccountState>, StoreError> {
        let keys = accounts
            .iter()
            .map(|a| state_key(account_key(a), STATE_SORT_KEY))
            .collect();
        let items = self
            .batch_get(
                &self.tables.state,
                keys,
                consistent,
                "reading account states",
            )
            .await?;
        by_account(accounts, &items, STATE_SORT_KEY, parse_account_state)
    }

    async fn history(&self, account: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.tables.state)
            .key_condition_expression("pk = :pk AND begins_with(sk, :history)")
            .expression_attribute_values(":pk", s(account_key(account)))
            .expression_attribute_values(":history", s("history#"))
            .scan_index_forward(false)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| failure("reading history", e))?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let json = text(item, "entry")
                    .ok_or_else(|| corrupt_state(account, "history entry without `entry`"))?;
                serde_json::from_str(&json).map_err(|e| corrupt_state(account, e))
            })
            .collect()
    }
}

fn corrupt_policy(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "template policy",
        detail: detail.to_string(),
    }
}

#[async_trait]
impl PolicyStore for DynamoStore {
    async fn template_policy(&self) -> Result<TemplatePolicy, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.state)
            .set_key(Some(state_key(POLICY_KEY, POLICY_SORT_KEY)))
            .send()
            .await
            .map_err(|e| failure("reading the template policy", e))?;
        parse_policy(output.item.as_ref())
    }

    async fn put_template_policy(&self, policy: &TemplatePolicy) -> Result<(), StoreError> {
        let json = serde_json::to_string(policy).map_err(corrupt_policy)?;
        self.client
            .put_item()
            .table_name(&self.tables.state)
            .item("pk", s(POLICY_KEY))
            .item("sk", s(POLICY_SORT_KEY))
            .item("policy", s(json))
            .send()
            .await
            .map_err(|e| failure("writing the template policy", e))?;
        Ok(())
    }
}

#[async_trait]
impl MessageLedger for DynamoStore {
    async fn claim(
        &self,
        key: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.state)
            .item("pk", s(format!("claim#{key}")))
            .item("sk", s("claim"))
            .item(TTL_ATTRIBUTE, n(expires_at.as_epoch_seconds()))
            .condition_expression("attribute_not_exists(pk) OR #ttl <= :now")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now.as_epoch_seconds()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(error) => Err(failure("claiming a message", error)),
        }
    }

    async fn release(&self, keys: &[String]) -> Result<(), StoreError> {
        let action = "releasing message claims";
        for chunk in keys.chunks(MAX_BATCH_WRITE) {
            let mut requests = chunk
                .iter()
                .map(|key| {
                    let delete = DeleteRequest::builder()
                        .set_key(Some(state_key(format!("claim#{key}"), "claim")))
                        .build()
                        .map_err(|e| build_error(action, e))?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
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
                            source: "unprocessed deletes after 8 retries".into(),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
                }
            }
        }
        Ok(())
    }

    async fn seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.state)
            .key("pk", s(format!("claim#{key}")))
            .key("sk", s("claim"))
            .send()
            .await
            .map_err(|e| failure("reading a message claim", e))?;
        let Some(item) = output.item else {
            return Ok(false);
        };
        let expires: Option<i64> = number(&item, TTL_ATTRIBUTE, "message claim")?;
        Ok(expires.is_none_or(|at| at > now.as_epoch_seconds()))
    }

    async fn remember(&self, key: &str, expires_at: Timestamp) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.state)
            .item("pk", s(format!("claim#{key}")))
            .item("sk", s("claim"))
            .item(TTL_ATTRIBUTE, n(expires_at.as_epoch_seconds()))
            .send()
            .await
            .map_err(|e| failure("writing a message claim", e))?;
        Ok(())
    }
}

impl DynamoStore {
    async fn read_rate(&self, account: &str, action: &str) -> Result<RateRecord, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.state)
            .set_key(Some(state_key(account_key(account), RATE_SORT_KEY)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure(action, e))?;
        output
            .item
            .as_ref()
            .map_or(Ok(RateRecord::default()), parse_rate)
    }

    /// Writes `state` over the rate record read at `version`, unless another writer wrote it
    /// since: `Ok(false)` then. The operators' patch is left as it is.
    async fn write_rate_state(
        &self,
        account: &str,
        version: u64,
        state: &RateState,
        action: &str,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(state).map_err(corrupt_rate)?;
        let update = self
            .client
            .update_item()
            .table_name(&self.tables.state)
            .set_key(Some(state_key(account_key(account), RATE_SORT_KEY)))
            .update_expression("SET #state = :state, version = :next")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":state", s(json))
            .expression_attribute_values(":next", n(version + 1));
        let update = if version == 0 {
            update.condition_expression("attribute_not_exists(version)")
        } else {
            update
                .condition_expression("version = :version")
                .expression_attribute_values(":version", n(version))
        };
        match update.send().await {
            Ok(_) => Ok(true),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(false),
            Err(error) => Err(failure(action, error)),
        }
    }

    /// Reads (or starts from `read`), changes and conditionally writes an account's rate
    /// state, retrying with backoff while other instances write in between.
    async fn update_rate<T>(
        &self,
        account: &str,
        read: Option<&RateRecord>,
        action: &str,
        change: impl Fn(&RateRecord) -> (RateState, T),
    ) -> Result<T, StoreError> {
        let mut record = match read {
            Some(record) => record.clone(),
            None => self.read_rate(account, action).await?,
        };
        for attempt in 0..8_u32 {
            let (state, answer) = change(&record);
            if self
                .write_rate_state(account, record.version, &state, action)
                .await?
            {
                return Ok(answer);
            }
            tokio::time::sleep(Duration::from_millis(5 << attempt.min(5))).await;
            record = self.read_rate(account, action).await?;
        }
        Err(StoreError::Unavailable {
            action: action.into(),
            source: "the rate state kept changing under concurrent senders".into(),
        })
    }
}

#[async_trait]
impl RateLedger for DynamoStore {
    async fn rate(&self, account: &str) -> Result<RateRecord, StoreError> {
        self.read_rate(account, "reading send-rate state").await
    }

    async fn take(
        &self,
        account: &str,
        configured: &RateLimits,
        wanted: u64,
        now: Timestamp,
        read: Option<&RateRecord>,
    ) -> Result<Grant, StoreError> {
        self.update_rate(account, read, "taking send-rate tokens", |record| {
            let grant = record
                .limits(configured)
                .take(record.state.as_ref(), wanted, now);
            (grant.state, grant)
        })
        .await
    }

    async fn set_limits(&self, account: &str, patch: &LimitsPatch) -> Result<(), StoreError> {
        let json = serde_json::to_string(patch).map_err(corrupt_rate)?;
        // Bumping the version makes a take that read the old limits read again.
        self.client
            .update_item()
            .table_name(&self.tables.state)
            .set_key(Some(state_key(account_key(account), RATE_SORT_KEY)))
            .update_expression("SET patch = :patch ADD version :one")
            .expression_attribute_values(":patch", s(json))
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|e| failure("writing send-rate limits", e))?;
        Ok(())
    }

    async fn refill(
        &self,
        account: &str,
        configured: &RateLimits,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.update_rate(account, None, "refilling the send-rate bucket", |record| {
            let limits = record.limits(configured);
            (limits.refilled(record.state, now), ())
        })
        .await
    }
}

#[async_trait]
impl GateRead for DynamoStore {
    async fn gate_view(
        &self,
        recipients: &[EmailAddress],
        accounts: &[String],
    ) -> Result<GateView, StoreError> {
        let mut state_keys = vec![state_key(POLICY_KEY, POLICY_SORT_KEY)];
        for account in accounts {
            state_keys.push(state_key(account_key(account), STATE_SORT_KEY));
            state_keys.push(state_key(account_key(account), RATE_SORT_KEY));
        }
        let mut found = self
            .batch_get_tables(
                vec![
                    (
                        &self.tables.suppressions,
                        recipients.iter().map(email_key).collect(),
                        suppression_reason,
                    ),
                    (&self.tables.state, state_keys, consistent),
                ],
                "reading the send gate's view",
            )
            .await?;
        let suppressions = found.remove(&self.tables.suppressions).unwrap_or_default();
        let state = found.remove(&self.tables.state).unwrap_or_default();
        let policy = state
            .iter()
            .find(|item| text(item, "pk").as_deref() == Some(POLICY_KEY));
        Ok(GateView {
            policy: parse_policy(policy)?,
            suppressed: parse_suppressed(&suppressions)?,
            states: by_account(accounts, &state, STATE_SORT_KEY, parse_account_state)?,
            rates: by_account(accounts, &state, RATE_SORT_KEY, |_, item| parse_rate(item))?,
        })
    }
}

#[async_trait]
impl SuppressionAdmin for DynamoStore {
    async fn suppress(
        &self,
        entries: &[ManualSuppression],
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let action = "suppressing addresses";
        let mut seen = std::collections::HashSet::new();
        let entries: Vec<&ManualSuppression> =
            entries.iter().filter(|e| seen.insert(&e.email)).collect();
        let mut added = 0;
        for round in entries.chunks(25) {
            let updates = round.iter().map(|entry| {
                self.client
                    .update_item()
                    .table_name(&self.tables.suppressions)
                    .key("email", s(entry.email.as_str()))
                    .update_expression(
                        "SET #reason = if_not_exists(#reason, :reason), \
                         first_seen = if_not_exists(first_seen, :now), \
                         last_seen = if_not_exists(last_seen, :now) \
                         REMOVE #ttl ADD version :one",
                    )
                    .expression_attribute_names("#reason", "reason")
                    .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                    .expression_attribute_values(":reason", s(entry.reason.as_str()))
                    .expression_attribute_values(":now", n(now.as_millis()))
                    .expression_attribute_values(":one", n(1))
                    .return_values(ReturnValue::AllOld)
                    .send()
            });
            for answer in futures_util::future::join_all(updates).await {
                let output = answer.map_err(|e| failure(action, e))?;
                let had_reason = output
                    .attributes
                    .is_some_and(|old| old.contains_key("reason"));
                added += usize::from(!had_reason);
            }
        }
        Ok(added)
    }

    async fn unsuppress(&self, email: &EmailAddress) -> Result<Option<Suppression>, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.suppressions)
            .key("email", s(email.as_str()))
            .condition_expression("attribute_exists(#reason)")
            .expression_attribute_names("#reason", "reason")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => output
                .attributes
                .as_ref()
                .map_or(Ok(None), parse_suppression),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(None),
            Err(error) => Err(failure("lifting a suppression", error)),
        }
    }
}

const AUDIT_KEY: &str = "audit";

#[async_trait]
impl AuditLog for DynamoStore {
    async fn record(&self, entry: &AuditEntry, expires_at: Timestamp) -> Result<(), StoreError> {
        let json = serde_json::to_string(entry).map_err(|e| StoreError::Corrupt {
            what: "audit entry",
            detail: e.to_string(),
        })?;
        // Millisecond sort keys; the entry's own hash keeps two entries of one millisecond apart.
        let digest = sha2::Sha256::digest(json.as_bytes());
        let suffix: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        self.client
            .put_item()
            .table_name(&self.tables.state)
            .item("pk", s(AUDIT_KEY))
            .item(
                "sk",
                s(format!("{:015}#{suffix}", entry.at.as_millis().max(0))),
            )
            .item("entry", s(json))
            .item(TTL_ATTRIBUTE, n(expires_at.as_epoch_seconds()))
            .send()
            .await
            .map_err(|e| failure("writing the audit log", e))?;
        Ok(())
    }

    async fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.tables.state)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(AUDIT_KEY))
            .scan_index_forward(false)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| failure("reading the audit log", e))?;
        output
            .items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                let json = text(item, "entry").unwrap_or_default();
                serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
                    what: "audit entry",
                    detail: e.to_string(),
                })
            })
            .collect()
    }
}
