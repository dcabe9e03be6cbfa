//! One job per table. Each reads its inputs, writes its table incrementally and idempotently,
//! and returns a report of what it did.

pub mod bronze;
pub mod gold;
pub mod patients;
pub mod pipeline;
pub mod silver;
