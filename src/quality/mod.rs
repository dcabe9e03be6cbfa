//! Data-quality expectations: [`rules`] reads `medallion.toml` and checks every rule against
//! its table before any work; [`check`] evaluates them on the rows a job is about to write.

pub mod check;
pub mod rules;
