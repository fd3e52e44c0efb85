//! Operations as a use case: what the admin function and the `sesguard` CLI both do — see
//! accounts and why mail does or does not go, pause and resume accounts and streams, change
//! send-rate limits, edit, import and export the suppression list, sync it with SES's
//! account-level list, change the template policy, and check addresses before mailing them. Every change records who and why:
//! account transitions in the account's history, everything else in the audit log.

use std::time::Duration;

use serde::Serialize;

use crate::app::Context;
use crate::app::control::{Action, Control, ControlError};
use crate::app::prevent::{Lookups, PreventionStatus, Screen};
use crate::app::status::{self, AccountStatus, StatusError};
use crate::domain::common::address::EmailAddress;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::feedback::suppression::{Reason, Suppression};
use crate::domain::reputation::history::HistoryEntry;
use crate::domain::sending::prevention::Check;
use crate::domain::sending::rate_limit::{LimitsPatch, Periods, RateLimits};
use crate::domain::sending::template_policy::TemplatePolicy;
use crate::ports::{AuditEntry, ManualSuppression, Page, SesError, StoreError};

mod import;
mod ses_lists;
pub use import::{IMPORT_CHUNK, ImportReport, Importer, InvalidLine, LineFormat};
pub use ses_lists::{ImportStep, JobStatus, PUSH_STEP, PushStep};

/// The most addresses one check takes.
pub const CHECK_LIMIT: usize = 1000;

/// Prevention's answers for some addresses.
#[derive(Debug, Clone, Serialize)]
pub struct AddressChecks {
    /// One per address, in the order asked.
    pub results: Vec<Check>,
    /// Where the DNS answers came from.
    pub lookups: Lookups,
}

/// Why an operation was refused or failed. Each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Nothing by that name (404).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or names something impossible (400).
    #[error("{0}")]
    Invalid(String),
    /// The change makes no sense in the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// The store failed (503).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// SES failed (502), or cannot be asked at all in this run (409).
    #[error(transparent)]
    Ses(#[from] SesError),
}

impl AdminError {
    /// The HTTP status that says what went wrong.
    pub fn http_status(&self) -> u16 {
        match self {
            AdminError::NotFound(_) => 404,
            AdminError::Invalid(_) => 400,
            AdminError::Conflict(_) => 409,
            AdminError::Store(_) => 503,
            // SES cannot be asked about this account at all (a local run): not a fault of SES.
            AdminError::Ses(error) if error.permanent => 409,
            AdminError::Ses(_) => 502,
        }
    }
}

impl From<ControlError> for AdminError {
    fn from(error: ControlError) -> Self {
        match error {
            ControlError::UnknownAccount(_) | ControlError::UnknownStream { .. } => {
                AdminError::NotFound(error.to_string())
            }
            ControlError::Conflict(message) => AdminError::Conflict(message),
            ControlError::NoReason => AdminError::Invalid(error.to_string()),
            ControlError::Store(error) => AdminError::Store(error),
        }
    }
}

impl From<StatusError> for AdminError {
    fn from(error: StatusError) -> Self {
        match error {
            StatusError::UnknownAccount(_) => AdminError::NotFound(error.to_string()),
            StatusError::Store(error) => AdminError::Store(error),
        }
    }
}

/// An account's send-rate limits: as configured, the operators' patch, and in force.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitsView {
    /// The account.
    pub account: String,
    /// From the configuration (the account's send rate with `[accounts.limits]` over it).
    pub configured: RateLimits,
    /// Operators' changes over the configured limits.
    pub patch: LimitsPatch,
    /// The limits in force.
    pub effective: RateLimits,
    /// Their use now.
    pub periods: Periods,
}

/// Operations over the [`Context`], on behalf of one actor.
pub struct Admin<'a> {
    deps: &'a Context,
    actor: String,
}

fn require_reason(reason: &str) -> Result<(), AdminError> {
    if !crate::app::control::reason_given(reason) {
        return Err(AdminError::Invalid(
            "a reason is required: say why, it is recorded".into(),
        ));
    }
    Ok(())
}

