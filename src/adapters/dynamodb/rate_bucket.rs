//! The send-rate limiter of an account on DynamoDB. The token bucket is paced
//! ([`Pace`]): each of its parts is one item (`rate#NAME` / `part#PART`, attributes `tat`,
//! microseconds, and `epoch`, its restarts) that a take changes with one `UpdateItem` reading
//! nothing first: on a busy part it adds the tokens' worth (adds commute: concurrent takes
//! never refuse each other), keeps what the answer says fitted under the burst and gives the
//! rest back in a second write, unless the part was restarted since; an idle part refuses the
//! add with its arrival time, and the next write restarts it from now. The operators'
//! limits and, when a per-minute, per-hour or per-day limit is set, the window counts live in
//! the account's `rate` item, the latter written optimistically on its version.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use super::*;
use crate::domain::sending::rate_limit::{MAX_PACE_PARTS, Pace, PaceStep};

/// Writes one take may make to one part before giving up on it.
const PACE_ATTEMPTS: u32 = 4;
/// How long an untouched part is kept after it would be full again: an absent part is full.
const PART_TTL: Duration = Duration::from_secs(86_400);

/// A pause of 5 to 10 ms before a third write to a part, so that writers that keep meeting
/// each other fall out of step.
fn jitter() -> Duration {
    Duration::from_micros(5_000 + random() % 5_000)
}

/// A part's key: a partition key of the account's parts alone (`rate#NAME` / `part#PART`), so
/// that their writes — about 0.45 a message — do not add to the account's counters and state
/// in `account#NAME`, whose partition would otherwise take about 900 of the 1,000 write
/// units a second a partition takes at 1,000 sends a second (*derived* from the load
/// harness's busiest partitions, docs/scale.md).
fn part_key(account: &str, part: u16) -> Item {
    state_key(parts_key(account), &format!("part#{part}"))
}

/// The partition key of an account's parts.
fn parts_key(account: &str) -> String {
    format!("rate#{account}")
}

/// A part's arrival time (`tat`) in an item read or written, if it holds a readable one.
fn part_tat(item: &HashMap<String, AttributeValue>) -> Option<i64> {
    number::<i64>(item, "tat", "send-rate part").ok().flatten()
}

/// What this instance's last write of each part found, by `(account, part)`.
pub(super) type PartsSeen = std::sync::Arc<std::sync::Mutex<HashMap<(String, u16), i64>>>;

