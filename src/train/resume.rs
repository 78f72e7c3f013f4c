//! Where a run starts: `--resume` (absent, `auto`, or a checkpoint directory), decided by rank 0,
//! which verifies the checkpoint files, and read by every rank from the chosen `state.json`.
use super::checkpoint::{self, TrainState};
use super::dist::across::shared_value;
use super::dist::engine::Group;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Where to start (`--resume`: absent, `auto`, or a checkpoint directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// From the model's weights (an existing checkpoint in the output directory is an error).
    No,
    /// From the newest checkpoint in the output directory that verifies, if any.
    Auto,
    /// From this checkpoint directory.
    From(PathBuf),
}

impl std::str::FromStr for Resume {
    type Err = std::convert::Infallible;

    /// `auto` is the newest checkpoint that verifies; anything else is a checkpoint directory.
    fn from_str(s: &str) -> std::result::Result<Resume, Self::Err> {
        Ok(if s == "auto" { Resume::Auto } else { Resume::From(PathBuf::from(s)) })
    }
}

/// The checkpoint to resume from, decided by rank 0 (which verifies the files) and read by every
/// rank from its `state.json`.
pub fn resume_point(root: &Path, resume: Resume, group: Option<&Group>) -> Result<Option<(PathBuf, TrainState)>> {
    let rank = group.map_or(0, |g| g.rank);
    let decided = match rank {
        0 => choose_checkpoint(root, &resume),
        _ => Ok(None),
    };
    // -2: rank 0 failed (it reports why); -1: no checkpoint; else the step.
    let code = match &decided {
        Err(_) => -2,
        Ok(None) => -1,
        Ok(Some((_, s))) => s.step as i64,
    };
    let code = shared_value(group, code)?;
    if rank == 0 {
        return decided;
    }
    match code {
        -2 => bail!("rank 0 could not choose the checkpoint to resume from (its error is reported by rank 0)"),
        -1 => Ok(None),
        step => {
            let dir = match resume {
                Resume::From(dir) => dir,
                _ => root.join(checkpoint::name_of(step as usize)),
            };
            let text = std::fs::read_to_string(dir.join("state.json")).with_context(|| {
                format!("{}: no readable state.json (is output_dir on storage every node shares?)", dir.display())
            })?;
            Ok(Some((
                dir.clone(),
                serde_json::from_str(&text).with_context(|| format!("{}: invalid state.json", dir.display()))?,
            )))
        }
    }
}

/// Rank 0's choice: the checkpoint `resume` asks for, verified.
fn choose_checkpoint(root: &Path, resume: &Resume) -> Result<Option<(PathBuf, TrainState)>> {
    let scan = checkpoint::scan(root)?;
    match resume {
        Resume::No => {
            if scan.latest.is_some() {
                anyhow::bail!(
                    "{} already holds checkpoints: pass --resume auto to continue, or choose another output_dir",
                    root.display()
                );
            }
            if !scan.rejected.is_empty() {
                anyhow::bail!(
                    "{} holds checkpoints, none of which verifies ({}); remove them to start over, or choose another output_dir",
                    root.display(),
                    scan.rejected.iter().map(|(d, e)| format!("{}: {e}", d.display())).collect::<Vec<_>>().join("; ")
                );
            }
            Ok(None)
        }
        Resume::Auto => {
            if scan.latest.is_none() && !scan.rejected.is_empty() {
                let why: Vec<String> = scan.rejected.iter().map(|(d, e)| format!("  {}: {e}", d.display())).collect();
                anyhow::bail!(
                    "--resume auto: no checkpoint in {} verifies, so there is nothing to resume from:\n{}\nremove them to start over, or resume from a copy with --resume PATH",
                    root.display(),
                    why.join("\n")
                );
            }
            for (dir, why) in &scan.rejected {
                eprintln!("warning: skipping checkpoint {}: {why}", dir.display());
            }
            Ok(scan.latest)
        }
        Resume::From(dir) => Ok(Some((dir.clone(), checkpoint::verify(dir)?))),
    }
}
