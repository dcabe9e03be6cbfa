//! What makes a stream a stream: its checkpoint (write-ahead plans, done markers), its
//! triggers, its progress records, its stop request, and the failpoints the crash tests stop
//! it at.

pub mod checkpoint;
pub mod failpoint;
pub mod progress;
pub mod shutdown;
pub mod trigger;
