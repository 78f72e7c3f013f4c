//! What every stage may use: atomic file output and output checks, exclusive locks, the seeded
//! random number generator and progress bars. Depends on no other module of the crate.
pub mod atomic;
pub mod lock;
pub mod progress;
pub mod rng;
