//! The sender's one read per batch: template policy, recipients' suppressions, guard states,
//! rate records and recipient domains' answers, in one call on the connection's thread.

use super::domains::read_domains;
use super::*;

#[async_trait]
impl GateRead for SqliteStore {
    /// One call on the connection's thread.
    async fn gate_view(
        &self,
        recipients: &[EmailAddress],
        accounts: &[String],
        domains: &[String],
    ) -> Result<GateView, StoreError> {
        let (recipients, accounts, domains) =
            (recipients.to_vec(), accounts.to_vec(), domains.to_vec());
        self.run(move |connection| {
            let mut states = HashMap::new();
            let mut rates = HashMap::new();
            for account in accounts {
                states.insert(account.clone(), read_state(connection, &account)?);
                rates.insert(account.clone(), read_rate(connection, &account)?);
            }
            Ok(GateView {
                policy: read_policy(connection)?,
                suppressed: read_suppressed(connection, recipients)?,
                states,
                rates,
                domains: read_domains(connection, domains)?,
            })
        })
        .await
    }
}
