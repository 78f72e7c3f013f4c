//! Preemption: SIGTERM (a spot instance's two-minute warning, `kill`, SLURM) or SIGUSR1 sets a
//! flag; the training loop checks it after every micro-step, saves a checkpoint and exits 0. The
//! handler only stores to an atomic, the one thing a signal handler may safely do.
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// CLOCK_MONOTONIC nanoseconds at the signal's arrival.
static AT: AtomicU64 = AtomicU64::new(0);

fn monotonic_nanos() -> u64 {
    // SAFETY: clock_gettime is async-signal-safe and writes only the given struct.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

extern "C" fn on_signal(signal: libc::c_int) {
    AT.store(monotonic_nanos(), Ordering::SeqCst);
    SIGNAL.store(signal, Ordering::SeqCst);
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Seconds since the stop signal arrived (for "signal to durable checkpoint" reports).
pub fn seconds_since_signal() -> f64 {
    monotonic_nanos().saturating_sub(AT.load(Ordering::SeqCst)) as f64 / 1e9
}

/// Installs the handler for SIGTERM and SIGUSR1.
pub fn install() -> anyhow::Result<()> {
    for signal in [libc::SIGTERM, libc::SIGUSR1] {
        // SAFETY: a plain handler that only writes atomics; sigaction with an empty mask.
        let rc = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if rc != 0 {
            anyhow::bail!("cannot install a handler for signal {signal}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether a stop was requested, and by which signal.
pub fn requested() -> Option<i32> {
    REQUESTED.load(Ordering::SeqCst).then(|| SIGNAL.load(Ordering::SeqCst))
}
