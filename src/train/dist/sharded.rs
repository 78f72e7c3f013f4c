//! The trained parameters as flat fp32 shards, ZeRO style, for one process or many.
//!
//! The model's parameters are grouped into units as FSDP's auto-wrap groups them for Llama: the
//! embedding (with everything before the first decoder layer), one unit per decoder layer, and the
//! final norm with the LM head. Each unit is one flat vector (parameters in checkpoint order),
//! padded to a multiple of the number of owners and cut into equal slices; a rank's shard is the
//! concatenation of its slice of every unit. The shard holds the fp32 master weights, the AdamW
//! moments (in [`crate::train::optim::AdamW`], over the one flat tensor) and the fp32 gradient.
//!
//! - `none` (and one process): one owner, every rank holds everything. With an fp32 model the
//!   parameters are views of the master vector (no copy); gradients are all-reduced unit by unit
//!   as the backward layer loop finishes each (overlapped with the next layer's backward).
//! - `grad-op`: gradients reduce-scattered; each rank updates its slice; the updated slices are
//!   all-gathered into every rank's resident parameters.
//! - `full`: the parameters are not resident: a unit is all-gathered just before it is used and
//!   freed after; gradients are reduce-scattered after every micro-step's backward of the unit.
//!
//! Checkpoint coordinates are the unpadded global flat vector (all units in order), so a shard
//! saved by one world size or mode can be read back by any other ([`Layout::owned`]).
use super::engine::{clear_grad, Group, Op, Pending};
use super::ShardMode;
use crate::train::step::{Part, PartHooks};
use anyhow::Result;
use tch::{Device, Kind, Tensor};

/// One group of parameters gathered, reduced and freed together.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// Indices of its parameters in checkpoint order.
    pub params: std::ops::Range<usize>,
    /// Elements of all its parameters.
    pub numel: i64,
    /// Elements each owner holds (numel padded to a multiple of the owners, divided).
    pub slice: i64,
    /// Where the unit starts in the unpadded global flat vector (checkpoint coordinates).
    pub global: i64,
    /// Where this rank's slice starts in its shard.
    pub local: i64,
    /// The decoder layer it holds, if it is one (the embedding and the head are not).
    pub layer: Option<usize>,
}

/// How the parameters are laid out flat and cut between the owners.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub names: Vec<String>,
    pub shapes: Vec<Vec<i64>>,
    pub units: Vec<Unit>,
    /// Ranks the state is divided between (1 for `none`).
    pub owners: usize,
    /// This rank's place among the owners.
    pub owner: usize,
    /// Elements of this rank's shard (with padding).
    pub shard_len: i64,
    /// Elements of all parameters.
    pub total: i64,
}

fn layer_of(name: &str) -> Option<usize> {
    name.strip_prefix("model.layers.")?.split('.').next()?.parse().ok()
}

impl Layout {
    /// Units from the parameter names (`model.layers.N.` prefixes), cut between `owners`.
    pub fn new(named: &[(String, Vec<i64>)], owners: usize, owner: usize) -> Layout {
        let mut units: Vec<Unit> = Vec::new();
        let (mut global, mut local) = (0i64, 0i64);
        let mut i = 0;
        while i < named.len() {
            let layer = layer_of(&named[i].0);
            let start = i;
            while i < named.len() && layer_of(&named[i].0) == layer {
                i += 1;
            }
            let numel: i64 = named[start..i].iter().map(|(_, s)| s.iter().product::<i64>()).sum();
            let slice = (numel + owners as i64 - 1) / owners as i64;
            units.push(Unit { params: start..i, numel, slice, global, local, layer });
            global += numel;
            local += slice;
        }
        Layout {
            names: named.iter().map(|(n, _)| n.clone()).collect(),
            shapes: named.iter().map(|(_, s)| s.clone()).collect(),
            units,
            owners,
            owner,
            shard_len: local,
            total: global,
        }
    }

    /// The pieces of the global flat vector this rank owns: (global start, length, offset in the
    /// shard), in order.
    pub fn owned(&self) -> Vec<[i64; 3]> {
        let r = self.owner as i64;
        self.units
            .iter()
            .filter_map(|u| {
                let start = (r * u.slice).min(u.numel);
                let end = ((r + 1) * u.slice).min(u.numel);
                (end > start).then_some([u.global + start, end - start, u.local])
            })
            .collect()
    }

