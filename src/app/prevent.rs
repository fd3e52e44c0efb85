//! Prevention as a use case: the DNS answers a batch of checks needs, each domain asked once —
//! from this instance's cache, else the store (one batched read), else the resolver (all at
//! once) — with the new answers kept in both for their TTL (clamped to
//! `prevention.min_ttl`..`max_ttl`); then each address checked with its domain's answer. A
//! store that fails is passed by (the resolver answers), and a resolver that fails answers
//! *unknown*: the mail goes, and this instance asks again after `prevention.min_ttl`. Bounces teach too: a domain a `host_unknown` bounce named is kept
//! as taking no mail for `prevention.learned_ttl`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use futures_util::future::join_all;
use serde::Serialize;

use crate::app::Context;
use crate::config::{DnsServer, PreventMode};
use crate::domain::common::address::EmailAddress;
use crate::domain::common::timestamp::Timestamp;
use crate::domain::sending::prevention::{
    Check, Dns, MailDomain, Undeliverable, disposable_domains,
};
use crate::ports::{AnswerSource, DomainRecord, PreventAction, StoreError};
use crate::telemetry::error_chain;

/// Where a batch's answers came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Lookups {
    /// Answered by this instance's cache.
    pub cached: u64,
    /// Read from the store.
    pub stored: u64,
    /// Asked of DNS, and answered.
    pub resolved: u64,
    /// Asked of DNS, and not answered (the mail goes).
    pub unknown: u64,
}

impl Lookups {
    /// Questions sent to DNS.
    pub fn asked(&self) -> u64 {
        self.resolved + self.unknown
    }
}

/// What a check still needs once this instance's cache has answered.
#[derive(Debug, Default)]
pub struct Pending {
    answers: HashMap<String, Dns>,
    /// The domains neither the cache nor anything else has answered yet.
    pub missing: Vec<String>,
    lookups: Lookups,
}

/// Prevention over a [`Context`].
pub struct Screen<'a> {
    deps: &'a Context,
}

impl<'a> Screen<'a> {
    /// Prevention over `deps`.
    pub fn of(deps: &'a Context) -> Self {
        Self { deps }
    }

    /// Checks `addresses`, asking DNS only for what neither the cache nor the store knows.
    pub async fn check(&self, addresses: &[EmailAddress], now: Timestamp) -> (Vec<Check>, Lookups) {
        let pending = self.pending(addresses, now);
        let stored = if pending.missing.is_empty() {
            Vec::new()
        } else {
            self.store_answers(&pending.missing, now).await
        };
        let (answers, lookups) = self.complete(pending, stored, now).await;
        (self.conclude(addresses, &answers), lookups)
    }

