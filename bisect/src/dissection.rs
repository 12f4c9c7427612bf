//! The arithmetic of k-ary dissection, the same as the contract's (protocol section 12.4).

use crate::phase::{Phase, PhaseError};
use opml_vm::Hash;

/// The `m + 1` points that split segment `[lo, hi]` into `m = min(arity, hi - lo)` parts:
/// `lo + (hi - lo) * j / m` for `j = 0..=m`.
pub fn split_points(lo: u64, hi: u64, arity: u64) -> Vec<u64> {
    let len = hi - lo;
    let m = arity.min(len).max(1);
    (0..=m)
        .map(|j| lo + ((u128::from(len) * u128::from(j)) / u128::from(m)) as u64)
        .collect()
}

/// The points where the defender posts claims: the split points without the two ends.
pub fn interior_points(lo: u64, hi: u64, arity: u64) -> Vec<u64> {
    let points = split_points(lo, hi, arity);
    points[1..points.len() - 1].to_vec()
}

/// Dissection rounds that narrow a segment of `len` transitions to one: `ceil(log_arity len)`.
pub fn rounds_bound(len: u64, arity: u64) -> u32 {
    let mut rounds = 0;
    let mut span = 1u128;
    while span < u128::from(len) {
        span *= u128::from(arity);
        rounds += 1;
    }
    rounds
}

/// The honest challenger's choice among the sub-segments of `[lo, hi]` given the defender's
/// interior `claims`: the first whose right end differs from its own view, else the last (the
/// right end `hi` is disputed by definition, perhaps for a reason outside the state, such as a
/// posted output that its trace does not end on).
pub fn honest_pick<P: Phase + ?Sized>(
    own: &mut P,
    lo: u64,
    hi: u64,
    arity: u64,
    claims: &[Hash],
) -> Result<u64, PhaseError> {
    let points = split_points(lo, hi, arity);
    for (j, claim) in claims.iter().enumerate() {
        if own.claim(points[j + 1])? != *claim {
            return Ok(j as u64);
        }
    }
    Ok(claims.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_table() {
        let cases: [(u64, u64, u64, &[u64]); 6] = [
            (0, 7, 2, &[0, 3, 7]),
            (0, 1, 2, &[0, 1]),
            (3, 5, 4, &[3, 4, 5]),
            (0, 10, 4, &[0, 2, 5, 7, 10]),
            (100, 101, 8, &[100, 101]),
            (
                0,
                3_000_001,
                8,
                &[
                    0, 375_000, 750_000, 1_125_000, 1_500_000, 1_875_000, 2_250_000, 2_625_000,
                    3_000_001,
                ],
            ),
        ];
        for (lo, hi, k, want) in cases {
            assert_eq!(split_points(lo, hi, k), want, "[{lo}, {hi}] k={k}");
        }
        assert_eq!(interior_points(0, 10, 4), [2, 5, 7]);
        assert!(interior_points(4, 5, 2).is_empty());
    }

    /// Every pick of every sub-segment shrinks to one transition within the bound.
    #[test]
    fn rounds_never_exceed_the_bound() {
        for arity in [2u64, 3, 4, 8, 16] {
            for len in [1u64, 2, 3, 5, 7, 8, 9, 100, 1000, 4097] {
                let bound = rounds_bound(len, arity);
                for choice in 0..arity {
                    let (mut lo, mut hi, mut rounds) = (0, len, 0);
                    while hi - lo > 1 {
                        let points = split_points(lo, hi, arity);
                        let j = (choice as usize).min(points.len() - 2);
                        (lo, hi) = (points[j], points[j + 1]);
                        rounds += 1;
                    }
                    assert!(rounds <= bound, "len {len} k {arity} choice {choice}");
                }
            }
        }
        assert_eq!(rounds_bound(1, 2), 0);
        assert_eq!(rounds_bound(7, 2), 3);
        assert_eq!(rounds_bound(8, 2), 3);
        assert_eq!(rounds_bound(9, 8), 2);
    }
}
