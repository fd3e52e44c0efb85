//! The vocabulary every other domain module speaks: normalised recipient addresses,
//! millisecond UTC timestamps, digests, and the names of accounts and streams.

pub mod address;
pub mod digest;
pub mod names;
pub mod timestamp;
