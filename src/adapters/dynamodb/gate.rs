//! The sender's one batched read: template policy, recipients' suppressions, guard states and
//! rate records in a single `BatchGetItem`.

use super::*;

#[async_trait]
impl GateRead for DynamoStore {
    async fn gate_view(
        &self,
        recipients: &[EmailAddress],
        accounts: &[String],
    ) -> Result<GateView, StoreError> {
        let mut state_keys = vec![state_key(POLICY_KEY, POLICY_SORT_KEY)];
        for account in accounts {
            state_keys.push(state_key(account_key(account), STATE_SORT_KEY));
            state_keys.push(state_key(account_key(account), RATE_SORT_KEY));
        }
        let mut found = self
            .batch_get_tables(
                vec![
                    (
                        &self.tables.suppressions,
                        recipients.iter().map(email_key).collect(),
                        suppression_reason,
                    ),
                    (&self.tables.state, state_keys, consistent),
                ],
                "reading the send gate's view",
            )
            .await?;
        let suppressions = found.remove(&self.tables.suppressions).unwrap_or_default();
        let state = found.remove(&self.tables.state).unwrap_or_default();
        let policy = state
            .iter()
            .find(|item| text(item, "pk").as_deref() == Some(POLICY_KEY));
        Ok(GateView {
            policy: parse_policy(policy)?,
            suppressed: parse_suppressed(&suppressions)?,
            states: by_account(accounts, &state, STATE_SORT_KEY, parse_account_state)?,
            rates: by_account(accounts, &state, RATE_SORT_KEY, |_, item| parse_rate(item))?,
        })
    }
}
