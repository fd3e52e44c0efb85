//! The send gate's rules: the send request an application queues, the template policy,
//! prevention of undeliverable recipients, rate limits, routing between accounts, and what an
//! SES failure means.

pub mod prevention;
pub mod rate_limit;
pub mod request;
pub mod routing;
pub mod send_record;
pub mod ses_failure;
pub mod template_policy;
