//! Training: the loop (`trainer`), its parts (one micro-step with the loss and gradient
//! checkpointing, AdamW, the learning-rate schedule), and what makes a run survive preemption
//! (durable checkpoints, the stop signal); many processes through c10d (`dist`) and the
//! torchrun-compatible launcher (`launch`). Recipes are TOML files whose keys are also flags.
pub mod batch;
pub mod checkpoint;
pub mod dist;
pub mod launch;
pub mod metrics;
pub mod optim;
pub mod preempt;
pub mod recipe;
pub mod resume;
pub mod schedule;
pub mod step;
pub mod trainer;
