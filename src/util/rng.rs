//! The seeded random number generator every stage uses (data order, record sampling, token
//! sampling): small, portable and reproducible from a seed on every machine and thread count.

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
        mix64(self.0)
    }

    /// Fisher-Yates: a uniform permutation of `items` fixed by the generator's state.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }

    /// A uniform integer below `n` (Lemire's multiply-shift; bias below 2^-32 for dump sizes).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }
}

/// SplitMix64's 64-bit finaliser: spreads every input bit over the output, so sequential or
/// structured inputs give independent-looking hashes (the generator's output, and word hashes).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
