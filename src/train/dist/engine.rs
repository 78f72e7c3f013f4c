//! The safe wrapper over the c10d shim (`shim.cpp`): the only code that calls it. A [`Group`] is
//! this process's membership in the job (TCPStore rendezvous, then Gloo for CPU tensors or NCCL for
//! CUDA tensors); every collective is started asynchronously and returns a [`Pending`] that is
//! waited for with the group's timeout, so a dead or unreachable peer becomes an error naming the
//! collective and the ranks instead of a hang. Tensors must be contiguous and on the group's device.
use anyhow::{bail, Context, Result};
use std::ffi::{c_char, c_int, c_longlong, c_void, CStr, CString};
use std::time::Duration;
use tch::Tensor;
use torch_sys::C_tensor;

extern "C" {
    fn vicuna_dist_free_message(m: *mut c_char);
    fn vicuna_dist_has_nccl() -> c_int;
    fn vicuna_dist_init(
        master_addr: *const c_char,
        master_port: c_int,
        rank: c_int,
        world: c_int,
        local_addr: *const c_char,
        nccl: c_int,
        timeout_ms: c_longlong,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn vicuna_dist_free(group: *mut c_void);
    fn vicuna_dist_all_reduce(
        group: *mut c_void,
        tensors: *mut *mut C_tensor,
        n: c_int,
        op: c_int,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn vicuna_dist_reduce_scatter(
        group: *mut c_void,
        output: *mut C_tensor,
        input: *mut C_tensor,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn vicuna_dist_all_gather(
        group: *mut c_void,
        output: *mut C_tensor,
        input: *mut C_tensor,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn vicuna_dist_broadcast(
        group: *mut c_void,
        tensor: *mut C_tensor,
        root: c_int,
        out: *mut *mut c_void,
    ) -> *mut c_char;
    fn vicuna_dist_barrier(group: *mut c_void, out: *mut *mut c_void) -> *mut c_char;
    fn vicuna_dist_wait(work: *mut c_void, timeout_ms: c_longlong) -> *mut c_char;
    fn vicuna_dist_clear_grad(t: *mut C_tensor) -> *mut c_char;
}

/// Payload bytes handed to collectives by this process so far (see [`comm_bytes`]).
static COMM_BYTES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Payload bytes this process has handed to collectives: the tensors all-reduced, the input of a
/// reduce-scatter, the output of an all-gather, the tensor broadcast. Benchmarks compare it with
/// each shard mode's formula.
pub fn comm_bytes() -> u64 {
    COMM_BYTES.load(std::sync::atomic::Ordering::Relaxed)
}

fn count(tensors: &[&Tensor]) {
    let bytes: usize = tensors.iter().map(|t| t.numel() * t.kind().elt_size_in_bytes()).sum();
    COMM_BYTES.fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
}

/// The shim's collectives from one tensor into another (reduce-scatter, all-gather).
type PairCall = unsafe extern "C" fn(*mut c_void, *mut C_tensor, *mut C_tensor, *mut *mut c_void) -> *mut c_char;

/// Turns the shim's returned message (NULL on success) into a result.
fn checked(message: *mut c_char) -> std::result::Result<(), String> {
    if message.is_null() {
        return Ok(());
    }
    // SAFETY: a NUL-terminated string malloc'd by the shim, freed here exactly once.
    let text = unsafe { CStr::from_ptr(message) }.to_string_lossy().trim().to_string();
    unsafe { vicuna_dist_free_message(message) };
    Err(text)
}

/// Whether this build can use NCCL (the CUDA headers were there when it was compiled).
pub fn has_nccl() -> bool {
    // SAFETY: a constant.
    unsafe { vicuna_dist_has_nccl() != 0 }
}

/// Reduction of [`Group::all_reduce`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Sum,
    Max,
}

/// Where and how to join a job.
#[derive(Debug, Clone)]
pub struct Rendezvous {
    pub master_addr: String,
    pub master_port: u16,
    pub rank: usize,
    pub world_size: usize,
    /// The address this rank's Gloo transport listens on (one its peers can reach).
    pub local_addr: String,
    /// NCCL (CUDA tensors) instead of Gloo (CPU tensors).
    pub nccl: bool,
    /// Limit for the rendezvous and for every collective.
    pub timeout: Duration,
    /// Where the group's tensors live (the rank's GPU for NCCL, the CPU for Gloo).
    pub device: tch::Device,
}

/// This process's membership in the job; dropped when the run ends.
pub struct Group {
    raw: *mut c_void,
    pub rank: usize,
    pub world_size: usize,
    /// Where the group's tensors live (the rank's GPU for NCCL, the CPU for Gloo).
    pub device: tch::Device,
    timeout: Duration,
    master: String,
}

// SAFETY: the shim's group is only used through &self/&mut self from one thread at a time; c10d's
// backends are themselves thread-safe for issuing collectives.
unsafe impl Send for Group {}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: created by vicuna_dist_init, freed once.
        unsafe { vicuna_dist_free(self.raw) };
    }
}

/// A started collective; [`Pending::wait`] completes it (dropping it without waiting waits too,
/// so a tensor is never freed under a running collective).
#[must_use = "a collective must be waited for"]
pub struct Pending<'g> {
    work: *mut c_void,
    group: &'g Group,
    what: &'static str,
    /// The tensors the collective reads and writes, kept alive until it completes.
    _keep: Vec<Tensor>,
}

