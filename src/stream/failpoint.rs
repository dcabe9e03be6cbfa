//! Fault injection for the crash tests: `MEDALLION_FAILPOINT=<name>` aborts the process at the
//! named point, with no clean-up, as a `kill -9` or a power cut would.

use std::sync::OnceLock;

/// Every point a job can be stopped at: the bronze stream's in the order a batch passes them,
/// then silver's and gold's.
pub mod points {
    /// The batch's plan is written under its temporary name, not yet renamed into place.
    pub const PLAN_BEFORE_RENAME: &str = "bronze-plan-before-rename";
    /// The plan is in place; nothing of the batch is written yet.
    pub const AFTER_PLAN: &str = "bronze-after-plan";
    /// The batch's Parquet files are written; nothing is committed.
    pub const BEFORE_COMMIT: &str = "bronze-before-commit";
    /// The quarantine table has the batch's rejects; bronze does not have its rows yet.
    pub const BETWEEN_COMMITS: &str = "bronze-between-commits";
    /// The batch is committed to bronze; the checkpoint does not mark it done yet.
    pub const AFTER_COMMIT: &str = "bronze-after-commit";
    /// Silver's side tables (quarantine, waiting rows) are written; silver is not.
    pub const SILVER_BEFORE_COMMIT: &str = "silver-before-commit";
    /// A slice's MERGEs are committed, its append (which records what it consumed) is not.
    pub const SILVER_BETWEEN_WRITES: &str = "silver-between-writes";
    /// Silver's slice is committed.
    pub const SILVER_AFTER_COMMIT: &str = "silver-after-commit";
    /// Gold is committed, daily is not.
    pub const GOLD_BETWEEN_COMMITS: &str = "gold-between-commits";
    /// Gold and daily are committed.
    pub const GOLD_AFTER_COMMIT: &str = "gold-after-commit";
}

/// Abort the process here if `MEDALLION_FAILPOINT` names this point.
pub fn failpoint(name: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| std::env::var("MEDALLION_FAILPOINT").ok());
    if armed.as_deref() == Some(name) {
        eprintln!("failpoint {name}: aborting");
        std::process::abort();
    }
}
