//! `vicuna train --nproc-per-node N`: the torchrun-compatible launcher. It starts N copies of the
//! same `vicuna train` command on this node with the variables torchrun sets (`RANK`,
//! `LOCAL_RANK`, `WORLD_SIZE`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`, and
//! `OMP_NUM_THREADS` split between them unless set), prefixes each worker's stderr lines with its
//! rank (rank 0's stdout, the run's outcome, passes through as is), forwards SIGTERM and SIGUSR1 to
//! every worker (so a spot warning makes them all save one checkpoint), and when a worker fails it
//! stops the others (SIGTERM, then SIGKILL after a grace period) and exits with that worker's code
//! and error. Several nodes: run it on each with `--nnodes M --node-rank K` and the same
//! `--master-addr`/`--master-port`.
use super::preempt;
use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The job's shape on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Launch {
    pub nproc_per_node: usize,
    pub nnodes: usize,
    pub node_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
}

/// The launcher's own flags, removed from the command line the workers get.
pub const LAUNCH_FLAGS: [&str; 5] = ["--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--master-port"];

/// `args` without the launcher's flags and their values (`--flag V` or `--flag=V`).
pub fn worker_args(args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for a in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let s = a.to_string_lossy();
        if LAUNCH_FLAGS.contains(&s.as_ref()) {
            skip_value = true;
        } else if !LAUNCH_FLAGS.iter().any(|f| s.starts_with(&format!("{f}="))) {
            out.push(a.clone());
        }
    }
    out
}

/// The environment of local worker `local_rank`.
pub fn worker_env(l: &Launch, local_rank: usize, threads: Option<usize>) -> Vec<(String, String)> {
    let mut env = vec![
        ("RANK".to_string(), (l.node_rank * l.nproc_per_node + local_rank).to_string()),
        ("LOCAL_RANK".to_string(), local_rank.to_string()),
        ("WORLD_SIZE".to_string(), (l.nnodes * l.nproc_per_node).to_string()),
        ("LOCAL_WORLD_SIZE".to_string(), l.nproc_per_node.to_string()),
        ("GROUP_RANK".to_string(), l.node_rank.to_string()),
        ("MASTER_ADDR".to_string(), l.master_addr.clone()),
        ("MASTER_PORT".to_string(), l.master_port.to_string()),
    ];
    if let Some(t) = threads {
        env.push(("OMP_NUM_THREADS".to_string(), t.to_string()));
    }
    env
}

