//! One micro-step: forward, loss, backward. The loss is computed only at trained positions (the
//! LM head runs on those rows alone, never on a full `[batch, seq, vocab]` tensor) and summed; the
//! caller scales it by 1 / (trained targets of the whole optimizer step), so accumulation and
//! world size never change the result. With gradient checkpointing the model is walked as in
//! llm.c: forward under no_grad keeping each layer's input, then, last layer first, recompute the
//! layer with grad and back-propagate `(out * grad_out).sum()`. The loop is also where sharding
//! gathers each layer's parameters before use and reduces its gradients as soon as they are done
//! ([`PartHooks`]), so communication overlaps the next layer's backward.
use super::batch::Batch;
use crate::model::llama::Llama;
use anyhow::Result;
use tch::{Kind, Reduction, Tensor};

/// A part of the model the layer loop asks for or hands back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Everything that is not a decoder layer (embedding, final norm, LM head).
    Outer,
    /// Decoder layer `i`.
    Layer(usize),
    /// The whole model (the loop without checkpointing).
    All,
}

/// What the loop tells the owner of the parameters (the sharding, `dist::sharded`): a part is
/// gathered before use, released after, and its gradients reduced once its backward is done.
pub trait PartHooks {
    fn gather(&mut self, part: Part) -> Result<()>;
    fn release(&mut self, part: Part);
    fn reduce(&mut self, part: Part) -> Result<()>;
}

/// No sharding: parameters always resident, gradients left in the parameters.
pub struct Resident;

impl PartHooks for Resident {
    fn gather(&mut self, _: Part) -> Result<()> {
        Ok(())
    }
    fn release(&mut self, _: Part) {}
    fn reduce(&mut self, _: Part) -> Result<()> {
        Ok(())
    }
}

/// Forward and backward of one micro-batch; gradients of `loss_sum * scale` accumulate into the
/// parameters. Returns the summed (unscaled) loss of the micro-batch.
pub fn micro_step(model: &Llama, batch: &Batch, scale: f64, checkpointing: bool) -> f64 {
    micro_step_with(model, Some(batch), scale, checkpointing, &mut Resident).expect("resident parameters cannot fail")
}

/// [`micro_step`] telling `hooks` when each part is needed and done. With `batch = None` (a rank
/// with no sample left in this slot of the step) nothing is computed but every hook is called in
/// the same order, so the ranks' collectives stay matched.
pub fn micro_step_with(
    model: &Llama,
    batch: Option<&Batch>,
    scale: f64,
    checkpointing: bool,
    hooks: &mut dyn PartHooks,
) -> Result<f64> {
    if !checkpointing {
        hooks.gather(Part::All)?;
        let loss = match batch {
            Some(b) => {
                let hidden = model.hidden(&b.ids, &b.positions, &b.mask, None);
                head_loss(model, &hidden, &b.targets, Some(scale))
            }
            None => 0.0,
        };
        hooks.reduce(Part::All)?;
        hooks.release(Part::All);
        return Ok(loss);
    }
    let n = model.layers.len();
    hooks.gather(Part::Outer)?;
    let Some(batch) = batch else {
        for i in 0..n {
            hooks.gather(Part::Layer(i))?;
            hooks.release(Part::Layer(i));
        }
        for i in (0..n).rev() {
            hooks.gather(Part::Layer(i))?;
            hooks.reduce(Part::Layer(i))?;
            hooks.release(Part::Layer(i));
        }
        hooks.reduce(Part::Outer)?;
        hooks.release(Part::Outer);
        return Ok(0.0);
    };
    let rope = tch::no_grad(|| model.rope(&batch.positions, model.embed_tokens.kind()));
    let embedded = model.embed(&batch.ids);
    let mut inputs = Vec::with_capacity(n);
    let mut x = embedded.detach();
    for i in 0..n {
        hooks.gather(Part::Layer(i))?;
        inputs.push(x.shallow_clone());
        x = tch::no_grad(|| model.layer(i, &x, &rope, &batch.mask, None));
        hooks.release(Part::Layer(i));
    }
    let top = x.detach().set_requires_grad(true);
    let loss = head_loss(model, &model.final_norm(&top), &batch.targets, Some(scale));
    let mut grad = top.grad();
    for i in (0..n).rev() {
        hooks.gather(Part::Layer(i))?;
        let input = inputs[i].detach().set_requires_grad(true);
        let out = model.layer(i, &input, &rope, &batch.mask, None);
        (out * grad.detach()).sum(out_kind(&input)).backward();
        grad = input.grad();
        hooks.reduce(Part::Layer(i))?;
        hooks.release(Part::Layer(i));
    }
    (embedded * grad.detach()).sum(Kind::Float).backward();
    hooks.reduce(Part::Outer)?;
    hooks.release(Part::Outer);
    Ok(loss)
}