    fn numel(&self, p: usize) -> i64 {
        self.shapes[p].iter().product()
    }

    /// Offsets of the unit's parameters within the unit's flat vector.
    fn offsets(&self, u: &Unit) -> Vec<(usize, i64)> {
        let mut at = 0;
        u.params
            .clone()
            .map(|p| {
                let o = at;
                at += self.numel(p);
                (p, o)
            })
            .collect()
    }

    /// Bytes a rank keeps between steps for parameters and optimizer state: fp32 masters, two
    /// moments and the fp32 gradient of its shard, plus the resident parameters (`kind`) unless
    /// the mode gathers them on demand.
    pub fn resident_bytes(&self, mode: ShardMode, kind: Kind) -> i64 {
        let shard = self.shard_len * 4 * 4;
        let gathered_on_demand = mode == ShardMode::Full && self.owners > 1;
        let views_of_masters = kind == Kind::Float && self.owners == 1;
        let params =
            if gathered_on_demand || views_of_masters { 0 } else { self.total * kind.elt_size_in_bytes() as i64 };
        shard + params
    }
}

/// Reductions left running while the backward goes on (the units after them keep computing):
/// two, so a layer's communication overlaps the next layer's backward while memory holds at most
/// three units' gradients.
const MAX_IN_FLIGHT: usize = 2;

/// A started gradient reduction and where its result goes.
struct InFlight<'g> {
    pending: Pending<'g>,
    result: Tensor,
    into: Tensor,
}

/// The parameters of one model and this rank's shard of their training state.
pub struct Sharded<'g> {
    pub layout: Layout,
    pub mode: ShardMode,
    group: Option<&'g Group>,
    /// The model's parameter tensors (their data is swapped in and out by `full`).
    params: Vec<Tensor>,
    kind: Kind,
    device: Device,
    /// Per unit, its flat parameters (owners x slice, model kind) while resident.
    full: Vec<Option<Tensor>>,
    /// fp32 master weights of the shard.
    pub master: Tensor,
    /// fp32 gradient of the shard for the current optimizer step.
    pub grad: Tensor,
    inflight: Vec<InFlight<'g>>,
    /// Per unit, the fp32 sum of its gradients over this step's earlier micro-steps, when the
    /// parameters are not fp32 and the reduction waits for the step's last micro-step.
    accumulated: Vec<Option<Tensor>>,
    /// Whether parameters are views of `master` (fp32, one owner): nothing to copy after a step.
    shares_master: bool,
    /// Reduce gradients at this micro-step (`none`/`grad-op` reduce once per optimizer step).
    pub reduce_now: bool,
}

