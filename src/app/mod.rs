//! Use cases: the domain's rules orchestrated over the ports. Nothing here knows AWS or
//! SQLite; each use case takes the ports it needs, or the [`Context`] of them all.
//!
//! - [`ingest`]: SES feedback recorded, then the guard's [`review`] of the accounts it touched;
//! - [`send`]: the send gate over a batch of queued requests; [`check`]: the same gate, dry;
//! - [`prevent`]: recipients that cannot receive mail, found before sending (DNS answers kept);
//! - [`explain`]: a bounce's reasons, read without recording;
//! - [`control`]: operator transitions; [`status`]: what an account looks like now;
//!   [`feedback_watch`]: whether each account's feedback is arriving;
//! - [`provider_watch`]: per-provider findings after a review, told once;
//! - [`webhook`]: one SNS HTTPS delivery verified and acted on; [`subscription`]: a verified
//!   subscription message confirmed or alerted; [`queued_subscription`]: one that came
//!   through the feedback queue (a topic of another account), verified as the webhook does;
//! - [`admin`]: the operations both the admin function and the CLI perform;
//! - [`plot`]: line charts as SVG, for the status page and the simulator;
//! - [`simulate`]: the seed incident, minute by minute, with and without the guard.

pub mod admin;
pub mod check;
pub mod context;
pub mod control;
pub mod domain_cache;
pub mod explain;
pub mod feedback_watch;
pub mod ingest;
pub mod plot;
pub mod prevent;
pub mod provider_watch;
pub mod queued_subscription;
pub mod review;
pub mod send;
pub mod simulate;
pub mod status;
pub mod subscription;
pub mod webhook;
pub mod window_cache;

pub use context::Context;