impl Pending<'_> {
    /// Waits for the collective within the group's timeout.
    pub fn wait(mut self) -> Result<()> {
        let work = std::mem::replace(&mut self.work, std::ptr::null_mut());
        self.group.finish(work, self.what)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.work.is_null() {
            let _ = self.group.finish(std::mem::replace(&mut self.work, std::ptr::null_mut()), self.what);
        }
    }
}

fn c_string(s: &str, what: &str) -> Result<CString> {
    CString::new(s).with_context(|| format!("{what} {s:?} holds a NUL byte"))
}

/// Shallow handles to `tensors`, kept alive (with their raw pointers) until a collective completes.
fn handles(tensors: &[&Tensor]) -> (Vec<Tensor>, Vec<*mut C_tensor>) {
    let mut keep: Vec<Tensor> = tensors.iter().map(|t| t.shallow_clone()).collect();
    let ptrs = keep.iter_mut().map(|t| t.as_mut_ptr()).collect();
    (keep, ptrs)
}

impl Group {
    /// Joins the job: blocks until all `world_size` ranks have joined or the timeout passes.
    pub fn join(r: &Rendezvous) -> Result<Group> {
        if r.nccl && !has_nccl() {
            bail!("this vicuna was built without NCCL (the CUDA headers were missing at build time); rebuild after `make setup`");
        }
        let addr = c_string(&r.master_addr, "MASTER_ADDR")?;
        let local = c_string(&r.local_addr, "the local address")?;
        let mut raw = std::ptr::null_mut();
        // SAFETY: valid C strings and an out pointer; the shim catches every exception.
        let message = unsafe {
            vicuna_dist_init(
                addr.as_ptr(),
                r.master_port as c_int,
                r.rank as c_int,
                r.world_size as c_int,
                local.as_ptr(),
                r.nccl as c_int,
                r.timeout.as_millis() as c_longlong,
                &mut raw,
            )
        };
        checked(message).map_err(|e| {
            anyhow::anyhow!(
                "rank {} of {}: cannot join the job at {}:{} within {} s: {e}; check that every rank was started with the same MASTER_ADDR/MASTER_PORT and WORLD_SIZE, and that the port is reachable",
                r.rank,
                r.world_size,
                r.master_addr,
                r.master_port,
                r.timeout.as_secs()
            )
        })?;
        Ok(Group {
            raw,
            rank: r.rank,
            world_size: r.world_size,
            device: r.device,
            timeout: r.timeout,
            master: format!("{}:{}", r.master_addr, r.master_port),
        })
    }

    fn finish(&self, work: *mut c_void, what: &str) -> Result<()> {
        // SAFETY: a handle from a started collective, consumed here exactly once.
        let message = unsafe { vicuna_dist_wait(work, self.timeout.as_millis() as c_longlong) };
        checked(message).map_err(|e| self.failed(what, &e))
    }

    fn failed(&self, what: &str, e: &str) -> anyhow::Error {
        let peers: Vec<String> = (0..self.world_size).filter(|r| *r != self.rank).map(|r| r.to_string()).collect();
        let peers = match peers.len() {
            1 => format!("its peer, rank {}", peers[0]),
            n if n <= 8 => format!("a peer rank (one of {})", peers.join(", ")),
            _ => format!("a peer rank (one of the other {} ranks)", peers.len()),
        };
        anyhow::anyhow!(
            "rank {} of {}: {what} failed or timed out after {} s: {e}; {peers} died or cannot be reached (rendezvous {}); resume with --resume auto once all ranks can run",
            self.rank,
            self.world_size,
            self.timeout.as_secs(),
            self.master
        )
    }

