//! SNS deliveries before anything acts on them: the envelope as received and its checks
//! ([`delivery`]), the signature over it ([`signature`]), and the SES JSON inside it
//! ([`unwrap`]). Fetching certificates is an adapter's job (`adapters::sns_https`).

pub mod delivery;
pub mod signature;
pub mod unwrap;
