//! Items and attributes: the typed values sesguard stores, written as and read from
//! `AttributeValue` maps, the keys of each item kind, and expression building. The domain never
//! sees an `AttributeValue`.

use super::*;

pub(super) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub(super) fn number<T: std::str::FromStr>(
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
pub(super) fn failure<E, R>(action: &str, error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let rejected = matches!(
        error.code(),
        Some("ValidationException" | "ResourceNotFoundException" | "AccessDeniedException")
    );
    if is_throttle(error.code()) {
        crate::telemetry::CONTENTION.throttle();
    }
    let action = action.to_owned();
    let source = Box::new(error);
    if rejected {
        StoreError::Rejected { action, source }
    } else {
        StoreError::Unavailable { action, source }
    }
}

/// Whether an error code says the request was refused for throughput (the SDK has retried
/// it already).
pub(super) fn is_throttle(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "ThrottlingException"
                | "ProvisionedThroughputExceededException"
                | "RequestLimitExceeded"
        )
    )
}

pub(super) fn build_error(action: &str, error: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Rejected {
        action: action.to_owned(),
        source: Box::new(error),
    }
}

/// Collects the clauses and placeholders of one update expression. Every attribute name
/// goes through a placeholder: `count`, `status` and many others are reserved words.
#[derive(Default)]
pub(super) struct Expression {
    pub(super) set: Vec<String>,
    pub(super) add: Vec<String>,
    pub(super) remove: Vec<String>,
    pub(super) names: HashMap<String, String>,
    pub(super) values: HashMap<String, AttributeValue>,
}

impl Expression {
    pub(super) fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    pub(super) fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    pub(super) fn set(&mut self, attribute: &str, value: AttributeValue) {
        let (name, value) = (self.name(attribute), self.value(value));
        self.set.push(format!("{name} = {value}"));
    }

    pub(super) fn set_if_absent(&mut self, attribute: &str, value: AttributeValue) {
        let (name, value) = (self.name(attribute), self.value(value));
        self.set
            .push(format!("{name} = if_not_exists({name}, {value})"));
    }

    pub(super) fn set_or_remove(&mut self, attribute: &str, value: Option<&String>) {
        match value {
            Some(value) => self.set(attribute, s(value)),
            None => self.remove(attribute),
        }
    }

    pub(super) fn add(&mut self, attribute: &str, value: AttributeValue) {
        let (name, value) = (self.name(attribute), self.value(value));
        self.add.push(format!("{name} {value}"));
    }

    pub(super) fn remove(&mut self, attribute: &str) {
        let name = self.name(attribute);
        self.remove.push(name);
    }

    pub(super) fn update_expression(&self) -> String {
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

/// The lowest sort key of the bucket starting at `start`: each of its shards sorts after it.
pub(super) fn bucket_sort_key(start: Timestamp) -> String {
    format!("bucket#{:015}", start.as_millis().max(0))
}

/// The sort key of one shard of the bucket starting at `start`.
pub(super) fn bucket_shard_key(start: Timestamp, shard: u16) -> String {
    format!("{}#{shard:03}", bucket_sort_key(start))
}

pub(super) fn account_key(account: &str) -> String {
    format!("account#{account}")
}

pub(super) fn stream_attribute(stream: &str, counter: &str) -> String {
    format!("s:{stream}:{counter}")
}

/// The one-letter names of [`ProviderCounts::NAMES`] in a counter item (`p:google:d`): a
/// counter item is written by every batch in one transaction, which DynamoDB charges per KB,
/// and providers × counters would otherwise double its size.
pub(super) const PROVIDER_CODES: [&str; 7] = ["d", "a", "t", "b", "u", "p", "c"];

pub(super) fn provider_attribute(provider: &str, counter: &str) -> String {
    format!("p:{provider}:{counter}")
}

pub(super) fn parse_bucket(item: &Item) -> Result<Bucket, StoreError> {
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
    for name in item.keys() {
        let Some((provider, counter)) = name
            .strip_prefix("p:")
            .and_then(|rest| rest.rsplit_once(':'))
        else {
            continue;
        };
        let Some(index) = PROVIDER_CODES.iter().position(|c| *c == counter) else {
            continue;
        };
        let counts = bucket.providers.entry(provider.to_owned()).or_default();
        let mut values = counts.values();
        values[index] = number(item, name, WHAT)?.unwrap_or(0);
        *counts = ProviderCounts::from_values(values);
    }
    Ok(bucket)
}

pub(super) fn parse_suppression(item: &Item) -> Result<Option<Suppression>, StoreError> {
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
        bounce_reason: text(item, "bounce_reason").and_then(|t| t.parse().ok()),
        complaint_feedback_type: text(item, "complaint_feedback_type"),
        count: number(item, "count", WHAT)?.unwrap_or(0),
        first_seen: Timestamp::from_millis(number(item, "first_seen", WHAT)?.unwrap_or(0)),
        last_seen: Timestamp::from_millis(number(item, "last_seen", WHAT)?.unwrap_or(0)),
        message_id: text(item, "message_id"),
        feedback_id: text(item, "feedback_id"),
    }))
}

pub(super) fn parse_state(item: &Item, now: Timestamp) -> Result<AddressState, StoreError> {
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

pub(super) fn email_key(email: &EmailAddress) -> Item {
    HashMap::from([("email".to_owned(), s(email.as_str()))])
}

pub(super) fn state_key(pk: impl Into<String>, sk: &str) -> Item {
    HashMap::from([("pk".to_owned(), s(pk)), ("sk".to_owned(), s(sk))])
}

/// The account an `account#NAME` item belongs to, if `item` is one with sort key `sk`.
pub(super) fn account_of<'i>(item: &'i Item, sk: &str) -> Option<&'i str> {
    let is_sk = item.get("sk").and_then(|v| v.as_s().ok()) == Some(&sk.to_owned());
    let pk = item.get("pk").and_then(|v| v.as_s().ok())?;
    pk.strip_prefix("account#").filter(|_| is_sk)
}

/// Suppressed addresses and their reasons among `items` of the suppressions table.
pub(super) fn parse_suppressed(
    items: &[Item],
) -> Result<HashMap<EmailAddress, Reason>, StoreError> {
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
pub(super) fn by_account<T: Default>(
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

pub(super) fn corrupt_rate(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "rate state",
        detail: detail.to_string(),
    }
}

pub(super) fn parse_rate(item: &Item) -> Result<RateRecord, StoreError> {
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
        paced: Default::default(),
    })
}

pub(super) fn parse_policy(item: Option<&Item>) -> Result<TemplatePolicy, StoreError> {
    match item.and_then(|item| text(item, "policy")) {
        None => Ok(TemplatePolicy::default()),
        Some(json) => serde_json::from_str(&json).map_err(corrupt_policy),
    }
}

pub(super) fn corrupt_state(account: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "account state",
        detail: format!("{account}: {detail}"),
    }
}

pub(super) fn parse_account_state(account: &str, item: &Item) -> Result<AccountState, StoreError> {
    let json = text(item, "state").ok_or_else(|| corrupt_state(account, "no `state`"))?;
    let mut state: AccountState =
        serde_json::from_str(&json).map_err(|e| corrupt_state(account, e))?;
    state.version = number(item, "version", "account state")?.unwrap_or(0);
    Ok(state)
}

pub(super) fn corrupt_policy(detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what: "template policy",
        detail: detail.to_string(),
    }
}
