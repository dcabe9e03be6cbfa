//! Per-row work spread over the machine's cores: contiguous shares of a slice, one scoped
//! thread each, results in the slice's order.

use std::num::NonZeroUsize;

/// Threads to use: one per core.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// Rows below which a share is not worth a thread (nor, for a writer, a file of its own):
/// 64 Ki, or `MEDALLION_MIN_SHARE_ROWS` (tests set it low to split small inputs).
pub fn min_share_rows() -> usize {
    static ROWS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *ROWS.get_or_init(|| {
        std::env::var("MEDALLION_MIN_SHARE_ROWS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(64 * 1024)
    })
}

/// `f` on contiguous shares of `items` of about equal `weight` (rows), in parallel: one share
/// per core, but no share under `min_weight` unless there is only one; the shares' results in
/// order. A share is never empty; no items, no share.
pub fn map_shares<T: Sync, R: Send>(
    items: &[T],
    weight: impl Fn(&T) -> usize,
    min_weight: usize,
    f: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let total: usize = items.iter().map(&weight).sum();
    let n = threads().min(total / min_weight.max(1)).max(1);
    let shares = split(items, n, weight);
    if shares.len() <= 1 {
        return shares.into_iter().map(&f).collect();
    }
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| scope.spawn(move || f(share)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// `items` cut into at most `n` contiguous, non-empty shares of about equal total weight.
fn split<T>(items: &[T], n: usize, weight: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let total: usize = items.iter().map(&weight).sum::<usize>().max(1);
    let mut shares = Vec::with_capacity(n);
    let (mut start, mut acc) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        acc += weight(item);
        // Close a share once it holds its part of the total.
        if acc * n >= total * (shares.len() + 1) && shares.len() + 1 < n {
            shares.push(&items[start..=i]);
            start = i + 1;
        }
    }
    if start < items.len() {
        shares.push(&items[start..]);
    }
    shares
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_contiguous_balanced_and_in_order() {
        let items: Vec<usize> = (1..=10).collect();
        let shares = split(&items, 2, |_| 1);
        assert_eq!(shares, vec![&items[..5], &items[5..]]);
        let weighted = split(&items, 2, |w| *w);
        assert_eq!(weighted, vec![&items[..7], &items[7..]]);
        assert_eq!(split(&items, 3, |_| 1).concat(), items);
        assert_eq!(split(&items[..1], 4, |_| 1), vec![&items[..1]]);
        assert!(split::<usize>(&[], 2, |_| 1).is_empty());
        let sums = map_shares(&items, |_| 1, 1, |share| share.iter().sum::<usize>());
        assert_eq!(sums.iter().sum::<usize>(), 55);
        assert_eq!(sums.len(), threads().min(10));
        // Too little work for more than one share.
        assert_eq!(map_shares(&items, |_| 1, 6, |share| share.len()), vec![10]);
    }
}
