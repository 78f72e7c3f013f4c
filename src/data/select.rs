//! Seeded choice of records for `prep sample` and `prep split-train-test`: a permutation of record
//! positions from a small, portable PRNG (SplitMix64), so the same seed picks the same records on
//! every machine and thread count, and kept records stay in input order.
use crate::util::rng::SplitMix64;

/// Marks `count` of `total` positions, chosen uniformly with `seed` (partial Fisher-Yates).
pub fn choose(total: usize, count: usize, seed: u64) -> Vec<bool> {
    let count = count.min(total);
    let mut order: Vec<usize> = (0..total).collect();
    let mut rng = SplitMix64::new(seed);
    for i in 0..count {
        let j = i + rng.below(total - i);
        order.swap(i, j);
    }
    let mut chosen = vec![false; total];
    for &i in &order[..count] {
        chosen[i] = true;
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choose_is_exact_and_reproducible() {
        let a = choose(1000, 37, 7);
        assert_eq!(a.iter().filter(|&&x| x).count(), 37);
        assert_eq!(a, choose(1000, 37, 7));
        assert_ne!(a, choose(1000, 37, 8));
        assert_eq!(choose(5, 10, 1), vec![true; 5]);
    }
}