/// Starts the local workers (`exe` with `args`), relays their output, and waits for them.
/// Returns the exit code for this process: 0 when every worker succeeded.
pub fn run(l: &Launch, exe: &std::path::Path, args: &[OsString]) -> Result<i32> {
    if l.nproc_per_node == 0 || l.nnodes == 0 || l.node_rank >= l.nnodes {
        bail!(
            "--nproc-per-node {} --nnodes {} --node-rank {}: need at least one process and node, and a node rank below --nnodes",
            l.nproc_per_node,
            l.nnodes,
            l.node_rank
        );
    }
    preempt::install()?;
    // Like torchrun, share the cores between the workers unless the user chose.
    let threads = match std::env::var_os("OMP_NUM_THREADS") {
        Some(_) => None,
        None => Some((std::thread::available_parallelism().map_or(1, |n| n.get()) / l.nproc_per_node).max(1)),
    };
    let last_error: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(vec![String::new(); l.nproc_per_node]));
    let mut children: Vec<(usize, Child)> = Vec::new();
    let mut relays = Vec::new();
    for local in 0..l.nproc_per_node {
        let rank = l.node_rank * l.nproc_per_node + local;
        let mut cmd = Command::new(exe);
        cmd.args(args).envs(worker_env(l, local, threads)).stdin(Stdio::null()).stderr(Stdio::piped());
        cmd.stdout(if rank == 0 { Stdio::inherit() } else { Stdio::piped() });
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                stop_all(&mut children);
                return Err(e).with_context(|| format!("cannot start worker {rank} ({})", exe.display()));
            }
        };
        if let Some(out) = child.stdout.take() {
            relays.push(std::thread::spawn(move || relay(out, rank, false, None)));
        }
        let err = child.stderr.take().expect("stderr is piped");
        let last = Arc::clone(&last_error);
        relays.push(std::thread::spawn(move || relay(err, rank, true, Some((last, local)))));
        children.push((rank, child));
    }
    let mut forwarded = false;
    let mut failed: Option<(usize, i32)> = None;
    let mut running: Vec<bool> = vec![true; children.len()];
    while running.iter().any(|r| *r) {
        if let (Some(signal), false) = (preempt::requested(), forwarded) {
            forwarded = true;
            eprintln!("vicuna train: signal {signal}: forwarded to {} worker(s)", children.len());
            for (_, c) in &children {
                signal_child(c, signal);
            }
        }
        for (i, (rank, child)) in children.iter_mut().enumerate() {
            if !running[i] {
                continue;
            }
            if let Some(status) = child.try_wait()? {
                running[i] = false;
                if !status.success() && failed.is_none() {
                    use std::os::unix::process::ExitStatusExt;
                    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
                    failed = Some((*rank, code));
                }
            }
        }
        if let Some((rank, _)) = failed {
            if running.iter().any(|r| *r) {
                eprintln!("vicuna train: worker {rank} failed; stopping the others");
                stop_all(&mut children);
                running.iter_mut().for_each(|r| *r = false);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for r in relays {
        let _ = r.join();
    }
    match failed {
        None => Ok(0),
        Some((rank, code)) => {
            let local = rank - l.node_rank * l.nproc_per_node;
            let error = last_error.lock().map(|e| e[local].clone()).unwrap_or_default();
            eprintln!(
                "vicuna train: worker {rank} exited with code {code}: {}",
                if error.is_empty() { "(no error message)" } else { &error }
            );
            Ok(if code == 0 { 1 } else { code })
        }
    }
}

/// Copies a worker's lines to ours, stderr lines prefixed with `[rank R]`; remembers the last
/// `error:` line (the worker's final error) for the launcher's summary.
fn relay(pipe: impl std::io::Read, rank: usize, is_stderr: bool, last: Option<(Arc<Mutex<Vec<String>>>, usize)>) {
    let reader = std::io::BufReader::new(pipe);
    for line in reader.split(b'\n') {
        let Ok(line) = line else { break };
        let text = String::from_utf8_lossy(&line);
        if let (Some((last, i)), true) = (&last, text.starts_with("error:")) {
            if let Ok(mut l) = last.lock() {
                l[*i] = text.to_string();
            }
        }
        if is_stderr {
            let _ = writeln!(std::io::stderr().lock(), "[rank {rank}] {text}");
        } else {
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
    }
}

fn signal_child(child: &Child, signal: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, signal) };
}

/// SIGTERM to the workers still running, SIGKILL to those still there after 10 s.
fn stop_all(children: &mut [(usize, Child)]) {
    for (_, c) in children.iter() {
        signal_child(c, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for (_, c) in children.iter_mut() {
        while Instant::now() < deadline {
            if matches!(c.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !matches!(c.try_wait(), Ok(Some(_))) {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workers_get_the_command_without_the_launcher_flags() {
        let args: Vec<OsString> =
            ["train", "--nproc-per-node", "2", "--model", "m", "--master-port=29600", "--nnodes", "1", "--json"]
                .iter()
                .map(OsString::from)
                .collect();
        let kept: Vec<String> = worker_args(&args).iter().map(|a| a.to_string_lossy().to_string()).collect();
        assert_eq!(kept, ["train", "--model", "m", "--json"]);
    }

    #[test]
    fn ranks_are_numbered_node_by_node() {
        let l =
            Launch { nproc_per_node: 4, nnodes: 2, node_rank: 1, master_addr: "10.0.0.1".into(), master_port: 29500 };
        let env: std::collections::HashMap<String, String> = worker_env(&l, 3, Some(2)).into_iter().collect();
        assert_eq!(env["RANK"], "7");
        assert_eq!(env["LOCAL_RANK"], "3");
        assert_eq!(env["WORLD_SIZE"], "8");
        assert_eq!(env["LOCAL_WORLD_SIZE"], "4");
        assert_eq!(env["OMP_NUM_THREADS"], "2");
    }
}
