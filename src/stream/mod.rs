//! What makes a stream a stream: its checkpoint (write-ahead plans, done markers), its
//! triggers, its progress records and its stop request.

pub mod checkpoint;
pub mod progress;
pub mod shutdown;
pub mod trigger;
