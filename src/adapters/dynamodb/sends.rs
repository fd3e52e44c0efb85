//! Send records (exactly-once sending): `send#KEY` / `send` items of the state table with
//! `owner`, `state`, `claimed_at`, `sent_until` and `expires_ms` (milliseconds: the record's
//! exact end, which the conditions use) beside the TTL attribute (seconds: DynamoDB's clean-up).

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;

use super::*;

const SORT_KEY: &str = "send";

fn record_key(key: &SendKey) -> Item {
    state_key(format!("send#{key}"), SORT_KEY)
}

fn state_name(state: SendState) -> &'static str {
    match state {
        SendState::Sending => "sending",
        SendState::Sent => "sent",
    }
}

fn record_item(record: &SendRecord) -> Item {
    let mut item = record_key(&record.key);
    item.insert("owner".into(), s(&record.owner));
    item.insert("state".into(), s(state_name(record.state)));
    item.insert("claimed_at".into(), n(record.claimed_at.as_millis()));
    item.insert("expires_ms".into(), n(record.expires_at.as_millis()));
    item.insert("sent_until".into(), n(record.sent_until.as_millis()));
    item.insert(
        TTL_ATTRIBUTE.into(),
        n(record.expires_at.as_epoch_seconds() + 1),
    );
    item
}

fn parse_record(item: &Item) -> Result<SendRecord, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        what: "send record",
        detail,
    };
    let pk = text(item, "pk").unwrap_or_default();
    let key = pk
        .strip_prefix("send#")
        .and_then(SendKey::from_tag)
        .ok_or_else(|| corrupt(format!("key `{pk}`")))?;
    let millis = |name: &str| -> Result<Timestamp, StoreError> {
        number::<i64>(item, name, "send record")?
            .map(Timestamp::from_millis)
            .ok_or_else(|| corrupt(format!("no `{name}`")))
    };
    Ok(SendRecord {
        key,
        owner: text(item, "owner").ok_or_else(|| corrupt("no `owner`".into()))?,
        state: match text(item, "state").as_deref() {
            Some("sending") => SendState::Sending,
            Some("sent") => SendState::Sent,
            other => return Err(corrupt(format!("state {other:?}"))),
        },
        claimed_at: millis("claimed_at")?,
        expires_at: millis("expires_ms")?,
        sent_until: millis("sent_until")?,
    })
}

#[async_trait]
impl SendLedger for DynamoStore {
    async fn claim_send(
        &self,
        record: &SendRecord,
        now: Timestamp,
    ) -> Result<SendClaim, StoreError> {
        let action = "claiming a send";
        let result = self
            .client
            .put_item()
            .table_name(&self.tables.state)
            .set_item(Some(record_item(record)))
            .condition_expression("attribute_not_exists(pk) OR expires_ms <= :now")
            .expression_attribute_values(":now", n(now.as_millis()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(SendClaim::Claimed),
            Err(error) => error,
        };
        let Some(PutItemError::ConditionalCheckFailedException(refused)) = error.as_service_error()
        else {
            return Err(failure(action, error));
        };
        // Servers that do not return the item in the way (older emulators): read it.
        let held = match refused.item() {
            Some(item) => item.clone(),
            None => self
                .client
                .get_item()
                .table_name(&self.tables.state)
                .set_key(Some(record_key(&record.key)))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| failure("reading a send record", e))?
                .item
                .ok_or_else(|| StoreError::Unavailable {
                    action: action.into(),
                    source: "the record in the way vanished; claim again".into(),
                })?,
        };
        Ok(SendClaim::Held(parse_record(&held)?))
    }

    async fn mark_sent(&self, records: &[SendRecord]) -> Result<(), StoreError> {
        let action = "marking sends sent";
        let puts = records.iter().map(|record| {
            let put = aws_sdk_dynamodb::types::PutRequest::builder()
                .set_item(Some(record_item(&record.sent())))
                .build()
                .map_err(|e| build_error(action, e))?;
            Ok(WriteRequest::builder().put_request(put).build())
        });
        self.write_records(puts, action).await
    }

    async fn settle(&self, keys: &[SendKey], now: Timestamp) -> Result<usize, StoreError> {
        let action = "settling sends";
        if keys.is_empty() {
            return Ok(0);
        }
        // DynamoDB refuses a batch that names one key twice.
        let unique: std::collections::BTreeSet<&SendKey> = keys.iter().collect();
        let items = self
            .batch_get(
                &self.tables.state,
                unique.into_iter().map(record_key).collect(),
                consistent,
                action,
            )
            .await?;
        let mut settled = 0;
        for item in items {
            let record = parse_record(&item)?;
            if record.state != SendState::Sending || !record.is_live(now) {
                continue;
            }
            let result = self
                .client
                .put_item()
                .table_name(&self.tables.state)
                .set_item(Some(record_item(&record.sent())))
                .condition_expression(
                    "#state = :sending AND #owner = :owner AND claimed_at = :claimed",
                )
                .expression_attribute_names("#state", "state")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":sending", s("sending"))
                .expression_attribute_values(":owner", s(&record.owner))
                .expression_attribute_values(":claimed", n(record.claimed_at.as_millis()))
                .send()
                .await;
            match result {
                Ok(_) => settled += 1,
                // Marked sent, given up or claimed again meanwhile: nothing to settle.
                Err(error) if error.code() == Some("ConditionalCheckFailedException") => {}
                Err(error) => return Err(failure(action, error)),
            }
        }
        Ok(settled)
    }

    async fn give_up(&self, keys: &[SendKey]) -> Result<(), StoreError> {
        self.delete_all(keys.iter().map(record_key), "giving up sends")
            .await
    }
}
