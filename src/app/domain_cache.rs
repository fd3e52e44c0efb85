//! Domain answers as one process last learned them (prevention's DNS answers and what bounces
//! taught), each until it expires; and, briefly, the domains DNS did not answer for, so that a
//! failing resolver costs one timeout a minute rather than one a batch. A leaf: the context
//! holds one, [`crate::app::prevent`] reads and fills it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::domain::common::timestamp::Timestamp;
use crate::domain::sending::prevention::{Dns, MailDomain};
use crate::ports::DomainRecord;

/// The most domains one instance keeps; past it, expired answers go, then all.
const CACHE_LIMIT: usize = 100_000;

/// Domain answers as this instance last learned them (`None`: DNS gave none).
#[derive(Debug, Default)]
pub struct DomainCache {
    answers: Mutex<HashMap<String, (Option<MailDomain>, Timestamp)>>,
}

impl DomainCache {
    /// What this instance knows of `domain` at `now`: an answer, or that DNS gave none lately.
    pub(crate) fn get(&self, domain: &str, now: Timestamp) -> Option<Dns> {
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers
            .get(domain)
            .filter(|(_, until)| *until > now)
            .map(|(answer, _)| answer.map_or(Dns::Unknown, Dns::Known))
    }

    /// Keeps `records` until they expire.
    pub(crate) fn keep(&self, records: &[DomainRecord], now: Timestamp) {
        self.insert(
            records
                .iter()
                .map(|r| (r.domain.clone(), Some(r.answer), r.expires_at)),
            now,
        );
    }

    /// Keeps that DNS gave no answer for `domains` until `until`.
    pub(crate) fn keep_unknown(&self, domains: &[String], until: Timestamp, now: Timestamp) {
        self.insert(domains.iter().map(|d| (d.clone(), None, until)), now);
    }

    fn insert(
        &self,
        entries: impl ExactSizeIterator<Item = (String, Option<MailDomain>, Timestamp)>,
        now: Timestamp,
    ) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.len() + entries.len() > CACHE_LIMIT {
            answers.retain(|_, (_, until)| *until > now);
            if answers.len() + entries.len() > CACHE_LIMIT {
                answers.clear();
            }
        }
        for (domain, answer, until) in entries {
            answers.insert(domain, (answer, until));
        }
    }
}
