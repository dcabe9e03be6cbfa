//! Reading source files into Arrow: the patient CSV, and the tracker folder's discovery and
//! JSON reader.

pub mod csv;
pub mod discover;
pub mod json;
