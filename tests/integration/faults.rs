//! The fault suite: the sender function's promise — every request ends exactly once as sent,
//! refused with a reason, or still queued; none reaches SES twice; none reaches the
//! dead-letter queue — with each fault injected at its point, on the embedded store and on
//! the local DynamoDB server.
//!
//! The world around the function: a model of an SQS queue (receive counts, visibility,
//! `maxReceiveCount` and the dead-letter queue, delays of new messages) that drives
//! `lambda::sender::process` and implements its queue port; a model of SES behind the
//! transport port that records what it accepted and publishes each accepted message's `Send`
//! event to the ingest use case a step later; and a store wrapper that fails the calls named.
//! Time is simulated in 30-second steps.
//!
//! The table the suite prints (`cargo test --test integration faults -- --nocapture`) is the
//! one in docs/sender.md.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use sesguard::app::Context;
use sesguard::app::ingest::Ingestor;
use sesguard::app::send::{Decision, Judged};
use sesguard::domain::common::address::EmailAddress;
use sesguard::domain::common::timestamp::Timestamp;
use sesguard::domain::feedback::attribution::SendSource;
use sesguard::domain::feedback::plan::ChangeSet;
use sesguard::domain::feedback::suppression::{AddressState, Reason, Suppression};
use sesguard::domain::reputation::history::HistoryEntry;
use sesguard::domain::reputation::state::AccountState;
use sesguard::domain::sending::rate_limit::{Grant, LimitsPatch, RateLimits};
use sesguard::domain::sending::request::OutgoingMail;
use sesguard::domain::sending::send_record::{SendKey, SendRecord};
use sesguard::domain::sending::ses_failure::SendFailure;
use sesguard::domain::sending::template_policy::TemplatePolicy;
use sesguard::lambda::sender::process;
use sesguard::ports::{
    AccountWindow, ApplyError, AuditEntry, AuditLog, CounterWindow, DomainLedger, DomainRecord,
    FeedbackLedger, GateRead, GateView, GuardLedger, JobLedger, JobProgress, MailTransport,
    ManualSuppression, MessageLedger, Page, PolicyStore, PreventedKey, QueueError, QueueVisibility,
    RateLedger, RateRecord, Requeue, SendClaim, SendLedger, SendQuota, SesAccount, SesError, Store,
    StoreError, SuppressionAdmin, SuppressionList, TransportError,
};
use sesguard::wiring::SenderFunction;

use crate::helpers::FixedClock;
use crate::ses_event::SesEvent;

// --- The store, failing where told ---------------------------------------------------------

/// A store that fails the next `n` calls of the methods named, or never answers one call
/// after doing its work (the instance dies there), and passes the rest on.
struct Faulty {
    inner: Arc<dyn Store>,
    faults: Mutex<HashMap<&'static str, u32>>,
    /// The method whose call, counted down to 1, never answers.
    hang: Mutex<Option<(&'static str, u32)>>,
    died: Arc<tokio::sync::Notify>,
}

impl Faulty {
    fn new(inner: Arc<dyn Store>, died: Arc<tokio::sync::Notify>) -> Self {
        Self {
            inner,
            faults: Mutex::new(HashMap::new()),
            hang: Mutex::new(None),
            died,
        }
    }

    fn fail(&self, method: &'static str, calls: u32) {
        self.faults.lock().unwrap().insert(method, calls);
    }

    /// Dies here if this is the call that never answers: after the store did the work.
    async fn die_after(&self, method: &'static str) {
        let hang_now = {
            let mut hang = self.hang.lock().unwrap();
            match hang.as_mut() {
                Some((name, n)) if *name == method => {
                    *n -= 1;
                    let now = *n == 0;
                    if now {
                        *hang = None;
                    }
                    now
                }
                _ => false,
            }
        };
        if hang_now {
            self.died.notify_one();
            std::future::pending::<()>().await;
        }
    }