impl<'a> Admin<'a> {
    /// Operations by `actor` (an operator's name or an IAM caller), recorded as
    /// `operator:ACTOR`.
    pub fn of(context: &'a Context, actor: impl Into<String>) -> Self {
        Self {
            deps: context,
            actor: actor.into(),
        }
    }

    fn known_account(&self, name: &str) -> Result<(), AdminError> {
        match self.deps.config.account(name) {
            Some(_) => Ok(()),
            None => Err(AdminError::NotFound(format!(
                "unknown account `{name}`: not in the configuration"
            ))),
        }
    }

    async fn audit(
        &self,
        action: &str,
        target: &str,
        reason: &str,
        detail: serde_json::Value,
        now: Timestamp,
    ) -> Result<(), AdminError> {
        let entry = AuditEntry {
            at: now,
            actor: format!("operator:{}", self.actor),
            action: action.to_owned(),
            target: target.to_owned(),
            reason: reason.to_owned(),
            detail,
        };
        let expires_at = now.plus(self.deps.config.guard.history_ttl);
        self.deps.store.record(&entry, expires_at).await?;
        Ok(())
    }

    /// Every account's status.
    pub async fn accounts(&self, now: Timestamp) -> Result<Vec<AccountStatus>, AdminError> {
        let deps = self.deps;
        Ok(status::status(deps, now, None).await?)
    }

    /// Prevention today: per stream, what it refused and flagged, by reason.
    pub async fn prevention(&self, now: Timestamp) -> Result<PreventionStatus, AdminError> {
        Ok(Screen::of(self.deps).today(now).await?)
    }

    /// One account's status.
    pub async fn account(&self, name: &str, now: Timestamp) -> Result<AccountStatus, AdminError> {
        let deps = self.deps;
        let found = status::status(deps, now, Some(name)).await?;
        found
            .into_iter()
            .next()
            .ok_or_else(|| AdminError::NotFound(format!("unknown account `{name}`")))
    }

    /// Pauses an account, or one stream on it; a pause of the account may end by itself.
    pub async fn pause(
        &self,
        name: &str,
        stream: Option<String>,
        duration: Option<Duration>,
        reason: &str,
        now: Timestamp,
    ) -> Result<HistoryEntry, AdminError> {
        if stream.is_some() && duration.is_some() {
            return Err(AdminError::Invalid(
                "`duration` applies to account pauses; a stream stays quarantined until resumed"
                    .into(),
            ));
        }
        let action = Action::Pause { stream, duration };
        self.control(name, &action, reason, now).await
    }

    /// Resumes a paused account, or a quarantined stream on it (409 when it is not), on the
    /// probation ramp unless `probation` is false; resuming one on probation ends it.
    pub async fn resume(
        &self,
        name: &str,
        stream: Option<String>,
        probation: bool,
        reason: &str,
        now: Timestamp,
    ) -> Result<HistoryEntry, AdminError> {
        let action = Action::Resume { stream, probation };
        self.control(name, &action, reason, now).await
    }

    async fn control(
        &self,
        name: &str,
        action: &Action,
        reason: &str,
        now: Timestamp,
    ) -> Result<HistoryEntry, AdminError> {
        let deps = self.deps;
        let control = Control::of(deps);
        Ok(control
            .apply(name, action, reason, &self.actor, now)
            .await?)
    }

    /// An account's transitions, newest first.
    pub async fn history(&self, name: &str, limit: usize) -> Result<Vec<HistoryEntry>, AdminError> {
        self.known_account(name)?;
        Ok(self.deps.store.history(name, limit).await?)
    }

    async fn configured_limits(&self, name: &str) -> Result<RateLimits, AdminError> {
        self.known_account(name)?;
        let deps = self.deps;
        Ok(status::configured_limits(&deps.config, deps.ses.as_ref(), name).await?)
    }