impl<'g> Sharded<'g> {
    /// Takes over the model's parameters (`params`: its tensors, possibly placeholders that hold
    /// no memory): fills this rank's fp32 master shard from `read(parameter, start, len)` (the
    /// flat elements of one parameter, read from the checkpoint: only this rank's slices are ever
    /// read) and lays the parameters out as the mode wants them. With `offload` the masters, the
    /// gradient and (through the optimizer) the moments stay in host memory while the model runs
    /// on the GPU.
    pub fn new(
        params: Vec<(String, Tensor)>,
        read: &dyn Fn(usize, i64, i64) -> Result<Tensor>,
        mode: ShardMode,
        offload: bool,
        group: Option<&'g Group>,
    ) -> Result<Sharded<'g>> {
        let world = group.map_or(1, |g| g.world_size);
        let rank = group.map_or(0, |g| g.rank);
        let mode = if world == 1 { ShardMode::None } else { mode };
        let (owners, owner) = if mode == ShardMode::None { (1, 0) } else { (world, rank) };
        let shapes: Vec<(String, Vec<i64>)> = params.iter().map(|(n, t)| (n.clone(), t.size())).collect();
        let layout = Layout::new(&shapes, owners, owner);
        let (kind, device) = (params[0].1.kind(), params[0].1.device());
        let params: Vec<Tensor> = params.into_iter().map(|(_, t)| t).collect();
        for p in &params {
            let _ = p.set_requires_grad(true);
        }
        let state_device = if offload { Device::Cpu } else { device };
        let master = Tensor::zeros([layout.shard_len], (Kind::Float, state_device));
        for u in &layout.units {
            let mine = (owner as i64 * u.slice, ((owner as i64 + 1) * u.slice).min(u.numel));
            for (p, at) in layout.offsets(u) {
                let (a, b) = (mine.0.max(at), mine.1.min(at + layout.numel(p)));
                if b > a {
                    let piece = read(p, a - at, b - a)?;
                    tch::no_grad(|| master.narrow(0, u.local + a - mine.0, b - a).copy_(&piece));
                }
            }
        }
        let grad = Tensor::zeros([layout.shard_len], (Kind::Float, state_device));
        let shares_master = owners == 1 && kind == Kind::Float && state_device == device;
        let n = layout.units.len();
        let mut s = Sharded {
            layout,
            mode,
            group,
            params,
            kind,
            device,
            full: (0..n).map(|_| None).collect(),
            master,
            grad,
            inflight: Vec::new(),
            accumulated: (0..n).map(|_| None).collect(),
            shares_master,
            reduce_now: true,
        };
        if mode == ShardMode::Full {
            for u in 0..n {
                s.release(u);
            }
        } else {
            for u in 0..n {
                s.gather(u)?;
            }
        }
        Ok(s)
    }

    /// Unit `u`'s fp32 master values (its `numel` elements, unpadded) on this rank: all-gathered
    /// from their owners when sharded (a collective: every rank asks for the same units in the
    /// same order). The export writes these, not the model-format parameters, so that an fp32
    /// export of a bf16 run keeps the masters' precision.
    pub fn master_unit(&self, u: usize) -> Result<Tensor> {
        let unit = &self.layout.units[u];
        let mine = self.master.narrow(0, unit.local, unit.slice);
        let flat = match self.group.filter(|_| self.layout.owners > 1) {
            Some(g) => {
                let all = Tensor::empty([unit.slice * self.layout.owners as i64], (Kind::Float, self.device));
                g.all_gather(&all, &mine.to_device(self.device))?.wait()?;
                all
            }
            None => mine,
        };
        Ok(flat.narrow(0, 0, unit.numel))
    }

    /// Parameter `p`'s values (in its shape) within `flat`, its unit's flat vector.
    pub fn param_in(&self, flat: &Tensor, p: usize) -> Tensor {
        let unit = &self.layout.units[self.unit_of_param(p)];
        let at = self.layout.offsets(unit).into_iter().find(|(q, _)| *q == p).map_or(0, |(_, at)| at);
        flat.narrow(0, at, self.layout.numel(p)).view(self.layout.shapes[p].as_slice())
    }

    /// Number of units (embedding, each layer, head).
    pub fn units(&self) -> usize {
        self.layout.units.len()
    }

    /// The unit holding decoder layer `i`.
    pub fn unit_of_layer(&self, i: usize) -> usize {
        self.layout.units.iter().position(|u| u.layer == Some(i)).expect("every layer has a unit")
    }

    /// The unit holding parameter `p` (checkpoint order).
    pub fn unit_of_param(&self, p: usize) -> usize {
        self.layout.units.iter().position(|u| u.params.contains(&p)).expect("every parameter has a unit")
    }

    /// The units that are not decoder layers (needed for the whole micro-step).
    pub fn outer_units(&self) -> Vec<usize> {
        (0..self.units()).filter(|&u| self.layout.units[u].layer.is_none()).collect()
    }

    /// Makes unit `u`'s parameters resident (a no-op unless they were released).
    pub fn gather(&mut self, u: usize) -> Result<()> {
        if self.full[u].is_some() {
            return Ok(());
        }
        let unit = self.layout.units[u].clone();
        let flat = if self.shares_master {
            self.master.narrow(0, unit.local, unit.numel)
        } else {
            let buf = Tensor::empty([unit.slice * self.layout.owners as i64], (self.kind, self.device));
            let mine = self.master.narrow(0, unit.local, unit.slice);
            match self.group.filter(|_| self.layout.owners > 1) {
                Some(g) => g.all_gather(&buf, &mine.to_device(self.device).to_kind(self.kind))?.wait()?,
                None => tch::no_grad(|| {
                    buf.shallow_clone().copy_(&mine);
                }),
            }
            buf
        };
        for (p, at) in self.layout.offsets(&unit) {
            let view = flat.narrow(0, at, self.layout.numel(p)).view(self.layout.shapes[p].as_slice());
            self.params[p].shallow_clone().set_data(&view);
        }
        self.full[u] = Some(flat);
        Ok(())
    }

    /// Frees unit `u`'s parameters under `full` (a no-op otherwise).
    pub fn release(&mut self, u: usize) {
        if self.mode != ShardMode::Full {
            return;
        }
        let empty = Tensor::empty([0], (self.kind, self.device));
        for p in self.layout.units[u].params.clone() {
            self.params[p].shallow_clone().set_data(&empty);
        }
        self.full[u] = None;
    }

    /// Starts reducing unit `u`'s gradients (those accumulated in the parameters since the last
    /// reduction) into the shard's fp32 gradient, and frees them. Does nothing unless
    /// `reduce_now`, except with parameters in a low-precision format: their gradients are then
    /// added into an fp32 sum after every micro-step (into the shard's gradient directly when one
    /// process owns everything), so that accumulating many micro-batches never rounds to bf16.
    /// Completes in [`Sharded::finish_reductions`].
    pub fn reduce(&mut self, u: usize) -> Result<()> {
        let low_precision = self.kind != Kind::Float;
        let now = self.reduce_now || (low_precision && self.group.is_none());
        if !now && !low_precision {
            // fp32 gradients keep accumulating in the parameters until the step's last micro-step.
            return Ok(());
        }
        let unit = self.layout.units[u].clone();
        let Some(group) = self.group else {
            self.add_into_shard(&unit);
            return Ok(());
        };
        let owners = self.layout.owners as i64;
        let flat = match self.accumulated[u].take() {
            Some(sum) => sum,
            None => Tensor::zeros([unit.slice * owners], (Kind::Float, self.device)),
        };
        tch::no_grad(|| {
            for (p, at) in self.layout.offsets(&unit) {
                let g = self.params[p].grad();
                if g.defined() {
                    let _ = flat.narrow(0, at, self.layout.numel(p)).g_add_(&g.reshape([-1]));
                }
                clear_grad(&self.params[p]);
            }
        });
        if !now {
            self.accumulated[u] = Some(flat);
            return Ok(());
        }
        let into = self.grad.narrow(0, unit.local, unit.slice);
        if owners == 1 {
            let pending = group.all_reduce(&[&flat], Op::Sum)?;
            self.inflight.push(InFlight { pending, result: flat, into });
        } else {
            let result = Tensor::zeros([unit.slice], (Kind::Float, self.device));
            let pending = group.reduce_scatter(&result, &flat)?;
            self.inflight.push(InFlight { pending, result, into });
        }
        // Bounded overlap: each reduction holds its unit's full-size gradient until it completes.
        while self.inflight.len() > MAX_IN_FLIGHT {
            let oldest = self.inflight.remove(0);
            Self::complete(oldest)?;
        }
        Ok(())
    }

    /// One process owns everything: the parameters' gradients go straight into the shard's fp32
    /// gradient (no collective, no buffer), and are freed.
    fn add_into_shard(&self, unit: &Unit) {
        let into = self.grad.narrow(0, unit.local, unit.slice);
        tch::no_grad(|| {
            for (p, at) in self.layout.offsets(unit) {
                let g = self.params[p].grad();
                if g.defined() {
                    let into = into.narrow(0, at, self.layout.numel(p));
                    let _ = into.shallow_clone().g_add_(&g.reshape([-1]).to_device(into.device()));
                }
                clear_grad(&self.params[p]);
            }
        });
    }

    fn complete(f: InFlight) -> Result<()> {
        f.pending.wait()?;
        tch::no_grad(|| {
            let _ = f.into.shallow_clone().g_add_(&f.result.to_device(f.into.device()));
        });
        Ok(())
    }

    /// Waits for the started reductions and adds their results into the shard's gradient.
    pub fn finish_reductions(&mut self) -> Result<()> {
        self.inflight.drain(..).try_for_each(Self::complete)
    }

    /// The 2-norm of the whole model's gradient (all ranks' shards together).
    pub fn grad_norm(&self) -> Result<f64> {
        let sq = tch::no_grad(|| self.grad.to_kind(Kind::Double).square().sum(Kind::Double)).double_value(&[]);
        let sq = match self.group.filter(|_| self.layout.owners > 1) {
            Some(g) => g.all_reduce_values(&[sq], Op::Sum)?[0],
            None => sq,
        };
        Ok(sq.sqrt())
    }

    /// Scales the gradient so its global norm is at most `max_norm` (as
    /// `torch.nn.utils.clip_grad_norm_`); returns the norm before clipping.
    pub fn clip_grad_norm(&self, max_norm: f64) -> Result<f64> {
        let total = self.grad_norm()?;
        let coef = max_norm / (total + 1e-6);
        if max_norm > 0.0 && coef < 1.0 {
            tch::no_grad(|| {
                let _ = self.grad.shallow_clone().g_mul_scalar_(coef);
            });
        }
        Ok(total)
    }

    /// After the optimizer updated `master`: brings the resident parameters up to date and zeroes
    /// the gradient for the next step.
    pub fn publish(&mut self) -> Result<()> {
        if !self.shares_master {
            for u in 0..self.units() {
                if self.full[u].is_some() {
                    self.full[u] = None;
                    self.gather(u)?;
                }
            }
        }
        tch::no_grad(|| {
            let _ = self.grad.zero_();
        });
        Ok(())
    }

    /// Drops every gradient accumulated in the parameters and in the shard (an interrupted step).
    pub fn discard_gradients(&mut self) -> Result<()> {
        self.finish_reductions()?;
        self.accumulated.iter_mut().for_each(|a| *a = None);
        for p in &self.params {
            clear_grad(p);
        }
        tch::no_grad(|| {
            let _ = self.grad.zero_();
        });
        Ok(())
    }
}

