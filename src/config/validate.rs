//! Validation: every value the types alone do not check, refused with the key that holds it.

use super::*;

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

fn check_thresholds(t: &Thresholds, key: &str) -> Result<(), ConfigError> {
    let fraction = |v: f64| v > 0.0 && v < 1.0;
    let all = [
        t.bounce_warn,
        t.bounce_pause,
        t.bounce_critical,
        t.complaint_warn,
        t.complaint_pause,
        t.complaint_critical,
        t.dominance,
        t.recovery,
    ];
    if !all.into_iter().all(fraction) {
        return Err(invalid(
            key,
            "rates must be fractions between 0 and 1 (0.04 is 4 %)",
        ));
    }
    if !(t.confidence >= 0.5 && t.confidence < 1.0) {
        return Err(invalid(
            key,
            "confidence must be at least 0.5 and under 1 (0.95: each bound wrong at most 5 % of the time)",
        ));
    }
    if !(t.feedback_gap > 0.0 && t.feedback_gap.is_finite()) {
        return Err(invalid(
            key,
            "feedback_gap must be a positive fraction of the warn level (0.5: half of it)",
        ));
    }
    if !(t.bounce_warn < t.bounce_pause && t.bounce_pause <= t.bounce_critical) {
        return Err(invalid(
            key,
            "needs bounce_warn < bounce_pause <= bounce_critical",
        ));
    }
    if !(t.complaint_warn < t.complaint_pause && t.complaint_pause <= t.complaint_critical) {
        return Err(invalid(
            key,
            "needs complaint_warn < complaint_pause <= complaint_critical",
        ));
    }
    Ok(())
}

fn check_provider_lines(lines: &ProviderLines) -> Result<(), ConfigError> {
    let key = "guard.providers";
    let fraction = |v: f64| v > 0.0 && v < 1.0;
    if ![
        lines.block_rate,
        lines.complaint_warn,
        lines.complaint_critical,
    ]
    .into_iter()
    .all(fraction)
    {
        return Err(invalid(
            key,
            "rates must be fractions between 0 and 1 (0.05 is 5 %)",
        ));
    }
    if lines.complaint_warn >= lines.complaint_critical {
        return Err(invalid(key, "needs complaint_warn < complaint_critical"));
    }
    Ok(())
}

fn check_ses_metrics(m: &SesMetricsConfig) -> Result<(), ConfigError> {
    let text = humantime::format_duration;
    if m.lookback < Duration::from_secs(300) || m.lookback > Duration::from_secs(14 * 86400) {
        return Err(invalid(
            "ses_metrics.lookback",
            format!(
                "{} must be from 5m (one CloudWatch period) to 14d (an older figure is not SES's view now)",
                text(m.lookback)
            ),
        ));
    }
    if m.cache > Duration::from_secs(3600) {
        return Err(invalid(
            "ses_metrics.cache",
            format!(
                "{} must be at most 1h: the guard would judge on a figure older than that",
                text(m.cache)
            ),
        ));
    }
    if m.file.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
        return Err(invalid(
            "ses_metrics.file",
            "is empty: give a path, or leave it out",
        ));
    }
    Ok(())
}

/// `tables`: both names given.
fn check_tables(tables: &TablesConfig) -> Result<(), ConfigError> {
    if tables.suppressions.is_empty() {
        return Err(invalid("tables.suppressions", "is empty"));
    }
    if tables.state.is_empty() {
        return Err(invalid("tables.state", "is empty"));
    }
    Ok(())
}

/// `ingest`: the soft-bounce policy, and deduplication that outlasts the retries.
fn check_ingest(ingest: &IngestConfig) -> Result<(), ConfigError> {
    if ingest.soft_bounce_threshold == 0 {
        return Err(invalid(
            "ingest.soft_bounce_threshold",
            "must be at least 1",
        ));
    }
    if ingest.soft_bounce_window.is_zero() {
        return Err(invalid(
            "ingest.soft_bounce_window",
            "must be longer than zero",
        ));
    }
    if ingest.dedup_ttl < Duration::from_secs(3600) {
        return Err(invalid(
            "ingest.dedup_ttl",
            "must be at least 1h: SQS retries for days",
        ));
    }
    if ingest.report_dedup_ttl < Duration::from_secs(3600) {
        return Err(invalid(
            "ingest.report_dedup_ttl",
            "must be at least 1h: an ingest message is received up to 5 times, 3 minutes apart",
        ));
    }
    Ok(())
}

