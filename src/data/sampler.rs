//! The order of training samples. Which samples an optimizer step trains on is a pure function of
//! (seed, epoch, position): a seeded shuffle per epoch, grouped by length in megabatches of 50
//! global batches (as the Hugging Face `LengthGroupedSampler`), so resuming at any step needs no
//! replay and a step holds the same samples whatever the micro-batch size or world size.
use crate::util::rng::SplitMix64;

/// Megabatch size in global batches for length grouping.
const MEGABATCH: usize = 50;

/// The order of samples: a pure function of the seed, the epoch and the position in it.
#[derive(Debug, Clone)]
pub struct Sampler {
    lengths: Vec<usize>,
    /// Samples per optimizer step, over all processes and micro-batches.
    pub global_batch: usize,
    pub seed: u64,
    pub group_by_length: bool,
}

impl Sampler {
    /// A sampler over samples of `lengths`.
    pub fn new(lengths: Vec<usize>, global_batch: usize, seed: u64, group_by_length: bool) -> Sampler {
        Sampler { lengths, global_batch: global_batch.max(1), seed, group_by_length }
    }

    /// Optimizer steps per epoch (the last one may hold fewer samples).
    pub fn steps_per_epoch(&self) -> usize {
        self.lengths.len().div_ceil(self.global_batch)
    }

    /// Sample indices of every step of `epoch`, in order: a seeded shuffle; with length grouping,
    /// megabatches sorted by length (stable, so equal lengths keep their shuffled order), cut into
    /// global batches whose order is shuffled again, so no two epochs repeat even when the whole
    /// data set fits in one megabatch.
    pub fn epoch(&self, epoch: usize) -> Vec<Vec<usize>> {
        let n = self.lengths.len();
        let mut rng = SplitMix64::new(self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut order: Vec<usize> = (0..n).collect();
        rng.shuffle(&mut order);
        if !self.group_by_length {
            return order.chunks(self.global_batch).map(<[usize]>::to_vec).collect();
        }
        for mega in order.chunks_mut(MEGABATCH.saturating_mul(self.global_batch)) {
            mega.sort_by(|&a, &b| self.lengths[b].cmp(&self.lengths[a]));
        }
        let mut batches: Vec<Vec<usize>> = order.chunks(self.global_batch).map(<[usize]>::to_vec).collect();
        rng.shuffle(&mut batches);
        batches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_is_a_pure_function_and_covers_each_epoch() {
        let lengths: Vec<usize> = (0..103).map(|i| (i * 37) % 50 + 1).collect();
        let s = Sampler::new(lengths, 8, 5, true);
        assert_eq!(s.steps_per_epoch(), 13);
        let e0 = s.epoch(0);
        assert_eq!(e0, s.epoch(0));
        assert_ne!(e0, s.epoch(1));
        let mut all: Vec<usize> = e0.concat();
        all.sort_unstable();
        assert_eq!(all, (0..103).collect::<Vec<_>>());
        assert_eq!(e0.iter().filter(|b| b.len() == 8).count(), 12, "all but one step are full");
        let plain = Sampler::new((0..103).map(|i| (i * 37) % 50 + 1).collect(), 8, 5, false);
        assert_eq!(plain.epoch(3), plain.epoch(3));
        assert_eq!(plain.epoch(3).last().unwrap().len(), 103 - 12 * 8);
    }

    #[test]
    fn length_grouping_keeps_similar_lengths_together() {
        let lengths: Vec<usize> = (0..64).map(|i| if i % 2 == 0 { 10 } else { 500 }).collect();
        let s = Sampler::new(lengths.clone(), 8, 1, true);
        for batch in s.epoch(0) {
            let first = lengths[batch[0]];
            assert!(batch.iter().all(|&i| lengths[i] == first), "a step mixes short and long samples: {batch:?}");
        }
    }
}
