//! Per-row work spread over the machine's cores: contiguous shares of a slice, one scoped
//! thread each, results in the slice's order.

use std::num::NonZeroUsize;

/// Threads to use: one per core.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, NonZeroUsize::get)
}

/// `f` on contiguous shares of `items` (one per core, of about `weight` each), in parallel;
/// the shares' results in order. A share is never empty; no items, no share.
pub fn map_shares<T: Sync, R: Send>(
    items: &[T],
    weight: impl Fn(&T) -> usize,
    f: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let shares = split(items, threads(), weight);
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
        let sums = map_shares(&items, |_| 1, |share| share.iter().sum::<usize>());
        assert_eq!(sums.iter().sum::<usize>(), 55);
    }
}
