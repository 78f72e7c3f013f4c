//! Seeded choice of records for `prep sample` and `prep split-train-test`: a permutation of record
//! positions from a small, portable PRNG (SplitMix64), so the same seed picks the same records on
//! every machine and thread count, and kept records stay in input order.

/// SplitMix64 (Steele, Lea, Flood 2014): one multiply-xorshift per draw, statistically solid for
/// shuffling, and trivially reproducible from a seed.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator whose whole future is fixed by `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform integer below `n` (Lemire's multiply-shift; bias below 2^-32 for dump sizes).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

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