impl DynamoStore {
    pub(super) async fn read_rate(
        &self,
        account: &str,
        action: &str,
    ) -> Result<RateRecord, StoreError> {
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
    pub(super) async fn write_rate_state(
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

    /// Takes up to `wanted` tokens from one part of the account's paced bucket: how many,
    /// and when one more fits if none did.
    async fn pace_part(
        &self,
        account: &str,
        part: u16,
        pace: &Pace,
        wanted: u64,
        now: Timestamp,
        action: &str,
    ) -> Result<(u64, Option<Timestamp>), StoreError> {
        let mut assumed = pace.guess(self.part_seen(account, part), now);
        for attempt in 0..PACE_ATTEMPTS {
            let step = pace.step(assumed, wanted, now);
            if attempt > 1 && !matches!(step, PaceStep::Wait { .. }) {
                tokio::time::sleep(jitter()).await;
            }
            let (granted, update) = match self.part_write(account, part, pace, step, now) {
                Ok(write) => write,
                Err(until) => return Ok((0, Some(until))),
            };
            match update.send().await {
                Ok(output) => {
                    let item = output.attributes.unwrap_or_default();
                    let mut at = part_tat(&item);
                    let granted = match (step, at) {
                        (PaceStep::Advance { asked, by_us, .. }, Some(new)) => {
                            let (granted, back_us) = pace.settle(asked, by_us, new, now);
                            if back_us > 0 {
                                self.give_back(account, part, back_us, &item).await;
                                at = Some(new - back_us);
                            }
                            granted
                        }
                        _ => granted,
                    };
                    self.remember_part(account, part, at);
                    let next = at
                        .filter(|_| granted < wanted)
                        .map(|at| pace.next_token(at).max(now));
                    return Ok((granted, next));
                }
                Err(error) => {
                    let Some(UpdateItemError::ConditionalCheckFailedException(refused)) =
                        error.as_service_error()
                    else {
                        return Err(failure(action, error));
                    };
                    // The refusal carries the part as the write met it. Met idle, the guess
                    // was only wrong about a quiet part; met busy, another writer came first.
                    assumed = refused.item().and_then(part_tat);
                    let idle = pace.is_idle(assumed, now);
                    let retry = attempt + 1 < PACE_ATTEMPTS;
                    if let PaceStep::Wait { until } = pace.step(assumed, wanted, now) {
                        self.remember_part(account, part, assumed);
                        return Ok((0, Some(until)));
                    }
                    if !idle && retry {
                        crate::telemetry::CONTENTION.conflict();
                    }
                    self.remember_part(account, part, assumed);
                }
            }
        }
        Err(StoreError::Unavailable {
            action: action.into(),
            source: format!(
                "part {part} of the send-rate bucket kept changing under concurrent senders"
            )
            .into(),
        })
    }

    /// The conditional write of one part for `step`, with the tokens it grants: kept until
    /// the part would be full again and a day more, answering with the part as written, or as
    /// the write met it when its condition fails. `Err(until)`: the step is a wait, nothing to
    /// write.
    fn part_write(
        &self,
        account: &str,
        part: u16,
        pace: &Pace,
        step: PaceStep,
        now: Timestamp,
    ) -> Result<(u64, UpdateItemFluentBuilder), Timestamp> {
        let update = self
            .client
            .update_item()
            .table_name(&self.tables.state)
            .set_key(Some(part_key(account, part)))
            // Until the part would be full again, and a day more: an absent part is full.
            .expression_attribute_values(
                ":expires",
                n(now
                    .plus(Duration::from_micros(pace.burst_us as u64))
                    .plus(PART_TTL)
                    .as_epoch_seconds()),
            )
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        Ok(match step {
            PaceStep::Wait { until } => return Err(until),
            PaceStep::Advance {
                asked,
                by_us,
                floor_us,
            } => (
                asked,
                update
                    .update_expression("SET tat = tat + :by, expires_at = :expires")
                    .condition_expression("tat >= :floor")
                    .expression_attribute_values(":by", n(by_us))
                    .expression_attribute_values(":floor", n(floor_us)),
            ),
            PaceStep::Restart {
                granted,
                to_us,
                floor_us,
            } => (
                granted,
                update
                    .update_expression("SET tat = :to, expires_at = :expires ADD epoch :one")
                    .condition_expression("attribute_not_exists(tat) OR tat < :floor")
                    .expression_attribute_values(":one", n(1))
                    .expression_attribute_values(":to", n(to_us))
                    .expression_attribute_values(":floor", n(floor_us)),
            ),
        })
    }

    /// Gives back `back_us` of a part's arrival time that an add took beyond its burst, unless
    /// the part was restarted since (its `epoch` moved on): the restart dropped the add with
    /// everything before it. A give-back that fails leaves the part fuller than it is: slower,
    /// never faster.
    async fn give_back(
        &self,
        account: &str,
        part: u16,
        back_us: i64,
        written: &HashMap<String, AttributeValue>,
    ) {
        let update = self
            .client
            .update_item()
            .table_name(&self.tables.state)
            .set_key(Some(part_key(account, part)))
            .update_expression("SET tat = tat - :back")
            .expression_attribute_values(":back", n(back_us));
        let update = match written.get("epoch") {
            Some(epoch) => update
                .condition_expression("epoch = :epoch")
                .expression_attribute_values(":epoch", epoch.clone()),
            None => update.condition_expression("attribute_not_exists(epoch)"),
        };
        match update.send().await {
            Ok(_) => {}
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => {}
            Err(error) => {
                tracing::warn!(account, part, error = %crate::telemetry::error_chain(&error), "send-rate tokens not given back: the part reads fuller than it is until it refills")
            }
        }
    }

    /// What this instance's last write of the part found (`None`: nothing yet, or unknown).
    fn part_seen(&self, account: &str, part: u16) -> Option<i64> {
        self.parts_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(account.to_owned(), part))
            .copied()
    }

    /// Keeps what a write of the part found, or forgets it when it found nothing readable.
    fn remember_part(&self, account: &str, part: u16, at: Option<i64>) {
        let mut parts = self
            .parts_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (account.to_owned(), part);
        match at {
            Some(at) => parts.insert(key, at),
            None => parts.remove(&key),
        };
    }

    /// Reads (or starts from `read`), changes and conditionally writes an account's rate
    /// state, retrying with backoff while other instances write in between.
    pub(super) async fn update_rate<T>(
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
            crate::telemetry::CONTENTION.conflict();
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
        let action = "reading send-rate state";
        // The `rate` item, then its parts (`rate#NAME` / `part#PART`) in one query.
        let mut record = self.read_rate(account, action).await?;
        let output = self
            .client
            .query()
            .table_name(&self.tables.state)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(parts_key(account)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure(action, e))?;
        for item in output.items.unwrap_or_default() {
            let sk = text(&item, "sk").unwrap_or_default();
            let part = sk.rsplit('#').next().and_then(|p| p.parse::<u16>().ok());
            let at = number::<i64>(&item, "tat", "send-rate part")?;
            if let (Some(part), Some(at)) = (part, at) {
                record.paced.insert(part, at);
            }
        }
        Ok(record)
    }

    async fn take(
        &self,
        account: &str,
        configured: &RateLimits,
        wanted: u64,
        now: Timestamp,
        read: Option<&RateRecord>,
    ) -> Result<Grant, StoreError> {
        let action = "taking send-rate tokens";
        let record = match read {
            Some(record) => record.clone(),
            None => self.read_rate(account, action).await?,
        };
        let limits = record.limits(configured);
        let state = record.state.unwrap_or_default();
        if !limits.enabled || wanted == 0 {
            return Ok(Grant {
                granted: wanted,
                state,
                next_at: None,
            });
        }
        // One part, and the next when that one cannot give everything: a part that runs
        // dry while another holds tokens costs one more write, never a wait.
        let pace = limits.pace();
        let first = self.shards.pick_of(pace.parts);
        let mut parts = vec![first];
        if pace.parts > 1 {
            parts.push((first + 1) % pace.parts);
        }
        let (mut granted, mut next_at) = (0, None);
        for part in parts {
            let (taken, wait) = match self
                .pace_part(account, part, &pace, wanted - granted, now, action)
                .await
            {
                Ok(answer) => answer,
                // Tokens the first part gave are written: keep them.
                Err(error) if granted > 0 => {
                    tracing::warn!(account, part, error = %crate::telemetry::error_chain(&error), "second part of the send-rate bucket not reached");
                    break;
                }
                Err(error) => return Err(error),
            };
            granted += taken;
            next_at = match (next_at, wait) {
                (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                (a, b) => a.or(b),
            };
            if granted == wanted {
                next_at = None;
                break;
            }
        }
        if granted == 0 || !limits.has_windows() {
            return Ok(Grant {
                granted,
                state,
                next_at,
            });
        }
        // Tokens paced but refused by a window are dropped: slower, never faster. A retry
        // after a conflict reads the record again, operators' newest limits with it.
        let windows = self
            .update_rate(account, Some(&record), action, |record| {
                let grant =
                    record
                        .limits(configured)
                        .take_windows(record.state.as_ref(), granted, now);
                (grant.state, grant)
            })
            .await?;
        Ok(Grant {
            next_at: windows
                .next_at
                .max(next_at)
                .filter(|_| windows.granted < wanted),
            ..windows
        })
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
        _configured: &RateLimits,
        _now: Timestamp,
    ) -> Result<(), StoreError> {
        // An absent part is a full one.
        let parts = (0..MAX_PACE_PARTS).map(|part| part_key(account, part));
        self.delete_all(parts, "refilling the send-rate bucket")
            .await?;
        self.parts_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(name, _), _| name != account);
        Ok(())
    }
}
