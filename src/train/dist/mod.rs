//! Data-parallel training through libtorch's own c10d (the engine under `torch.distributed` and
//! FSDP): the C++ shim and its safe wrapper (`engine`), the job's shape as torchrun describes it in
//! the environment (this file), and ZeRO-style sharding of parameters, gradients and AdamW state
//! over the ranks (`sharded`).
pub mod across;
pub mod engine;
pub mod sharded;

use anyhow::{bail, Context, Result};
use std::time::Duration;

/// How parameters, gradients and optimizer state are spread over the ranks (`--shard`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ShardMode {
    /// DDP: every rank holds everything; gradients are all-reduced layer by layer.
    #[default]
    None,
    /// ZeRO-2 (FSDP SHARD_GRAD_OP): gradients reduce-scattered; each rank keeps and updates the
    /// fp32 masters and AdamW moments of its slice; updated parameters all-gathered.
    GradOp,
    /// ZeRO-3 (FSDP FULL_SHARD): parameters sharded too, each layer gathered just before its
    /// forward and its recompute and freed after.
    Full,
}

impl ShardMode {
    /// The name used by the flag and the recipe key.
    pub fn name(self) -> &'static str {
        match self {
            ShardMode::None => "none",
            ShardMode::GradOp => "grad-op",
            ShardMode::Full => "full",
        }
    }
}

/// This process's place in the job, from the variables torchrun (and `vicuna train
/// --nproc-per-node`) set: `RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`,
/// `MASTER_PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub rank: usize,
    pub local_rank: usize,
    pub world_size: usize,
    pub local_world_size: usize,
    pub master_addr: String,
    pub master_port: u16,
}

impl Env {
    /// One process, no job.
    pub fn single() -> Env {
        Env {
            rank: 0,
            local_rank: 0,
            world_size: 1,
            local_world_size: 1,
            master_addr: "127.0.0.1".into(),
            master_port: 29500,
        }
    }

    /// Reads the job from `get` (the process environment in [`Env::from_process`]); without
    /// `WORLD_SIZE` the run is one process.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Env> {
        let Some(world) = get("WORLD_SIZE") else {
            return Ok(Env::single());
        };
        let number = |key: &str, default: Option<usize>| -> Result<usize> {
            match get(key) {
                Some(v) => v.trim().parse().with_context(|| format!("{key}={v:?} is not a non-negative integer")),
                None => default.with_context(|| {
                    format!(
                        "WORLD_SIZE is set but {key} is not (launch with torchrun or vicuna train --nproc-per-node)"
                    )
                }),
            }
        };
        let world_size: usize =
            world.trim().parse().with_context(|| format!("WORLD_SIZE={world:?} is not a positive integer"))?;
        let rank = number("RANK", None)?;
        let local_rank = number("LOCAL_RANK", Some(rank))?;
        let local_world_size = number("LOCAL_WORLD_SIZE", Some(world_size))?;
        let master_addr = get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        let port = number("MASTER_PORT", Some(29500))?;
        if world_size == 0 || rank >= world_size || local_rank >= local_world_size.max(1) {
            bail!("RANK={rank} LOCAL_RANK={local_rank} do not fit WORLD_SIZE={world_size} LOCAL_WORLD_SIZE={local_world_size}");
        }
        let master_port = u16::try_from(port)
            .ok()
            .filter(|p| *p > 0)
            .with_context(|| format!("MASTER_PORT={port} is not a TCP port"))?;
        Ok(Env { rank, local_rank, world_size, local_world_size, master_addr, master_port })
    }

    /// The job described by this process's environment.
    pub fn from_process() -> Result<Env> {
        Env::from_vars(|k| std::env::var(k).ok())
    }

    /// Whether this process prints progress and writes metrics, plots and the exported model.
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// The rendezvous for this rank, its transport bound to the local address that reaches the
    /// master (so two nodes on two networks find each other without naming an interface).
    pub fn rendezvous(&self, device: tch::Device, timeout: Duration) -> Result<engine::Rendezvous> {
        Ok(engine::Rendezvous {
            master_addr: self.master_addr.clone(),
            master_port: self.master_port,
            rank: self.rank,
            world_size: self.world_size,
            local_addr: local_address_towards(&self.master_addr, self.master_port)?,
            nccl: device.is_cuda(),
            timeout,
            device,
        })
    }
}

/// The local IP address the kernel would use to reach `host` (no packet is sent: connecting a
/// UDP socket only picks a route). `GLOO_SOCKET_IFADDR` overrides it.
fn local_address_towards(host: &str, port: u16) -> Result<String> {
    if let Ok(addr) = std::env::var("GLOO_SOCKET_IFADDR") {
        return Ok(addr);
    }
    use std::net::{ToSocketAddrs, UdpSocket};
    let target = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("MASTER_ADDR {host} does not resolve"))?
        .find(|a| a.is_ipv4())
        .with_context(|| format!("MASTER_ADDR {host} has no IPv4 address"))?;
    let socket = UdpSocket::bind("0.0.0.0:0").context("cannot open a UDP socket to find the local address")?;
    socket.connect(target).with_context(|| format!("no route to MASTER_ADDR {host}"))?;
    Ok(socket.local_addr()?.ip().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn torchrun_variables_describe_the_job() {
        assert_eq!(Env::from_vars(vars(&[])).unwrap(), Env::single());
        let env = Env::from_vars(vars(&[
            ("WORLD_SIZE", "8"),
            ("RANK", "5"),
            ("LOCAL_RANK", "1"),
            ("LOCAL_WORLD_SIZE", "4"),
            ("MASTER_ADDR", "10.0.0.1"),
            ("MASTER_PORT", "29400"),
        ]))
        .unwrap();
        assert_eq!((env.rank, env.local_rank, env.world_size, env.local_world_size), (5, 1, 8, 4));
        assert_eq!((env.master_addr.as_str(), env.master_port), ("10.0.0.1", 29400));
        let err = Env::from_vars(vars(&[("WORLD_SIZE", "2")])).unwrap_err().to_string();
        assert_eq!(err, "WORLD_SIZE is set but RANK is not (launch with torchrun or vicuna train --nproc-per-node)");
        let err = Env::from_vars(vars(&[("WORLD_SIZE", "2"), ("RANK", "2")])).unwrap_err().to_string();
        assert_eq!(err, "RANK=2 LOCAL_RANK=2 do not fit WORLD_SIZE=2 LOCAL_WORLD_SIZE=2");
        let err = Env::from_vars(vars(&[("WORLD_SIZE", "2"), ("RANK", "0"), ("MASTER_PORT", "70000")]))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "MASTER_PORT=70000 is not a TCP port");
    }
}
