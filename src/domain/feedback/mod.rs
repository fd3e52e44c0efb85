//! SES feedback from parse to plan: notifications in both formats, the account and stream they
//! belong to, the suppression records they change, and the ingest plan of a batch.

pub mod attribution;
pub mod bounce_reason;
pub mod notification;
pub mod plan;
pub mod provider;
pub mod suppression;
