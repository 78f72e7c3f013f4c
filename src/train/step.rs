//! One micro-step: forward, loss, backward. The loss is computed only at trained positions (the
//! LM head runs on those rows alone, never on a full `[batch, seq, vocab]` tensor) and summed; the
//! caller scales it by 1 / (trained targets of the whole optimizer step), so accumulation and
//! world size never change the result. With gradient checkpointing the model is walked as in
//! llm.c: forward under no_grad keeping each layer's input, then, last layer first, recompute the
//! layer with grad and back-propagate `(out * grad_out).sum()`.
use crate::data::loader::Batch;
use crate::model::llama::Llama;
use tch::{Kind, Reduction, Tensor};

/// Forward and backward of one micro-batch; gradients of `loss_sum * scale` accumulate into the
/// parameters. Returns the summed (unscaled) loss of the micro-batch.
pub fn micro_step(model: &Llama, batch: &Batch, scale: f64, checkpointing: bool) -> f64 {
    let rope = tch::no_grad(|| model.rope(&batch.positions, model.embed_tokens.kind()));
    let n = model.layers.len();
    if !checkpointing {
        let mut x = model.embed(&batch.ids);
        for i in 0..n {
            x = model.layer(i, &x, &rope, &batch.mask, None);
        }
        let loss = head_loss(model, &model.final_norm(&x), &batch.targets);
        (&loss * scale).backward();
        return loss.double_value(&[]);
    }
    let embedded = model.embed(&batch.ids);
    let mut inputs = Vec::with_capacity(n);
    let mut x = embedded.detach();
    tch::no_grad(|| {
        for i in 0..n {
            inputs.push(x.shallow_clone());
            x = model.layer(i, &x, &rope, &batch.mask, None);
        }
    });
    let top = x.detach().set_requires_grad(true);
    let loss = head_loss(model, &model.final_norm(&top), &batch.targets);
    (&loss * scale).backward();
    let mut grad = top.grad();
    for i in (0..n).rev() {
        let input = inputs[i].detach().set_requires_grad(true);
        let out = model.layer(i, &input, &rope, &batch.mask, None);
        (out * grad.detach()).sum(out_kind(&input)).backward();
        grad = input.grad();
    }
    (embedded * grad.detach()).sum(Kind::Float).backward();
    loss.double_value(&[])
}

fn out_kind(x: &Tensor) -> Kind {
    if x.kind() == Kind::Double {
        Kind::Double
    } else {
        Kind::Float
    }
}

/// Summed cross-entropy of the targets that are not ignored; logits only for those rows.
pub fn head_loss(model: &Llama, hidden: &Tensor, targets: &Tensor) -> Tensor {
    let h = hidden.size()[2];
    let flat_targets = targets.reshape([-1]);
    let keep = flat_targets.ne(crate::data::encode::IGNORE).nonzero().squeeze_dim(1);
    let rows = hidden.reshape([-1, h]).index_select(0, &keep);
    let logits = model.lm_head(&rows).to_kind(Kind::Float);
    logits.cross_entropy_loss::<Tensor>(&flat_targets.index_select(0, &keep), None, Reduction::Sum, -100, 0.0)
}