/// The summed loss of one micro-batch without gradients (evaluation), one layer at a time, so
/// that a sharded model gathers only one layer at once. `batch = None` calls the hooks only.
pub fn eval_loss_with(model: &Llama, batch: Option<&Batch>, hooks: &mut dyn PartHooks) -> Result<f64> {
    let _guard = tch::no_grad_guard();
    hooks.gather(Part::Outer)?;
    let mut x = batch.map(|b| (model.embed(&b.ids), model.rope(&b.positions, model.embed_tokens.kind())));
    for i in 0..model.layers.len() {
        hooks.gather(Part::Layer(i))?;
        if let (Some(b), Some((h, rope))) = (batch, x.as_mut()) {
            *h = model.layer(i, h, rope, &b.mask, None);
        }
        hooks.release(Part::Layer(i));
    }
    let loss = match (batch, x) {
        (Some(b), Some((h, _))) => head_loss(model, &model.final_norm(&h), &b.targets, None),
        _ => 0.0,
    };
    hooks.release(Part::Outer);
    Ok(loss)
}

/// Rows of the LM head computed at once: the logits of one chunk (and their gradient) are the
/// only `[rows, vocab]` tensors alive, 64 MB with a 32k vocabulary instead of the whole batch's.
const HEAD_CHUNK: i64 = 512;

/// The summed (unscaled) loss at trained positions, one chunk of rows of the LM head at a time.
/// With `backward = Some(scale)` each chunk's `loss * scale` is back-propagated through the head
/// as it is computed, and the gradient for `hidden` is gathered on a detached copy and sent into
/// the trunk once; with `None` (evaluation, under no_grad) the losses are only summed.
pub fn head_loss(model: &Llama, hidden: &Tensor, targets: &Tensor, backward: Option<f64>) -> f64 {
    let (rows, keep) = trained_rows(hidden, targets);
    let leaf = if backward.is_some() { rows.detach().set_requires_grad(true) } else { rows.shallow_clone() };
    let wanted = targets.reshape([-1]).index_select(0, &keep);
    let mut total = 0.0;
    let n = leaf.size()[0];
    let mut start = 0;
    while start < n {
        let len = HEAD_CHUNK.min(n - start);
        let logits = model.lm_head(&leaf.narrow(0, start, len)).to_kind(Kind::Float);
        let loss = logits.cross_entropy_loss::<Tensor>(&wanted.narrow(0, start, len), None, Reduction::Sum, -100, 0.0);
        if let Some(scale) = backward {
            (&loss * scale).backward();
        }
        total += loss.double_value(&[]);
        start += len;
    }
    if backward.is_some() && n > 0 {
        (rows * leaf.grad().detach()).sum(Kind::Float).backward();
    }
    total
}

/// The hidden rows `[n, hidden]` whose next-token target is trained, and their flat indices.
fn trained_rows(hidden: &Tensor, targets: &Tensor) -> (Tensor, Tensor) {
    let h = hidden.size()[2];
    let keep = targets.reshape([-1]).ne(crate::data::encode::IGNORE).nonzero().squeeze_dim(1);
    (hidden.reshape([-1, h]).index_select(0, &keep), keep)
}

fn out_kind(x: &Tensor) -> Kind {
    if x.kind() == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}
