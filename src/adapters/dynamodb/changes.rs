//! A batch's [`ChangeSet`] as one `TransactWriteItems`: conditional claims, address updates,
//! counter `ADD`s; cancellation reasons read back into conflicts and duplicates.

use super::*;

impl DynamoStore {
    pub(super) fn claim_put(
        &self,
        claim: &Claim,
        now: Timestamp,
    ) -> Result<TransactWriteItem, StoreError> {
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

    pub(super) fn suppression_update(
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
                x.set("bounce_reason", s(bounce.reason.as_str()));
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

    pub(super) fn counter_update(
        &self,
        delta: &CounterDelta,
    ) -> Result<TransactWriteItem, StoreError> {
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
        for (provider, counts) in &delta.bucket.providers {
            for (counter, value) in PROVIDER_CODES.iter().zip(counts.values()) {
                if value > 0 {
                    x.add(&provider_attribute(provider, counter), n(value));
                }
            }
        }
        x.set("bucket_start", n(delta.bucket.start.as_millis()));
        x.set(TTL_ATTRIBUTE, n(delta.expires_at.as_epoch_seconds()));
        let built = Update::builder()
            .table_name(&self.tables.state)
            .key("pk", s(account_key(&delta.account)))
            .key(
                "sk",
                s(bucket_shard_key(delta.bucket.start, self.shards.pick())),
            )
            .update_expression(x.update_expression())
            .set_expression_attribute_names(Some(x.names))
            .set_expression_attribute_values(Some(x.values))
            .build()
            .map_err(|e| build_error("building a counter update", e))?;
        Ok(TransactWriteItem::builder().update(built).build())
    }

    pub(super) fn account_put(&self, name: &str) -> Result<TransactWriteItem, StoreError> {
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
pub(super) fn cancelled(
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
                    if matches!(outcome, ApplyError::Conflict) && !change.counters.is_empty() {
                        self.shards.hop();
                    }
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
