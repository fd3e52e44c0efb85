//! One module per Lambda function: decode the event, call the use case through the ports,
//! encode the response. Nothing else lives here.

pub mod admin;
pub mod ingest;
pub mod sender;
pub mod status_page;
pub mod webhook;
