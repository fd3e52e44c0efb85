//! The sender's one batched read: template policy, recipients' suppressions, guard states,
//! rate records and recipient domains' answers in a single `BatchGetItem`.

use super::domains::{domain_key, parse_domain};
use super::*;

#[async_trait]
impl GateRead for DynamoStore {
    async fn gate_view(
        &self,
        recipients: &[EmailAddress],
        accounts: &[String],
        domains: &[String],
    ) -> Result<GateView, StoreError> {
        let mut state_keys = vec![state_key(POLICY_KEY, POLICY_SORT_KEY)];
        state_keys.extend(domains.iter().map(|d| domain_key(d)));
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
            domains: state
                .iter()
                .filter(|item| text(item, "pk").is_some_and(|pk| pk.starts_with("domain#")))
                .map(parse_domain)
                .collect::<Result<_, _>>()?,
        })
    }
}
