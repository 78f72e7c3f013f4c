//! What every stage may use: atomic file output and output checks, exclusive locks, the seeded
//! random number generator, progress bars and API keys from the environment. Depends on no other
//! module of the crate.
pub mod atomic;
pub mod lock;
pub mod progress;
pub mod rng;
pub mod secret;