    fn started(
        &self,
        what: &'static str,
        message: *mut c_char,
        work: *mut c_void,
        keep: Vec<Tensor>,
    ) -> Result<Pending<'_>> {
        checked(message).map_err(|e| self.failed(what, &e))?;
        Ok(Pending { work, group: self, what, _keep: keep })
    }

    /// Starts an in-place all-reduce of `tensors` (each contiguous).
    pub fn all_reduce(&self, tensors: &[&Tensor], op: Op) -> Result<Pending<'_>> {
        count(tensors);
        let (keep, mut ptrs) = handles(tensors);
        let mut work = std::ptr::null_mut();
        // SAFETY: pointers to live tensors (kept until the work completes); the shim copies the handles.
        let message = unsafe {
            vicuna_dist_all_reduce(
                self.raw,
                ptrs.as_mut_ptr(),
                ptrs.len() as c_int,
                (op == Op::Max) as c_int,
                &mut work,
            )
        };
        self.started("all_reduce", message, work, keep)
    }

    /// Starts a reduce-scatter: `input` (world_size x `output`'s length) is summed over the ranks
    /// and this rank's part lands in `output`.
    pub fn reduce_scatter(&self, output: &Tensor, input: &Tensor) -> Result<Pending<'_>> {
        count(&[input]);
        self.output_input("reduce_scatter", vicuna_dist_reduce_scatter, output, input)
    }

    /// Starts an all-gather: every rank's `input` concatenated in rank order into `output`.
    pub fn all_gather(&self, output: &Tensor, input: &Tensor) -> Result<Pending<'_>> {
        count(&[output]);
        self.output_input("all_gather", vicuna_dist_all_gather, output, input)
    }

    /// Starts a collective of the shim's (output, input) shape.
    fn output_input(&self, what: &'static str, call: PairCall, output: &Tensor, input: &Tensor) -> Result<Pending<'_>> {
        let (keep, p) = handles(&[output, input]);
        let mut work = std::ptr::null_mut();
        // SAFETY: as above.
        let message = unsafe { call(self.raw, p[0], p[1], &mut work) };
        self.started(what, message, work, keep)
    }

    /// Starts a broadcast of `tensor` from `root` to every rank.
    pub fn broadcast(&self, tensor: &Tensor, root: usize) -> Result<Pending<'_>> {
        count(&[tensor]);
        let (keep, p) = handles(&[tensor]);
        let mut work = std::ptr::null_mut();
        // SAFETY: as above.
        let message = unsafe { vicuna_dist_broadcast(self.raw, p[0], root as c_int, &mut work) };
        self.started("broadcast", message, work, keep)
    }

    /// Small values reduced over the ranks (losses, counts, flags), on the group's device.
    pub fn all_reduce_values(&self, values: &[f64], op: Op) -> Result<Vec<f64>> {
        let t = Tensor::from_slice(values).to_device(self.device);
        self.all_reduce(&[&t], op)?.wait()?;
        Ok(Vec::try_from(&t.to_device(tch::Device::Cpu))?)
    }

    /// Rank `root`'s `values` on every rank.
    pub fn broadcast_values(&self, values: &[i64], root: usize) -> Result<Vec<i64>> {
        let t = Tensor::from_slice(values).to_device(self.device);
        self.broadcast(&t, root)?.wait()?;
        Ok(Vec::try_from(&t.to_device(tch::Device::Cpu))?)
    }

    /// Every rank's `values` (the same count on each), concatenated in rank order.
    pub fn all_gather_values(&self, values: &[i64]) -> Result<Vec<i64>> {
        let mine = Tensor::from_slice(values).to_device(self.device);
        let all = Tensor::zeros([(values.len() * self.world_size) as i64], (tch::Kind::Int64, self.device));
        self.all_gather(&all, &mine)?.wait()?;
        Ok(Vec::try_from(&all.to_device(tch::Device::Cpu))?)
    }

    /// Waits until every rank has reached this point.
    pub fn barrier(&self) -> Result<()> {
        let mut work = std::ptr::null_mut();
        // SAFETY: as above.
        let message = unsafe { vicuna_dist_barrier(self.raw, &mut work) };
        self.started("barrier", message, work, Vec::new())?.wait()
    }
}

/// Frees a parameter's accumulated gradient (PyTorch's `param.grad = None`).
pub fn clear_grad(t: &Tensor) {
    let mut t = t.shallow_clone();
    // SAFETY: a live tensor; resetting its grad cannot fail.
    let _ = checked(unsafe { vicuna_dist_clear_grad(t.as_mut_ptr()) });
}
