//! The vocabulary every other domain module speaks: normalised recipient addresses and
//! millisecond UTC timestamps.

pub mod address;
pub mod digest;
pub mod timestamp;
