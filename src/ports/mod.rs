//! The narrow interfaces the application needs from the outside world, owned here and
//! implemented by [`crate::adapters`]. Each trait is one capability, so a function
//! asks only for what it uses (`&dyn SuppressionList` to look up, `&dyn FeedbackLedger` to
//! record). The domain types cross these interfaces; no AWS or SQL type does. The ports a
//! composition chooses an adapter for (store, transport, SES account, alerts, queue) are also
//! `Any`, so that the composition root's tests can say which adapter it built.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use crate::domain::common::address::EmailAddress;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::plan::ChangeSet;
use crate::domain::feedback::suppression::{AddressState, Reason, Suppression};
use crate::domain::reputation::counters::Bucket;
use crate::domain::reputation::history::{Alert, HistoryEntry};
use crate::domain::reputation::ses_view::SesFigures;
use crate::domain::reputation::state::AccountState;
use crate::domain::sending::rate_limit::{Grant, LimitsPatch, RateLimits, RateState};
use crate::domain::sending::request::OutgoingMail;
use crate::domain::sending::send_record::{SendKey, SendRecord};
use crate::domain::sending::ses_failure::SendFailure;
use crate::domain::sending::template_policy::TemplatePolicy;

mod alert_sink;
mod audit_log;
mod certificate_source;
mod clock;
mod counter_window;
mod domain_ledger;
mod domain_resolver;
mod feedback_ledger;
mod gate_read;
mod guard_ledger;
mod job_ledger;
mod mail_transport;
mod message_ledger;
mod policy_store;
mod queue_visibility;
mod rate_ledger;
mod send_ledger;
mod ses_account;
mod ses_reputation;
mod store;
mod suppression_list;

pub use alert_sink::*;
pub use audit_log::*;
pub use certificate_source::*;
pub use clock::*;
pub use counter_window::*;
pub use domain_ledger::*;
pub use domain_resolver::*;
pub use feedback_ledger::*;
pub use gate_read::*;
pub use guard_ledger::*;
pub use job_ledger::*;
pub use mail_transport::*;
pub use message_ledger::*;
pub use policy_store::*;
pub use queue_visibility::*;
pub use rate_ledger::*;
pub use send_ledger::*;
pub use ses_account::*;
pub use ses_reputation::*;
pub use store::*;
pub use suppression_list::*;