impl PartHooks for Sharded<'_> {
    fn gather(&mut self, part: Part) -> Result<()> {
        self.units_of(part).into_iter().try_for_each(|u| Sharded::gather(self, u))
    }

    fn release(&mut self, part: Part) {
        self.units_of(part).into_iter().for_each(|u| Sharded::release(self, u));
    }

    fn reduce(&mut self, part: Part) -> Result<()> {
        // Last unit first: the order in which backward finishes them.
        self.units_of(part).into_iter().rev().try_for_each(|u| Sharded::reduce(self, u))
    }
}

impl Sharded<'_> {
    fn units_of(&self, part: Part) -> Vec<usize> {
        match part {
            Part::Outer => self.outer_units(),
            Part::Layer(i) => vec![self.unit_of_layer(i)],
            Part::All => (0..self.units()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named() -> Vec<(String, Vec<i64>)> {
        vec![
            ("model.embed_tokens.weight".into(), vec![5, 2]),
            ("model.layers.0.a".into(), vec![3]),
            ("model.layers.0.b".into(), vec![2, 2]),
            ("model.layers.1.a".into(), vec![3]),
            ("model.norm.weight".into(), vec![2]),
        ]
    }

    #[test]
    fn units_follow_the_layers_and_slices_cover_every_element_once() {
        let one = Layout::new(&named(), 1, 0);
        let layers: Vec<Option<usize>> = one.units.iter().map(|u| u.layer).collect();
        assert_eq!(layers, vec![None, Some(0), Some(1), None]);
        assert_eq!(one.total, 10 + 7 + 3 + 2);
        assert_eq!(one.owned(), vec![[0, 10, 0], [10, 7, 10], [17, 3, 17], [20, 2, 20]]);
        for owners in 2..=5 {
            let mut covered = vec![0; 22];
            for r in 0..owners {
                let l = Layout::new(&named(), owners, r);
                for [start, len, local] in l.owned() {
                    assert!(local + len <= l.shard_len);
                    for i in start..start + len {
                        covered[i as usize] += 1;
                    }
                }
            }
            assert!(covered.iter().all(|&c| c == 1), "{owners} owners: {covered:?}");
        }
        // 7 elements over 3 owners: slices of 3, the last rank holds 1 and 2 of padding.
        let l = Layout::new(&named(), 3, 2);
        assert_eq!(l.units[1].slice, 3);
        assert_eq!(l.owned()[1], [10 + 6, 1, l.units[1].local]);
    }
}
