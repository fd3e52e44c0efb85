//! One module per Lambda function: decode the event, call the use case through the ports,
//! encode the response. Nothing else lives here.

pub mod admin;
pub mod http;
pub mod ingest;
pub mod sender;
pub mod session;
pub mod status_page;
pub mod webhook;