/// `sender`: how long a send stays in doubt, and when a message is requeued.
fn check_sender_queue(sender: &SenderConfig) -> Result<(), ConfigError> {
    if sender.in_doubt < Duration::from_secs(60) {
        return Err(invalid(
            "sender.in_doubt",
            "must be at least 1m: longer than SES events take to arrive",
        ));
    }
    if sender.requeue_after_receives == 0 {
        return Err(invalid(
            "sender.requeue_after_receives",
            "must be at least 1",
        ));
    }
    if sender.queue_visibility_timeout < Duration::from_secs(1) || sender.queue_max_receives == 0 {
        return Err(invalid(
            "sender.queue_visibility_timeout",
            format!(
                "{:?} with {} receives is no queue: the send queue's visibility timeout and maxReceiveCount are both at least 1",
                sender.queue_visibility_timeout, sender.queue_max_receives
            ),
        ));
    }
    if sender.token_life.is_zero() || sender.token_life > Duration::from_secs(5) {
        return Err(invalid(
            "sender.token_life",
            "must be more than 0s and at most 5s: a token older than its life is dropped, and \
             every second of its life costs the line a second's refill",
        ));
    }
    if sender.rate_wait > Duration::from_secs(10) {
        return Err(invalid(
            "sender.rate_wait",
            "must be at most 10s: a batch waits for each of its tokens in turn",
        ));
    }
    if sender.clock_skew > Duration::from_secs(1) {
        return Err(invalid(
            "sender.clock_skew",
            "must be at most 1s: instances further apart than that need their clocks fixed",
        ));
    }
    if sender.requeue_after_receives >= sender.queue_max_receives {
        return Err(invalid(
            "sender.requeue_after_receives",
            format!(
                "{} is not below the send queue's maxReceiveCount ({}): a deferred request would \
                 reach the dead-letter queue on receive {} before it is put back on receive {}",
                sender.requeue_after_receives,
                sender.queue_max_receives,
                sender.queue_max_receives,
                sender.requeue_after_receives
            ),
        ));
    }
    Ok(())
}

/// `window`: buckets of a minute or more, a whole number of them.
fn check_window(window: &WindowSection) -> Result<(), ConfigError> {
    let (length, bucket) = (window.length, window.bucket);
    if bucket < Duration::from_secs(60) {
        return Err(invalid("window.bucket", "must be at least 1m"));
    }
    if length < bucket || length.as_millis() % bucket.as_millis() != 0 {
        return Err(invalid(
            "window.length",
            "must be a whole number of buckets",
        ));
    }
    Ok(())
}

/// An account's place in AWS: its id, region, role and sender address.
fn check_account_identity(
    account: &AccountConfig,
    key: &dyn Fn(&str) -> String,
) -> Result<(), ConfigError> {
    if account.account_id.len() != 12 || !account.account_id.chars().all(|c| c.is_ascii_digit()) {
        return Err(invalid(
            key("account_id"),
            format!("`{}` is not a 12-digit AWS account id", account.account_id),
        ));
    }
    let region_ok = account.region.split('-').count() >= 3
        && account
            .region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !region_ok {
        return Err(invalid(
            key("region"),
            format!("`{}` is not an AWS region", account.region),
        ));
    }
    if let Some(arn) = &account.role_arn
        && !(arn.starts_with("arn:aws") && arn.contains(":iam::") && arn.contains(":role/"))
    {
        return Err(invalid(
            key("role_arn"),
            format!("`{arn}` is not an IAM role ARN"),
        ));
    }
    if let Some(from) = &account.from {
        EmailAddress::parse(from).map_err(|e| invalid(key("from"), e.to_string()))?;
    }
    Ok(())
}

/// `webhook`: a message's age under the replay memory, and topics that are SNS topic ARNs.
fn check_webhook(webhook: &WebhookConfig) -> Result<(), ConfigError> {
    let replay = crate::domain::sns::delivery::REPLAY_MEMORY;
    if webhook.max_age.is_zero() || webhook.max_age >= replay {
        return Err(invalid(
            "webhook.max_age",
            format!(
                "{} must be above 0 and under the {} message ids are remembered for replay protection",
                humantime::format_duration(webhook.max_age),
                humantime::format_duration(replay)
            ),
        ));
    }
    for (i, topic) in webhook.topics.iter().enumerate() {
        if crate::domain::sns::delivery::topic_region(topic).is_none() {
            return Err(invalid(
                format!("webhook.topics[{i}]"),
                format!("`{topic}` is not an SNS topic ARN"),
            ));
        }
    }
    Ok(())
}

