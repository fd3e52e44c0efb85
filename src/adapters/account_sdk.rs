//! One configured account's AWS SDK configuration: the shared configuration moved to the
//! account's region and, when it has a `role_arn`, to that role's credentials (STS
//! AssumeRole, refreshed by the SDK). Every per-account client (SESv2, CloudWatch) is built
//! from it, so they reach the same account the same way. Not a client itself: nothing is
//! called until a client built from it is.

use aws_config::sts::AssumeRoleProvider;
use aws_config::{Region, SdkConfig};
// The SDK crates share one credentials type; any of them names it.
use aws_sdk_sesv2::config::SharedCredentialsProvider;

use crate::config::AccountConfig;

/// `sdk` in `account`'s region, through its role when one is configured. Calls nothing yet:
/// the role is assumed on the first request of a client built from the answer.
pub async fn account_sdk(sdk: &SdkConfig, account: &AccountConfig) -> SdkConfig {
    let region = Region::new(account.region.clone());
    let mut builder = sdk.to_builder().region(region.clone());
    if let Some(role) = &account.role_arn {
        let provider = AssumeRoleProvider::builder(role)
            .session_name("sesguard")
            .region(region)
            .configure(sdk)
            .build()
            .await;
        builder = builder.credentials_provider(SharedCredentialsProvider::new(provider));
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use aws_config::BehaviorVersion;
    use aws_sdk_sesv2::config::Credentials;

    use super::*;

    fn account(role_arn: Option<&str>) -> AccountConfig {
        let role = role_arn.map_or(String::new(), |r| format!("role_arn = \"{r}\"\n"));
        let text = format!(
            "name = \"backup\"\nregion = \"eu-west-1\"\naccount_id = \"222222222222\"\n{role}"
        );
        toml::from_str(&text).expect("an account")
    }

    /// As the process loads it (a time source, a sleep), with fixed test credentials.
    async fn shared() -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .load()
            .await
    }

    #[tokio::test]
    async fn an_account_is_reached_in_its_region_and_through_its_role_when_it_has_one() {
        let own = account_sdk(&shared().await, &account(None)).await;
        assert_eq!(own.region().map(Region::as_ref), Some("eu-west-1"));
        let own_credentials = format!("{:?}", own.credentials_provider());
        assert!(!own_credentials.contains("AssumeRole"), "{own_credentials}");

        let role = "arn:aws:iam::222222222222:role/sesguard-sender";
        let assumed = account_sdk(&shared().await, &account(Some(role))).await;
        assert_eq!(assumed.region().map(Region::as_ref), Some("eu-west-1"));
        let assumed_credentials = format!("{:?}", assumed.credentials_provider());
        assert!(
            assumed_credentials.contains("AssumeRole"),
            "{assumed_credentials}"
        );
    }
}
