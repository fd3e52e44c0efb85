//! Counter buckets and the guard state of an account, read together.

use super::*;

/// Adds each bucket's mailbox-provider counters to `buckets` (a bucket with provider counts
/// only is added too).
fn read_providers(
    connection: &Connection,
    account: &str,
    (first, last): (Timestamp, Timestamp),
    buckets: &mut BTreeMap<i64, Bucket>,
) -> Result<(), StoreError> {
    let action = "reading provider counters";
    let mut statement = connection
        .prepare_cached(
            "SELECT bucket, provider, deliveries, address_bounces, temporary_bounces, blocked,
                 authentication, policy, complaints
             FROM provider_counters WHERE account = ?1 AND bucket BETWEEN ?2 AND ?3",
        )
        .map_err(unavailable(action))?;
    let rows = statement
        .query_map(
            params![account, first.as_millis(), last.as_millis()],
            |row| {
                let mut values = [0_u64; 7];
                for (i, value) in values.iter_mut().enumerate() {
                    *value = u64::try_from(row.get::<_, i64>(i + 2)?).unwrap_or(0);
                }
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    ProviderCounts::from_values(values),
                ))
            },
        )
        .map_err(unavailable(action))?;
    for row in rows {
        let (start, provider, counts) = row.map_err(unavailable(action))?;
        buckets
            .entry(start)
            .or_insert_with(|| Bucket {
                start: Timestamp::from_millis(start),
                ..Bucket::default()
            })
            .providers
            .insert(provider, counts);
    }
    Ok(())
}

#[async_trait]
impl CounterWindow for SqliteStore {
    async fn window(
        &self,
        account: &str,
        first: Timestamp,
        last: Timestamp,
    ) -> Result<AccountWindow, StoreError> {
        let account = account.to_owned();
        self.run(move |connection| {
            let action = "reading counters";
            let mut statement = connection
                .prepare_cached(
                    "SELECT bucket, stream, sends, deliveries, hard_bounces, soft_bounces, complaints
                     FROM counters WHERE account = ?1 AND bucket BETWEEN ?2 AND ?3
                     ORDER BY bucket, stream",
                )
                .map_err(unavailable(action))?;
            let rows = statement
                .query_map(params![account, first.as_millis(), last.as_millis()], |row| {
                    let mut values = [0_u64; 5];
                    for (i, value) in values.iter_mut().enumerate() {
                        *value = u64::try_from(row.get::<_, i64>(i + 2)?).unwrap_or(0);
                    }
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, Counts::from_values(values)))
                })
                .map_err(unavailable(action))?;
            let mut buckets: BTreeMap<i64, Bucket> = BTreeMap::new();
            for row in rows {
                let (start, stream, counts) = row.map_err(unavailable(action))?;
                let bucket = buckets.entry(start).or_insert_with(|| Bucket {
                    start: Timestamp::from_millis(start),
                    ..Bucket::default()
                });
                if stream == TOTAL {
                    bucket.total = counts;
                } else {
                    bucket.streams.insert(stream, counts);
                }
            }
            drop(statement);
            read_providers(connection, &account, (first, last), &mut buckets)?;
            let state = read_state(connection, &account)?;
            Ok(AccountWindow {
                buckets: buckets.into_values().collect(),
                state,
            })
        })
        .await
    }

    async fn unconfigured_accounts(&self) -> Result<Vec<String>, StoreError> {
        self.run(|connection| {
            let action = "listing unconfigured accounts";
            let mut statement = connection
                .prepare_cached("SELECT name FROM unconfigured_accounts ORDER BY name")
                .map_err(unavailable(action))?;
            let names = statement
                .query_map([], |row| row.get(0))
                .map_err(unavailable(action))?
                .collect::<Result<Vec<String>, _>>()
                .map_err(unavailable(action))?;
            Ok(names)
        })
        .await
    }
}
