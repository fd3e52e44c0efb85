//! Domain answers as one process last learned them (prevention's DNS answers and what bounces
//! taught), each until it expires. A leaf: the context holds one, [`crate::app::prevent`]
//! reads and fills it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::domain::common::timestamp::Timestamp;
use crate::domain::sending::prevention::MailDomain;
use crate::ports::DomainRecord;

/// The most domains one instance keeps; past it, expired answers go, then all.
const CACHE_LIMIT: usize = 100_000;

/// Domain answers as this instance last learned them.
#[derive(Debug, Default)]
pub struct DomainCache {
    answers: Mutex<HashMap<String, (MailDomain, Timestamp)>>,
}

impl DomainCache {
    pub(crate) fn get(&self, domain: &str, now: Timestamp) -> Option<MailDomain> {
        let answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        answers
            .get(domain)
            .filter(|(_, until)| *until > now)
            .map(|(answer, _)| *answer)
    }

    pub(crate) fn keep(&self, records: &[DomainRecord], now: Timestamp) {
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if answers.len() + records.len() > CACHE_LIMIT {
            answers.retain(|_, (_, until)| *until > now);
            if answers.len() + records.len() > CACHE_LIMIT {
                answers.clear();
            }
        }
        for record in records {
            answers.insert(record.domain.clone(), (record.answer, record.expires_at));
        }
    }
}