    fn check(&self, method: &'static str) -> Result<(), StoreError> {
        let mut faults = self.faults.lock().unwrap();
        match faults.get_mut(method) {
            Some(left) if *left > 0 => {
                *left -= 1;
                Err(StoreError::Unavailable {
                    action: method.into(),
                    source: "injected: the store is down".into(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// Each method checks its fault, then calls the wrapped store.
macro_rules! pass_on {
    ($trait:ident { $(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)* }) => {
        #[async_trait]
        impl $trait for Faulty {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.check(stringify!($name))?;
                    let answer = self.inner.$name($($arg),*).await;
                    self.die_after(stringify!($name)).await;
                    answer
                }
            )*
        }
    };
}

#[async_trait]
impl FeedbackLedger for Faulty {
    async fn address_states(
        &self,
        emails: &[EmailAddress],
        now: Timestamp,
    ) -> Result<HashMap<EmailAddress, AddressState>, StoreError> {
        self.check("address_states")?;
        self.inner.address_states(emails, now).await
    }
    async fn apply(&self, change: &ChangeSet) -> Result<(), ApplyError> {
        self.check("apply")?;
        self.inner.apply(change).await
    }
    fn max_items_per_apply(&self) -> usize {
        self.inner.max_items_per_apply()
    }
}

pass_on!(SuppressionList {
    fn get(&self, email: &EmailAddress) -> Result<Option<Suppression>, StoreError>;
    fn suppressed(&self, emails: &[EmailAddress]) -> Result<HashMap<EmailAddress, Reason>, StoreError>;
    fn list(&self, reason: Option<Reason>, cursor: Option<&str>, limit: usize) -> Result<Page<Suppression>, StoreError>;
});
pass_on!(SuppressionAdmin {
    fn suppress(&self, entries: &[ManualSuppression], now: Timestamp) -> Result<usize, StoreError>;
    fn unsuppress(&self, email: &EmailAddress) -> Result<Option<Suppression>, StoreError>;
});
pass_on!(CounterWindow {
    fn window(&self, account: &str, first: Timestamp, last: Timestamp) -> Result<AccountWindow, StoreError>;
    fn unconfigured_accounts(&self) -> Result<Vec<String>, StoreError>;
});
pass_on!(GuardLedger {
    fn transition(&self, account: &str, expected_version: u64, next: &AccountState, entry: &HistoryEntry, history_expires_at: Timestamp) -> Result<bool, StoreError>;
    fn states(&self, accounts: &[String]) -> Result<HashMap<String, AccountState>, StoreError>;
    fn history(&self, account: &str, limit: usize) -> Result<Vec<HistoryEntry>, StoreError>;
});
pass_on!(PolicyStore {
    fn template_policy(&self) -> Result<TemplatePolicy, StoreError>;
    fn put_template_policy(&self, policy: &TemplatePolicy) -> Result<(), StoreError>;
});
pass_on!(MessageLedger {
    fn seen(&self, key: &str, now: Timestamp) -> Result<bool, StoreError>;
    fn remember(&self, key: &str, expires_at: Timestamp) -> Result<(), StoreError>;
    fn claim(&self, key: &str, owner: &str, now: Timestamp, expires_at: Timestamp) -> Result<bool, StoreError>;
    fn release(&self, keys: &[String]) -> Result<(), StoreError>;
});
pass_on!(SendLedger {
    fn claim_send(&self, record: &SendRecord, now: Timestamp) -> Result<SendClaim, StoreError>;
    fn mark_sent(&self, records: &[SendRecord]) -> Result<(), StoreError>;
    fn settle(&self, keys: &[SendKey], now: Timestamp) -> Result<usize, StoreError>;
    fn give_up(&self, keys: &[SendKey]) -> Result<(), StoreError>;
});
pass_on!(RateLedger {
    fn rate(&self, account: &str) -> Result<RateRecord, StoreError>;
    fn take(&self, account: &str, configured: &RateLimits, wanted: u64, now: Timestamp, read: Option<&RateRecord>) -> Result<Grant, StoreError>;
    fn set_limits(&self, account: &str, patch: &LimitsPatch) -> Result<(), StoreError>;
    fn refill(&self, account: &str, configured: &RateLimits, now: Timestamp) -> Result<(), StoreError>;
});
pass_on!(GateRead {
    fn gate_view(&self, recipients: &[EmailAddress], accounts: &[String], domains: &[String]) -> Result<GateView, StoreError>;
});
pass_on!(AuditLog {
    fn record(&self, entry: &AuditEntry, expires_at: Timestamp) -> Result<(), StoreError>;
    fn audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;
});

pass_on!(JobLedger {
    fn job(&self, id: &str) -> Result<Option<JobProgress>, StoreError>;
    fn save_job(&self, progress: &JobProgress) -> Result<bool, StoreError>;
});
pass_on!(DomainLedger {
    fn domains(&self, domains: &[String], now: Timestamp) -> Result<Vec<DomainRecord>, StoreError>;
    fn put_domains(&self, records: &[DomainRecord]) -> Result<(), StoreError>;
    fn count_prevented(&self, day: &str, counts: &BTreeMap<PreventedKey, u64>) -> Result<(), StoreError>;
    fn prevented(&self, day: &str) -> Result<BTreeMap<PreventedKey, u64>, StoreError>;
});

// --- SES, with its faults ------------------------------------------------------------------

/// What SES does to the next calls.
#[derive(Debug, Clone, PartialEq)]
enum SesFault {
    None,
    /// Accepts, then the answer is lost (a timeout): the next `n` calls.
    TimeoutAfterAccepting(u32),
    /// Refuses for the sending rate: the next `n` calls.
    Throttling(u32),
    /// Refuses every call through this account: its credentials are refused.
    AccessDenied(&'static str),
    /// Accepts call number `n` (from 1), then never answers: the instance dies there.
    HangAfterAccepting(u32),
}

/// SES as the sender sees it: what it accepted, per recipient (every request of the suite has
/// its own), and the `Send` events it publishes.
struct Ses {
    fault: Mutex<SesFault>,
    calls: AtomicU32,
    accepted: Mutex<BTreeMap<String, u32>>,
    events: Mutex<Vec<Value>>,
    clock: Arc<FixedClock>,
    died: Arc<tokio::sync::Notify>,
}

impl Ses {
    fn accept(&self, mail: &OutgoingMail) -> String {
        let to = mail.to[0].as_str().to_owned();
        *self.accepted.lock().unwrap().entry(to).or_default() += 1;
        let id = format!("ses-{}", self.calls.load(Ordering::SeqCst));
        let event = SesEvent::send(&id)
            .tags(&mail.tags)
            .to([mail.to[0].as_str()])
            .source(&mail.from)
            .sent_at(&self.clock_now());
        self.events.lock().unwrap().push(event.published());
        id
    }

    fn clock_now(&self) -> String {
        use sesguard::ports::Clock;
        self.clock.now().to_string()
    }
}

#[async_trait]
impl MailTransport for Ses {
    async fn send(&self, mail: &OutgoingMail) -> Result<String, TransportError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let refused = |failure, ambiguous| TransportError {
            account: mail.account.clone(),
            failure,
            detail: format!("injected {failure:?}"),
            ambiguous,
        };
        let fault = self.fault.lock().unwrap().clone();
        match fault {
            SesFault::TimeoutAfterAccepting(n) if n > 0 => {
                *self.fault.lock().unwrap() = SesFault::TimeoutAfterAccepting(n - 1);
                self.accept(mail);
                Err(refused(SendFailure::Transient, true))
            }
            SesFault::Throttling(n) if n > 0 => {
                *self.fault.lock().unwrap() = SesFault::Throttling(n - 1);
                Err(refused(SendFailure::Rate, false))
            }
            SesFault::AccessDenied(account) if account == mail.account => {
                Err(refused(SendFailure::AccessDenied, false))
            }
            SesFault::HangAfterAccepting(n) if n == call => {
                self.accept(mail);
                self.died.notify_one();
                std::future::pending().await
            }
            _ => Ok(self.accept(mail)),
        }
    }
}

/// Quotas from the configuration, except the backup's, whose role cannot be assumed when
/// `sts_down` is set.
struct Quotas {
    sts_down: bool,
}

#[async_trait]
impl SesAccount for Quotas {
    async fn send_quota(&self, account: &str) -> Result<SendQuota, SesError> {
        Err(SesError {
            account: account.into(),
            action: "GetAccount",
            source: if self.sts_down && account == "backup" {
                "dispatch failure: failed to load credentials: AssumeRole: service error: ExpiredToken".into()
            } else {
                "not asked: the quota is configured".into()
            },
            permanent: !self.sts_down,
        })
    }
    async fn set_sending(&self, _: &str, _: bool) -> Result<bool, SesError> {
        Ok(false)
    }
    async fn list_suppressed(
        &self,
        account: &str,
        _: Option<String>,
    ) -> Result<(Vec<(EmailAddress, Reason)>, Option<String>), SesError> {
        Err(SesError {
            account: account.into(),
            action: "ListSuppressedDestinations",
            source: "not used".into(),
            permanent: true,
        })
    }
    async fn put_suppressed(&self, _: &str, _: &EmailAddress, _: Reason) -> Result<(), SesError> {
        Ok(())
    }
}

// --- The queue -----------------------------------------------------------------------------

const QUEUE_ARN: &str = "arn:aws:sqs:us-east-1:111111111111:sesguard-send";
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(180);
const MAX_RECEIVES: u32 = 10;

#[derive(Debug, Clone)]
struct Message {
    id: String,
    body: String,
    attributes: BTreeMap<String, String>,
    receives: u32,
    visible_at: Timestamp,
    receipt: String,
}

/// SQS as the sender function meets it.
struct Queue {
    messages: Mutex<Vec<Message>>,
    dead: Mutex<Vec<Message>>,
    next: AtomicU32,
    clock: Arc<FixedClock>,
    /// The next `n` ChangeMessageVisibility calls fail.
    visibility_down: AtomicU32,
    /// How many messages the function put back.
    requeued: AtomicU32,
    /// The most receives any message had.
    most_receives: AtomicU32,
}

impl Queue {
    fn now(&self) -> Timestamp {
        use sesguard::ports::Clock;
        self.clock.now()
    }

    fn send(&self, body: String, attributes: BTreeMap<String, String>, delay: Duration) {
        let id = format!("m{}", self.next.fetch_add(1, Ordering::SeqCst));
        self.messages.lock().unwrap().push(Message {
            receipt: String::new(),
            id,
            body,
            attributes,
            receives: 0,
            visible_at: self.now().plus(delay),
        });
    }

    /// Up to ten visible messages as a Lambda SQS event's records; past `MAX_RECEIVES`, a
    /// message goes to the dead-letter queue instead.
    fn receive(&self) -> Vec<Value> {
        let now = self.now();
        let mut messages = self.messages.lock().unwrap();
        let mut records = Vec::new();
        let mut dead = Vec::new();
        for message in messages.iter_mut().filter(|m| m.visible_at <= now) {
            if records.len() == 10 {
                break;
            }
            if message.receives >= MAX_RECEIVES {
                dead.push(message.id.clone());
                continue;
            }
            message.receives += 1;
            self.most_receives
                .fetch_max(message.receives, Ordering::SeqCst);
            message.visible_at = now.plus(VISIBILITY_TIMEOUT);
            message.receipt = format!("{}#{}", message.id, message.receives);
            let attributes: BTreeMap<&String, Value> = message
                .attributes
                .iter()
                .map(|(k, v)| (k, json!({"stringValue": v, "dataType": "String"})))
                .collect();
            records.push(json!({
                "messageId": message.id, "receiptHandle": message.receipt, "body": message.body,
                "attributes": {"ApproximateReceiveCount": message.receives.to_string()},
                "messageAttributes": attributes, "eventSource": "aws:sqs", "eventSourceARN": QUEUE_ARN,
            }));
        }
        let (gone, kept): (Vec<Message>, Vec<Message>) =
            messages.drain(..).partition(|m| dead.contains(&m.id));
        *messages = kept;
        self.dead.lock().unwrap().extend(gone);
        records
    }

    /// The event source's part after the function answered: what did not fail is deleted.
    fn settle(&self, records: &[Value], failed: &[String]) {
        let ids: Vec<&str> = records
            .iter()
            .filter_map(|r| r["messageId"].as_str())
            .filter(|id| !failed.iter().any(|f| f == id))
            .collect();
        self.messages
            .lock()
            .unwrap()
            .retain(|m| !ids.contains(&m.id.as_str()));
    }

    fn holds(&self, recipient: &str) -> bool {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.body.contains(recipient))
    }
}

#[async_trait]
impl QueueVisibility for Queue {
    async fn delay(
        &self,
        _queue_url: &str,
        messages: &[(String, u64)],
    ) -> Result<Vec<(String, String)>, QueueError> {
        let down = self.visibility_down.load(Ordering::SeqCst);
        if down > 0 {
            self.visibility_down.store(down - 1, Ordering::SeqCst);
            return Err(QueueError {
                queue: QUEUE_ARN.into(),
                source: "injected: ChangeMessageVisibility failed".into(),
            });
        }
        let now = self.now();
        let mut held = self.messages.lock().unwrap();
        for (receipt, seconds) in messages {
            if let Some(m) = held.iter_mut().find(|m| &m.receipt == receipt) {
                m.visible_at = now.plus(Duration::from_secs((*seconds).min(12 * 3600)));
            }
        }
        Ok(Vec::new())
    }

    async fn requeue(
        &self,
        _queue_url: &str,
        messages: &[Requeue],
    ) -> Result<Vec<(usize, String)>, QueueError> {
        self.requeued
            .fetch_add(messages.len() as u32, Ordering::SeqCst);
        for m in messages {
            let attributes = BTreeMap::from([
                ("sesguard-origin".to_owned(), m.origin.clone()),
                ("sesguard-hops".to_owned(), m.hops.to_string()),
            ]);
            self.send(
                m.body.clone(),
                attributes,
                Duration::from_secs(m.delay_seconds.min(900)),
            );
        }
        Ok(Vec::new())
    }
}

// --- The world -----------------------------------------------------------------------------

const STEP: Duration = Duration::from_secs(30);
const START: &str = "2026-11-20T13:00:00.000Z";

struct World {
    function: SenderFunction,
    context: Context,
    store: Arc<Faulty>,
    ses: Arc<Ses>,
    queue: Arc<Queue>,
    clock: Arc<FixedClock>,
    /// Told when the invocation under way dies (a call that never answers).
    died: Arc<tokio::sync::Notify>,
    /// Whether SES publishes Send events that reach ingest.
    events: bool,
    /// The last decision about each request, by recipient.
    decisions: BTreeMap<String, Decision>,
    /// When each request was sent, by recipient.
    sent_at: BTreeMap<String, Timestamp>,
    /// How many deferrals the function decided.
    deferrals: u32,
    /// How many invocations died.
    deaths: u32,
}

fn world(store: Arc<dyn Store>, configure: impl FnOnce(&mut sesguard::config::Config)) -> World {
    let died = Arc::new(tokio::sync::Notify::new());
    let store = Arc::new(Faulty::new(store, died.clone()));
    let mut sts_down = false;
    let base = crate::world::World::builder()
        .configure(|config| {
            for account in &mut config.accounts {
                account.send_count_source = SendSource::Sender;
            }
            configure(config);
            sts_down = config.accounts.iter().any(|a| a.daily_quota.is_none());
        })
        .store(store.clone())
        .at(START)
        .build();
    let clock = base.clock;
    let ses = Arc::new(Ses {
        died: died.clone(),
        fault: Mutex::new(SesFault::None),
        calls: AtomicU32::new(0),
        accepted: Mutex::new(BTreeMap::new()),
        events: Mutex::new(Vec::new()),
        clock: clock.clone(),
    });
    let queue = Arc::new(Queue {
        messages: Mutex::new(Vec::new()),
        dead: Mutex::new(Vec::new()),
        next: AtomicU32::new(0),
        clock: clock.clone(),
        visibility_down: AtomicU32::new(0),
        requeued: AtomicU32::new(0),
        most_receives: AtomicU32::new(0),
    });
    let mut context = base.deps;
    context.transport = ses.clone();
    context.ses = Arc::new(Quotas { sts_down });
    let function = SenderFunction {
        context: context.clone(),
        visibility: Some(queue.clone()),
        memory: Default::default(),
    };
    World {
        function,
        context,
        store,
        ses,
        queue,
        clock,
        died,
        events: true,
        decisions: BTreeMap::new(),
        sent_at: BTreeMap::new(),
        deferrals: 0,
        deaths: 0,
    }
}

/// Twelve requests, each to its own recipient: four transactional with idempotency keys, four
/// verification and four bulk without (their queue message is their identity).
fn requests() -> Vec<(String, String)> {
    (0..12)
        .map(|i| {
            let to = format!("r{i}@example.com");
            let body = match i % 3 {
                0 => json!({"stream": "transactional", "to": [to], "subject": "Receipt", "text": "t", "idempotency_key": format!("order-{i}")}),
                1 => json!({"stream": "verification", "to": [to], "subject": "Verify", "text": "t"}),
                _ => json!({"stream": "bulk", "to": [to], "subject": "News", "text": "t"}),
            };
            (to, body.to_string())
        })
        .collect()
}

impl World {
    fn now(&self) -> Timestamp {
        use sesguard::ports::Clock;
        self.clock.now()
    }

    /// Lets `steps` steps pass: every step, SES's Send events of the step before reach
    /// ingest, then the function takes batches until the queue shows nothing.
    async fn run(&mut self, steps: u32) {
        for _ in 0..steps {
            self.clock.set(&self.now().plus(STEP).to_string());
            let events: Vec<Value> = std::mem::take(&mut *self.ses.events.lock().unwrap());
            if self.events && !events.is_empty() {
                let inbound = sesguard::lambda::ingest::decode(
                    crate::helpers::sqs_batch(events.clone()),
                    "send-events",
                )
                .1;
                let report = Ingestor::of(&self.context)
                    .ingest(inbound, self.now())
                    .await;
                let failed: Vec<Value> = events
                    .into_iter()
                    .zip(&report.records)
                    .filter(|(_, (_, outcome))| outcome.name() == "failed")
                    .map(|(event, _)| event)
                    .collect();
                // SQS would redeliver them: they come back in the next step.
                self.ses.events.lock().unwrap().extend(failed);
            }
            loop {
                let records = self.queue.receive();
                if records.is_empty() {
                    break;
                }
                let now = self.now();
                let invocation = process(&self.function, records.clone(), now);
                let answered = tokio::select! {
                    answered = invocation => Some(answered),
                    () = self.died.notified() => None,
                };
                let Some((response, judged)) = answered else {
                    // The instance died: nothing answered, the event source deletes nothing.
                    self.deaths += 1;
                    continue;
                };
                let failed: Vec<String> = response
                    .batch_item_failures
                    .iter()
                    .map(|f| f.item_identifier.clone())
                    .collect();
                self.queue.settle(&records, &failed);
                self.note(&records, &judged);
            }
        }
    }

    fn note(&mut self, records: &[Value], judged: &[Judged]) {
        for judged in judged {
            let Some(record) = records.iter().find(|r| r["messageId"] == judged.id) else {
                continue;
            };
            let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
            let to = body["to"][0].as_str().unwrap().to_owned();
            match &judged.decision {
                Decision::Sent { .. } => {
                    self.sent_at.insert(to.clone(), self.now());
                }
                Decision::Deferred { .. } => self.deferrals += 1,
                _ => {}
            }
            self.decisions.insert(to, judged.decision.clone());
        }
    }

    /// Each request's ending, checked: the row of the table.
    async fn ending(&self, requests: &[(String, String)]) -> Row {
        let accepted = self.ses.accepted.lock().unwrap().clone();
        let dead = self.queue.dead.lock().unwrap().clone();
        let mut row = Row::default();
        for (to, _) in requests {
            let times = accepted.get(to).copied().unwrap_or(0);
            let queued = self.queue.holds(to);
            let refused = matches!(
                self.decisions.get(to),
                Some(
                    Decision::Rejected { .. }
                        | Decision::Blocked { .. }
                        | Decision::Suppressed { .. }
                        | Decision::Invalid { .. }
                )
            );
            match (times, queued, refused) {
                (1, false, _) => row.sent += 1,
                (0, false, true) => row.refused += 1,
                (0, true, _) => row.queued += 1,
                _ => panic!(
                    "{to}: reached SES {times} times, queued: {queued}, last decision {:?}",
                    self.decisions.get(to)
                ),
            }
            row.twice += u32::from(times > 1);
        }
        assert!(dead.is_empty(), "in the dead-letter queue: {dead:?}");
        let mut counted = 0;
        for account in ["primary", "backup"] {
            let window = self
                .context
                .store
                .window(
                    account,
                    self.now().minus(Duration::from_secs(86_400)),
                    self.now(),
                )
                .await
                .unwrap();
            counted += window.buckets.iter().map(|b| b.total.sends).sum::<u64>();
        }
        row.counted = counted;
        row.accepted = accepted.values().sum::<u32>() as u64;
        row.deaths = self.deaths;
        row.deferrals = self.deferrals;
        row.requeued = self.queue.requeued.load(Ordering::SeqCst);
        row
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Row {
    sent: u32,
    refused: u32,
    queued: u32,
    twice: u32,
    accepted: u64,
    counted: u64,
    deaths: u32,
    deferrals: u32,
    requeued: u32,
}

/// One fault: how it is set up, and the ending expected.
struct Fault {
    name: &'static str,
    configure: fn(&mut sesguard::config::Config),
    inject: fn(&World),
    /// Requests expected still queued (none otherwise).
    queued: u32,
    /// Whether requests are deferred on the way.
    defers: bool,
}

fn no_change(_: &mut sesguard::config::Config) {}

fn faults() -> Vec<Fault> {
    vec![
        Fault {
            name: "none",
            configure: no_change,
            inject: |_| {},
            queued: 0,
            defers: false,
        },
        Fault {
            name: "store down before the claim",
            configure: no_change,
            inject: |w| w.store.fail("claim_send", 3),
            queued: 0,
            defers: true,
        },
        Fault {
            name: "store down between SES accepting and the record",
            configure: no_change,
            inject: |w| w.store.fail("mark_sent", 2),
            queued: 0,
            defers: false,
        },
        Fault {
            name: "store down before the count",
            configure: no_change,
            inject: |w| w.store.fail("apply", 5),
            queued: 0,
            defers: false,
        },
        Fault {
            name: "SES timeout after accepting",
            configure: no_change,
            inject: |w| *w.ses.fault.lock().unwrap() = SesFault::TimeoutAfterAccepting(3),
            queued: 0,
            defers: true,
        },
        Fault {
            name: "store down when the Send event settles",
            configure: no_change,
            inject: |w| {
                *w.ses.fault.lock().unwrap() = SesFault::TimeoutAfterAccepting(2);
                w.store.fail("settle", 1);
            },
            queued: 0,
            defers: true,
        },
        Fault {
            name: "SES throttling storm",
            configure: no_change,
            inject: |w| *w.ses.fault.lock().unwrap() = SesFault::Throttling(8),
            queued: 0,
            defers: true,
        },
        Fault {
            name: "STS failure for the backup",
            configure: |c| c.accounts[1].daily_quota = None,
            inject: |_| {},
            queued: 0,
            defers: false,
        },
        Fault {
            name: "AccessDenied on the primary",
            configure: no_change,
            inject: |w| *w.ses.fault.lock().unwrap() = SesFault::AccessDenied("primary"),
            // The bulk stream has no other account: its four wait for an operator.
            queued: 4,
            defers: true,
        },
        Fault {
            name: "ChangeMessageVisibility failing",
            configure: no_change,
            inject: |w| {
                *w.ses.fault.lock().unwrap() = SesFault::Throttling(3);
                w.queue.visibility_down.store(5, Ordering::SeqCst);
            },
            queued: 0,
            defers: true,
        },
        Fault {
            name: "instance dies after the claims, before SES",
            configure: no_change,
            // The third request's content claim (a bulk one: its debounce, an hour, outlasts
            // the redelivery) never answers.
            inject: |w| *w.store.hang.lock().unwrap() = Some(("claim", 2)),
            queued: 0,
            defers: true,
        },
        Fault {
            name: "instance dies between send and record",
            configure: no_change,
            inject: |w| *w.ses.fault.lock().unwrap() = SesFault::HangAfterAccepting(3),
            queued: 0,
            defers: false,
        },
    ]
}

/// Every fault, each on its own store: the table, checked row by row.
async fn suite(stores: Vec<Arc<dyn Store>>) -> Vec<(&'static str, Row)> {
    let mut table = Vec::new();
    assert_eq!(stores.len(), faults().len());
    for (fault, store) in faults().into_iter().zip(stores) {
        let mut world = world(store, fault.configure);
        let requests = requests();
        for (_, body) in &requests {
            world
                .queue
                .send(body.clone(), BTreeMap::new(), Duration::ZERO);
        }
        (fault.inject)(&world);
        // Two simulated hours: every pause, backoff and doubt window has run out.
        world.run(240).await;
        let row = world.ending(&requests).await;
        assert_eq!(row.twice, 0, "{}: {row:?}", fault.name);
        assert_eq!(row.queued, fault.queued, "{}: {row:?}", fault.name);
        if row.queued > 0 {
            assert!(
                row.requeued > 0,
                "{}: a long wait goes back into the queue: {row:?}",
                fault.name
            );
        }
        assert_eq!(
            row.sent + row.refused + row.queued,
            12,
            "{}: {row:?}",
            fault.name
        );
        assert_eq!(
            row.deferrals > 0,
            fault.defers,
            "{}: the fault shows in deferrals: {row:?}",
            fault.name
        );
        if world.deaths == 0 {
            assert_eq!(
                row.counted, row.accepted,
                "{}: every send counted once",
                fault.name
            );
        }
        table.push((fault.name, row));
    }
    println!(
        "| fault | sent | refused | still queued | reached SES twice | in the DLQ | deferrals on the way | put back into the queue | sends counted / accepted |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, row) in &table {
        println!(
            "| {name} | {} | {} | {} | {} | 0 | {} | {} | {} / {} |",
            row.sent,
            row.refused,
            row.queued,
            row.twice,
            row.deferrals,
            row.requeued,
            row.counted,
            row.accepted
        );
    }
    table
}

#[tokio::test]
async fn every_fault_ends_each_request_once_on_the_embedded_store() {
    let (dirs, stores): (Vec<_>, Vec<Arc<dyn Store>>) = faults()
        .iter()
        .map(|_| {
            let (dir, store) = crate::helpers::sqlite();
            (dir, Arc::new(store) as Arc<dyn Store>)
        })
        .unzip();
    suite(stores).await;
    drop(dirs);
}

#[tokio::test]
async fn every_fault_ends_each_request_once_on_the_local_dynamodb_server() {
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in faults() {
        stores.push(Arc::new(crate::helpers::dynamodb().await));
    }
    suite(stores).await;
}

#[tokio::test]
async fn without_send_events_a_send_in_doubt_goes_again_after_the_doubt_window() {
    // The documented limit: nothing settles an attempt in doubt, so it is tried again.
    let (_dir, store) = crate::helpers::sqlite();
    let mut world = world(Arc::new(store), no_change);
    world.events = false;
    let requests = requests();
    for (_, body) in &requests {
        world
            .queue
            .send(body.clone(), BTreeMap::new(), Duration::ZERO);
    }
    *world.ses.fault.lock().unwrap() = SesFault::TimeoutAfterAccepting(1);
    world.run(19).await;
    assert_eq!(
        world.ses.accepted.lock().unwrap()["r0@example.com"],
        1,
        "in doubt for ten minutes"
    );
    world.run(4).await;
    assert_eq!(world.ses.accepted.lock().unwrap()["r0@example.com"], 2);
}

/// The seed incident's wait: the primary's daily quota is used up at the start; what is
/// deferred then goes when the quota frees, 24 hours later, put back into the queue on the
/// way, never in the dead-letter queue.
async fn a_daily_quota_wait(store: Arc<dyn Store>) {
    let mut world = world(store, |c| {
        c.accounts[0].daily_quota = Some(6);
        c.guard.quota_reserve = 0.0;
    });
    let requests: Vec<(String, String)> = (0..12)
        .map(|i| {
            let to = format!("r{i}@example.com");
            let body = json!({"stream": "bulk", "to": [to], "subject": "News", "text": "t"});
            (to, body.to_string())
        })
        .collect();
    for (_, body) in &requests {
        world
            .queue
            .send(body.clone(), BTreeMap::new(), Duration::ZERO);
    }
    let start = world.now();
    world.run(2 * 26 * 60).await;
    let row = world.ending(&requests).await;
    assert_eq!((row.sent, row.twice, row.queued), (12, 0, 0), "{row:?}");
    let late: Vec<Duration> = world
        .sent_at
        .values()
        .map(|at| at.since(start))
        .filter(|waited| *waited > Duration::from_secs(3600))
        .collect();
    assert_eq!(
        late.len(),
        6,
        "six waited for the quota: {:?}",
        world.sent_at
    );
    assert!(
        late.iter().all(|w| *w >= Duration::from_secs(24 * 3600)),
        "{late:?}"
    );
    assert!(
        world.queue.most_receives.load(Ordering::SeqCst) < MAX_RECEIVES,
        "never near the dead-letter queue"
    );
}

#[tokio::test]
async fn a_24_hour_quota_wait_sends_the_deferred_mail_when_the_quota_returns_on_the_embedded_store()
{
    let (_dir, store) = crate::helpers::sqlite();
    a_daily_quota_wait(Arc::new(store)).await;
}

#[tokio::test]
async fn a_24_hour_quota_wait_sends_the_deferred_mail_when_the_quota_returns_on_the_local_dynamodb_server()
 {
    a_daily_quota_wait(Arc::new(crate::helpers::dynamodb().await)).await;
}