    /// The store's answers for `domains`; none when it fails (DNS is asked instead).
    async fn store_answers(&self, domains: &[String], now: Timestamp) -> Vec<DomainRecord> {
        match self.deps.store.domains(domains, now).await {
            Ok(records) => records,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "domain answers not read; asking DNS");
                Vec::new()
            }
        }
    }

    /// The answers this instance has for the domains `addresses` need, and the domains it
    /// lacks: the store is asked for those (with the sender's one read per batch).
    pub fn pending<'e>(
        &self,
        addresses: impl IntoIterator<Item = &'e EmailAddress>,
        now: Timestamp,
    ) -> Pending {
        let prevention = &self.deps.prevention;
        let domains: BTreeSet<&str> = addresses
            .into_iter()
            .filter_map(|a| prevention.domain_to_resolve(a))
            .collect();
        let mut pending = Pending::default();
        for domain in domains {
            match self.deps.domains.get(domain, now) {
                Some(answer) => {
                    pending.lookups.cached += 1;
                    pending.answers.insert(domain.to_owned(), answer);
                }
                None => pending.missing.push(domain.to_owned()),
            }
        }
        pending
    }

    /// Every answer `pending` needs: the unexpired `stored` ones, then DNS for the rest (all at
    /// once); the new answers are kept in the cache and the store.
    pub async fn complete(
        &self,
        pending: Pending,
        stored: Vec<DomainRecord>,
        now: Timestamp,
    ) -> (HashMap<String, Dns>, Lookups) {
        let Pending {
            mut answers,
            mut missing,
            mut lookups,
        } = pending;
        let stored: Vec<DomainRecord> = stored
            .into_iter()
            .filter(|r| r.expires_at > now && missing.contains(&r.domain))
            .collect();
        lookups.stored = stored.len() as u64;
        if !stored.is_empty() {
            self.deps.domains.keep(&stored, now);
        }
        for record in stored {
            answers.insert(record.domain, Dns::Known(record.answer));
        }
        missing.retain(|d| !answers.contains_key(d));
        if missing.is_empty() {
            return (answers, lookups);
        }
        let resolved = self.resolve(&missing, now).await;
        lookups.unknown = (missing.len() - resolved.len()) as u64;
        lookups.resolved = resolved.len() as u64;
        let unanswered: Vec<String> = missing
            .into_iter()
            .filter(|d| !resolved.iter().any(|r| &r.domain == d))
            .collect();
        // Not in the store: another instance's resolver may do better.
        let retry = now.plus(self.deps.config.prevention.min_ttl);
        self.deps.domains.keep_unknown(&unanswered, retry, now);
        for domain in unanswered {
            answers.insert(domain, Dns::Unknown);
        }
        self.keep(&resolved, now).await;
        for record in resolved {
            answers.insert(record.domain, Dns::Known(record.answer));
        }
        (answers, lookups)
    }

    /// Each address checked with its domain's answer among `answers` (unknown when absent).
    pub fn conclude<'e>(
        &self,
        addresses: impl IntoIterator<Item = &'e EmailAddress>,
        answers: &HashMap<String, Dns>,
    ) -> Vec<Check> {
        let prevention = &self.deps.prevention;
        addresses
            .into_iter()
            .map(|address| {
                let dns = prevention
                    .domain_to_resolve(address)
                    .map_or(Dns::NotNeeded, |d| {
                        answers.get(d).copied().unwrap_or(Dns::Unknown)
                    });
                prevention.check(address, dns)
            })
            .collect()
    }

    /// Asks DNS about `domains`, all at once; the answers that came.
    async fn resolve(&self, domains: &[String], now: Timestamp) -> Vec<DomainRecord> {
        let config = &self.deps.config.prevention;
        let resolver = self.deps.resolver.as_ref();
        let asked = join_all(domains.iter().map(|d| resolver.resolve(d))).await;
        asked
            .into_iter()
            .zip(domains)
            .filter_map(|(answer, domain)| match answer {
                Ok(resolved) => Some(DomainRecord {
                    domain: domain.clone(),
                    answer: resolved.answer,
                    source: AnswerSource::Dns,
                    expires_at: now.plus(resolved.ttl.clamp(config.min_ttl, config.max_ttl)),
                }),
                Err(error) => {
                    tracing::info!(error = %error_chain(&error), "no DNS answer: the mail may go");
                    None
                }
            })
            .collect()
    }

    /// Keeps new answers in this instance's cache and the store (a failing store is logged).
    async fn keep(&self, records: &[DomainRecord], now: Timestamp) {
        if records.is_empty() {
            return;
        }
        self.deps.domains.keep(records, now);
        if let Err(error) = self.deps.store.put_domains(records).await {
            tracing::warn!(error = %error_chain(&error), "domain answers not kept in the store");
        }
    }

    /// Keeps `domains` as taking no mail for `prevention.learned_ttl`: a bounce said their
    /// host or domain was not found.
    pub async fn learn(&self, domains: BTreeSet<String>, now: Timestamp) {
        let ttl = self.deps.config.prevention.learned_ttl;
        if domains.is_empty() || ttl == Duration::ZERO {
            return;
        }
        let records: Vec<DomainRecord> = domains
            .into_iter()
            .map(|domain| DomainRecord {
                domain,
                answer: MailDomain::NoMailDomain,
                source: AnswerSource::Feedback,
                expires_at: now.plus(ttl),
            })
            .collect();
        self.keep(&records, now).await;
    }
}

/// Prevention today: how it runs, and per stream what it refused and flagged, by reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreventionStatus {
    /// The UTC day counted.
    pub day: String,
    /// Where DNS questions go: `system`, `off`, or the server's address.
    pub dns: String,
    /// Domains on the throw-away list.
    pub disposable_domains: usize,
    /// Every configured stream, in the configuration's order.
    pub streams: Vec<StreamPrevention>,
}

/// One stream's prevention today.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamPrevention {
    /// The stream.
    pub stream: String,
    /// `refuse`, `flag` or `off`.
    pub mode: &'static str,
    /// Recipients left out, by reason.
    pub refused: BTreeMap<Undeliverable, u64>,
    /// Recipients sent to and counted, by reason.
    pub flagged: BTreeMap<Undeliverable, u64>,
}

/// Counts by reason in words: `no_such_domain 3, disposable 1`, or `-` for none.
pub fn by_reason(counts: &BTreeMap<Undeliverable, u64>) -> String {
    let listed: Vec<String> = counts.iter().map(|(r, n)| format!("{r} {n}")).collect();
    if listed.is_empty() {
        "-".to_owned()
    } else {
        listed.join(", ")
    }
}

impl Screen<'_> {
    /// Prevention today, from the day's counts in the store.
    pub async fn today(&self, now: Timestamp) -> Result<PreventionStatus, StoreError> {
        let config = &self.deps.config;
        let day = now.day();
        let counts = self.deps.store.prevented(&day).await?;
        let streams = config
            .streams
            .iter()
            .map(|stream| {
                let mut view = StreamPrevention {
                    stream: stream.name.to_string(),
                    mode: match stream.prevent {
                        PreventMode::Refuse => "refuse",
                        PreventMode::Flag => "flag",
                        PreventMode::Off => "off",
                    },
                    refused: BTreeMap::new(),
                    flagged: BTreeMap::new(),
                };
                for (key, count) in counts.iter().filter(|(k, _)| k.stream == view.stream) {
                    let by_reason = match key.action {
                        PreventAction::Refused => &mut view.refused,
                        PreventAction::Flagged => &mut view.flagged,
                    };
                    *by_reason.entry(key.reason).or_default() += count;
                }
                view
            })
            .collect();
        Ok(PreventionStatus {
            day,
            dns: match config.prevention.dns {
                DnsServer::System => "system".into(),
                DnsServer::Off => "off".into(),
                DnsServer::At(address) => address.to_string(),
            },
            disposable_domains: disposable_domains(),
            streams,
        })
    }
}