    /// An account's limits and their use now.
    pub async fn limits(&self, name: &str, now: Timestamp) -> Result<LimitsView, AdminError> {
        let configured = self.configured_limits(name).await?;
        let record = self.deps.store.rate(name).await?;
        let effective = record.limits(&configured);
        Ok(LimitsView {
            account: name.to_owned(),
            configured,
            patch: record.patch,
            effective,
            periods: effective.periods(record.state_at(&effective, now).as_ref(), now),
        })
    }

    /// Changes an account's limits at run time: `patch` goes over the operators' earlier
    /// changes; the next send batch applies it.
    pub async fn set_limits(
        &self,
        name: &str,
        patch: &LimitsPatch,
        reason: &str,
        now: Timestamp,
    ) -> Result<LimitsView, AdminError> {
        require_reason(reason)?;
        if patch.is_empty() {
            return Err(AdminError::Invalid(
                "nothing to change: give capacity, refill_per_second, per_minute, per_hour, per_day or enabled".into(),
            ));
        }
        let configured = self.configured_limits(name).await?;
        let record = self.deps.store.rate(name).await?;
        let next = record.patch.then(patch);
        next.apply(configured)
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        self.deps.store.set_limits(name, &next).await?;
        let detail = serde_json::json!({"before": record.patch, "after": next});
        self.audit("account.limits", name, reason, detail, now)
            .await?;
        self.limits(name, now).await
    }

