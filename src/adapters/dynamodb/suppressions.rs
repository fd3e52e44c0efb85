//! The suppression list in the suppressions table: lookups, listing and operators' manual
//! suppressions.

use super::*;

#[async_trait]
impl SuppressionList for DynamoStore {
    async fn suppressed(
        &self,
        emails: &[EmailAddress],
    ) -> Result<HashMap<EmailAddress, Reason>, StoreError> {
        let items = self
            .batch_get(
                &self.tables.suppressions,
                emails.iter().map(email_key).collect(),
                suppression_reason,
                "reading suppressions",
            )
            .await?;
        parse_suppressed(&items)
    }

    async fn get(&self, email: &EmailAddress) -> Result<Option<Suppression>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.tables.suppressions)
            .key("email", s(email.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| failure("reading a suppression", e))?;
        output.item.as_ref().map_or(Ok(None), parse_suppression)
    }

    async fn list(
        &self,
        reason: Option<Reason>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<Suppression>, StoreError> {
        // One request per page, whatever the table holds: a page of one reason is a query of
        // the sparse index; a page of every reason a scan of `limit` items, of which the
        // soft-bounce trackers are left out (so it may come back short, even empty, with a
        // cursor to go on from).
        let limit = i32::try_from(limit.clamp(1, 1000)).unwrap_or(1000);
        let (items, last) = match reason {
            Some(reason) => {
                let start = cursor.map(|email| {
                    HashMap::from([
                        ("email".to_owned(), s(email)),
                        ("reason".to_owned(), s(reason.as_str())),
                    ])
                });
                let output = self
                    .client
                    .query()
                    .table_name(&self.tables.suppressions)
                    .index_name(BY_REASON_INDEX)
                    .key_condition_expression("#reason = :reason")
                    .expression_attribute_names("#reason", "reason")
                    .expression_attribute_values(":reason", s(reason.as_str()))
                    .set_exclusive_start_key(start)
                    .limit(limit)
                    .send()
                    .await
                    .map_err(|e| failure("listing suppressions", e))?;
                (output.items, output.last_evaluated_key)
            }
            None => {
                let start = cursor.map(|email| HashMap::from([("email".to_owned(), s(email))]));
                let output = self
                    .client
                    .scan()
                    .table_name(&self.tables.suppressions)
                    .set_exclusive_start_key(start)
                    .filter_expression("attribute_exists(#reason)")
                    .expression_attribute_names("#reason", "reason")
                    .limit(limit)
                    .send()
                    .await
                    .map_err(|e| failure("listing suppressions", e))?;
                (output.items, output.last_evaluated_key)
            }
        };
        let mut page = Vec::new();
        for item in items.unwrap_or_default() {
            if let Some(suppression) = parse_suppression(&item)? {
                page.push(suppression);
            }
        }
        let next = last.as_ref().and_then(|key| text(key, "email"));
        Ok(Page { items: page, next })
    }
}

#[async_trait]
impl SuppressionAdmin for DynamoStore {
    async fn suppress(
        &self,
        entries: &[ManualSuppression],
        now: Timestamp,
    ) -> Result<usize, StoreError> {
        let action = "suppressing addresses";
        let mut seen = std::collections::HashSet::new();
        let entries: Vec<&ManualSuppression> =
            entries.iter().filter(|e| seen.insert(&e.email)).collect();
        let mut added = 0;
        for round in entries.chunks(25) {
            let updates = round.iter().map(|entry| {
                self.client
                    .update_item()
                    .table_name(&self.tables.suppressions)
                    .key("email", s(entry.email.as_str()))
                    .update_expression(
                        "SET #reason = if_not_exists(#reason, :reason), \
                         first_seen = if_not_exists(first_seen, :now), \
                         last_seen = if_not_exists(last_seen, :now) \
                         REMOVE #ttl ADD version :one",
                    )
                    .expression_attribute_names("#reason", "reason")
                    .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                    .expression_attribute_values(":reason", s(entry.reason.as_str()))
                    .expression_attribute_values(":now", n(now.as_millis()))
                    .expression_attribute_values(":one", n(1))
                    .return_values(ReturnValue::AllOld)
                    .send()
            });
            for answer in futures_util::future::join_all(updates).await {
                let output = answer.map_err(|e| failure(action, e))?;
                let had_reason = output
                    .attributes
                    .is_some_and(|old| old.contains_key("reason"));
                added += usize::from(!had_reason);
            }
        }
        Ok(added)
    }

    async fn unsuppress(&self, email: &EmailAddress) -> Result<Option<Suppression>, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.tables.suppressions)
            .key("email", s(email.as_str()))
            .condition_expression("attribute_exists(#reason)")
            .expression_attribute_names("#reason", "reason")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => output
                .attributes
                .as_ref()
                .map_or(Ok(None), parse_suppression),
            Err(error) if error.code() == Some("ConditionalCheckFailedException") => Ok(None),
            Err(error) => Err(failure("lifting a suppression", error)),
        }
    }
}
