//! Which changed patients gold refreshes by combining, and which it recomputes: decided from
//! the summary of silver's changes and gold's rows alone, before any silver row is recomputed.

use std::collections::{BTreeMap, BTreeSet};

use super::changes::Changes;
use super::stats::Stats;

/// How the changed patients' gold rows are refreshed.
#[derive(Debug, Default, PartialEq)]
pub(super) struct PatientPlan {
    /// Patients whose new row is their old one combined with their new readings (a new
    /// patient: its new readings alone), with that row.
    pub combined: Vec<(i64, Stats)>,
    /// Patients recomputed from all their silver rows.
    pub recompute: BTreeSet<i64>,
}

/// A patient is combined when its changes are new readings only, gold's rows are as of the
/// version the changes were read from (`combinable`), and its old row has the exact sum (a row
/// made before gold kept it has none). Anything else (an updated reading, a rename, a row
/// without a sum, gold behind or ahead of the changes) is recomputed.
pub(super) fn plan_patients(
    changes: &Changes,
    old: &BTreeMap<i64, Stats>,
    combinable: bool,
) -> PatientPlan {
    let mut plan = PatientPlan::default();
    for (mrn, change) in &changes.patients {
        match (combinable && change.new_rows_only, old.get(mrn)) {
            (true, None) => plan.combined.push((*mrn, change.stats.clone())),
            (true, Some(before)) if before.sum.is_some() => {
                plan.combined.push((*mrn, before.combine(&change.stats)));
            }
            _ => {
                plan.recompute.insert(*mrn);
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::super::changes::PatientChanges;
    use super::*;

    fn stats(count: i64, sum: Option<i128>, min: f64, max: f64) -> Stats {
        Stats {
            name: Some("n".into()),
            count,
            sum,
            min: Some(min),
            max: Some(max),
            first: Some(count),
            last: Some(count * 10),
        }
    }

    /// (gold's old rows, changes as (mrn, new rows only, stats), combinable) -> (combined rows,
    /// recomputed patients).
    #[test]
    fn patients_are_combined_only_from_new_readings_on_a_row_with_its_sum() {
        let old = |rows: &[(i64, Stats)]| rows.iter().cloned().collect::<BTreeMap<_, _>>();
        let changes = |list: &[(i64, bool, Stats)]| Changes {
            patients: list
                .iter()
                .map(|(mrn, new_rows_only, stats)| {
                    let change = PatientChanges {
                        new_rows_only: *new_rows_only,
                        stats: stats.clone(),
                    };
                    (*mrn, change)
                })
                .collect(),
        };
        let a = stats(2, Some(20), 5.0, 15.0);
        let new = stats(1, Some(7), 7.0, 7.0);
        let a_plus_new = Stats {
            count: 3,
            sum: Some(27),
            min: Some(5.0),
            max: Some(15.0),
            first: Some(1),
            last: Some(20),
            ..a.clone()
        };
        type Case = (
            BTreeMap<i64, Stats>,
            Changes,
            bool,
            Vec<(i64, Stats)>,
            Vec<i64>,
        );
        let cases: Vec<Case> = vec![
            // New readings of a known patient: old row + new readings.
            (
                old(&[(1, a.clone())]),
                changes(&[(1, true, new.clone())]),
                true,
                vec![(1, a_plus_new)],
                vec![],
            ),
            // A new patient: its readings alone.
            (
                old(&[]),
                changes(&[(2, true, new.clone())]),
                true,
                vec![(2, new.clone())],
                vec![],
            ),
            // An update (re-delivery, rename): recomputed.
            (
                old(&[(1, a.clone())]),
                changes(&[(1, false, new.clone())]),
                true,
                vec![],
                vec![1],
            ),
            // An old row without the exact sum: recomputed.
            (
                old(&[(1, stats(2, None, 5.0, 15.0))]),
                changes(&[(1, true, new.clone())]),
                true,
                vec![],
                vec![1],
            ),
            // Gold not at the version the changes start from: everyone recomputed.
            (
                old(&[(1, a.clone())]),
                changes(&[(1, true, new.clone()), (2, true, new.clone())]),
                false,
                vec![],
                vec![1, 2],
            ),
            // Nothing changed: nothing to do.
            (old(&[(1, a.clone())]), changes(&[]), true, vec![], vec![]),
        ];
        for (i, (old, changes, combinable, combined, recompute)) in cases.into_iter().enumerate() {
            let plan = plan_patients(&changes, &old, combinable);
            assert_eq!(plan.combined, combined, "case {i}");
            assert_eq!(
                plan.recompute.into_iter().collect::<Vec<_>>(),
                recompute,
                "case {i}"
            );
        }
    }
}