    /// Fills an account's token bucket now.
    pub async fn refill(
        &self,
        name: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<LimitsView, AdminError> {
        require_reason(reason)?;
        let configured = self.configured_limits(name).await?;
        self.deps.store.refill(name, &configured, now).await?;
        self.audit("account.refill", name, reason, serde_json::Value::Null, now)
            .await?;
        self.limits(name, now).await
    }

    fn address(email: &str) -> Result<EmailAddress, AdminError> {
        EmailAddress::parse(email).map_err(|e| AdminError::Invalid(e.to_string()))
    }

    /// Prevention's answer for each of `addresses` (at most [`CHECK_LIMIT`]): whether mail to
    /// it can be delivered, why not, and the domain a typo probably meant. Nothing is sent or
    /// recorded but the DNS answers, kept for the next check.
    pub async fn check_addresses(
        &self,
        addresses: &[String],
        now: Timestamp,
    ) -> Result<AddressChecks, AdminError> {
        if addresses.is_empty() || addresses.len() > CHECK_LIMIT {
            return Err(AdminError::Invalid(format!(
                "{} addresses: check 1 to {CHECK_LIMIT} at a time",
                addresses.len()
            )));
        }
        let parsed = addresses
            .iter()
            .map(|a| Self::address(a))
            .collect::<Result<Vec<_>, _>>()?;
        let (results, lookups) = Screen::of(self.deps).check(&parsed, now).await;
        Ok(AddressChecks { results, lookups })
    }

    /// One address's suppression.
    pub async fn suppression(&self, email: &str) -> Result<Suppression, AdminError> {
        let email = Self::address(email)?;
        self.deps
            .store
            .get(&email)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("{email} is not suppressed")))
    }

    /// Suppresses an address by hand: `true` when it was not suppressed before (one that was
    /// keeps its reason).
    pub async fn suppress(
        &self,
        email: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<bool, AdminError> {
        require_reason(reason)?;
        let email = Self::address(email)?;
        let entry = ManualSuppression {
            email: email.clone(),
            reason: Reason::Manual,
        };
        let added = self.deps.store.suppress(&[entry], now).await? == 1;
        let detail = serde_json::json!({"added": added});
        self.audit("suppression.add", email.as_str(), reason, detail, now)
            .await?;
        Ok(added)
    }

    /// Lifts an address's suppression; the removed record goes into the audit log.
    pub async fn unsuppress(
        &self,
        email: &str,
        reason: &str,
        now: Timestamp,
    ) -> Result<Suppression, AdminError> {
        require_reason(reason)?;
        let email = Self::address(email)?;
        let removed = self
            .deps
            .store
            .unsuppress(&email)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("{email} is not suppressed")))?;
        let detail = serde_json::to_value(&removed).unwrap_or_default();
        self.audit("suppression.remove", email.as_str(), reason, detail, now)
            .await?;
        Ok(removed)
    }

    /// A page of suppressed addresses.
    pub async fn suppressions(
        &self,
        reason: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Suppression>, AdminError> {
        let reason = reason
            .map(str::parse::<Reason>)
            .transpose()
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        if !(1..=1000).contains(&limit) {
            return Err(AdminError::Invalid("`limit` must be 1 to 1000".into()));
        }
        Ok(self.deps.store.list(reason, cursor, limit).await?)
    }

    /// Starts an import of lines in `format` (the reason is checked now, before any write).
    pub fn importer(
        &self,
        format: LineFormat,
        reason: &str,
        now: Timestamp,
    ) -> Result<Importer<'a, '_>, AdminError> {
        require_reason(reason)?;
        Ok(Importer {
            admin: self,
            format,
            now,
            chunk: Vec::with_capacity(IMPORT_CHUNK),
            lines: 0,
            report: ImportReport::default(),
        })
    }

    /// The template policy.
    pub async fn policy(&self) -> Result<TemplatePolicy, AdminError> {
        Ok(self.deps.store.template_policy().await?)
    }

    /// Replaces the template policy.
    pub async fn set_policy(
        &self,
        policy: &TemplatePolicy,
        reason: &str,
        now: Timestamp,
    ) -> Result<TemplatePolicy, AdminError> {
        require_reason(reason)?;
        let before = self.deps.store.template_policy().await?;
        self.deps.store.put_template_policy(policy).await?;
        let detail = serde_json::json!({"before": before, "after": policy});
        self.audit("policy.templates", "templates", reason, detail, now)
            .await?;
        Ok(policy.clone())
    }

    /// The latest audit entries, newest first.
    pub async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, AdminError> {
        Ok(self.deps.store.audit(limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_lines_in_either_format_name_their_problem() {
        let csv = LineFormat::Csv;
        assert_eq!(csv.parse("email,reason").unwrap(), None, "a header");
        assert_eq!(csv.parse("  ").unwrap(), None);
        let entry = csv.parse("Jane@Example.com,complaint").unwrap().unwrap();
        assert_eq!(
            (entry.email.as_str(), entry.reason),
            ("jane@example.com", Reason::Complaint)
        );
        assert_eq!(
            csv.parse("a@example.com").unwrap().unwrap().reason,
            Reason::Manual
        );
        assert!(csv.parse("not an address").unwrap_err().contains("address"));
        assert!(
            csv.parse("a@example.com,angry")
                .unwrap_err()
                .contains("unknown suppression reason")
        );
        let jsonl = LineFormat::Jsonl;
        let entry = jsonl
            .parse(r#"{"email":"b@example.com","reason":"bounce"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(entry.reason, Reason::Bounce);
        assert!(
            jsonl
                .parse(r#"{"mail":"b@example.com"}"#)
                .unwrap_err()
                .contains("mail")
        );
        assert!("xml".parse::<LineFormat>().is_err());
    }

    #[test]
    fn exported_lines_import_again() {
        let suppression = Suppression {
            email: EmailAddress::parse("c@example.com").unwrap(),
            reason: Reason::SoftBounce,
            bounce_type: None,
            bounce_subtype: None,
            status: None,
            diagnostic_code: None,
            bounce_reason: None,
            complaint_feedback_type: None,
            count: 3,
            first_seen: Timestamp::from_millis(0),
            last_seen: Timestamp::from_millis(1000),
            message_id: None,
            feedback_id: None,
        };
        for format in [LineFormat::Csv, LineFormat::Jsonl] {
            let entry = format.parse(&format.line(&suppression)).unwrap().unwrap();
            assert_eq!(
                (entry.email, entry.reason),
                (suppression.email.clone(), Reason::SoftBounce)
            );
        }
    }
}