/// `guard`: a probation ramp of rising shares, and a quota reserve below the whole quota.
fn check_guard(guard: &GuardConfig) -> Result<(), ConfigError> {
    let ramp = &guard.probation;
    if ramp.iter().any(|share| !(*share > 0.0 && *share < 1.0))
        || ramp.windows(2).any(|pair| pair[0] >= pair[1])
    {
        return Err(invalid(
            "guard.probation",
            format!("{ramp:?} must be shares above 0 and below 1, each larger than the one before"),
        ));
    }
    if !(0.0..1.0).contains(&guard.quota_reserve) {
        return Err(invalid(
            "guard.quota_reserve",
            "must be at least 0 and below 1",
        ));
    }
    Ok(())
}

/// `streams`: unique names, each naming known accounts, each once.
fn check_streams(streams: &[StreamConfig], accounts: &HashSet<&str>) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (i, stream) in streams.iter().enumerate() {
        let key = |field: &str| format!("streams[{i}].{field}");
        if !names.insert(stream.name.as_str()) {
            return Err(invalid(
                key("name"),
                format!("`{}` is used by another stream", stream.name),
            ));
        }
        if stream.accounts.is_empty() {
            return Err(invalid(key("accounts"), "must name at least one account"));
        }
        let mut seen = HashSet::new();
        for name in &stream.accounts {
            if !accounts.contains(name.as_str()) {
                return Err(invalid(
                    key("accounts"),
                    format!("names unknown account `{name}`"),
                ));
            }
            if !seen.insert(name.as_str()) {
                return Err(invalid(key("accounts"), format!("names `{name}` twice")));
            }
        }
    }
    Ok(())
}

impl Config {
    /// Checks every value that the types alone do not.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_tables(&self.tables)?;
        check_ingest(&self.ingest)?;
        check_sender_queue(&self.sender)?;
        check_window(&self.window)?;
        let names = self.check_accounts()?;
        check_thresholds(&self.default_thresholds(), "guard.thresholds")?;
        if self.sender.breaker_failures == 0 {
            return Err(invalid("sender.breaker_failures", "must be at least 1"));
        }
        check_webhook(&self.webhook)?;
        check_guard(&self.guard)?;
        check_ses_metrics(&self.ses_metrics)?;
        check_provider_lines(&self.guard.providers)?;
        check_streams(&self.streams, &names)
    }

    /// `accounts`: each one's name (unique), place in AWS and sending; returns their names.
    fn check_accounts(&self) -> Result<HashSet<&str>, ConfigError> {
        let mut names = HashSet::new();
        for (i, account) in self.accounts.iter().enumerate() {
            let key = |field: &str| format!("accounts[{i}].{field}");
            if !names.insert(account.name.as_str()) {
                return Err(invalid(
                    key("name"),
                    format!("`{}` is used by another account", account.name),
                ));
            }
            check_account_identity(account, &key)?;
            self.check_account_sending(account, &key)?;
        }
        Ok(names)
    }

    /// An account's sending: its quota, send rate, limits, thresholds and enforcement at SES.
    fn check_account_sending(
        &self,
        account: &AccountConfig,
        key: &dyn Fn(&str) -> String,
    ) -> Result<(), ConfigError> {
        if account.daily_quota == Some(0) {
            return Err(invalid(key("daily_quota"), "must be at least 1"));
        }
        if account
            .max_send_rate
            .is_some_and(|rate| !(rate > 0.0 && rate.is_finite()))
        {
            return Err(invalid(
                key("max_send_rate"),
                "must be a positive number of sends per second",
            ));
        }
        account
            .limits
            .apply(RateLimits::from_send_rate(1.0))
            .map_err(|e| invalid(key("limits"), e.to_string()))?;
        check_thresholds(&self.thresholds_for(&account.name), &key("thresholds"))?;
        if account.enforce_at_ses == Enforcement::ConfigurationSet
            && account.configuration_set.is_none()
        {
            return Err(invalid(
                key("enforce_at_ses"),
                "is `configuration_set` but the account has no `configuration_set`",
            ));
        }
        Ok(())
    }
}
