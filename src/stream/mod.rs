//! What makes a stream a stream: its checkpoint (write-ahead plans, done markers), its
//! triggers, its progress records, its stop request and its compacted state.

pub mod checkpoint;
pub mod progress;
pub mod shutdown;
pub mod state;
pub mod trigger;
