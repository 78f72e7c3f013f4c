//! AdamW (Loshchilov & Hutter 2019) over the fp32 master parameters, written out so its state can
//! be saved and restored exactly (tch's C++ optimizer cannot save its moments). The update follows
//! `torch.optim.AdamW`'s single-tensor path step for step: decoupled weight decay, moments updated
//! in place, bias corrections with the step count starting at 1, eps added to sqrt(v_hat).
use tch::Tensor;

/// Hyperparameters of AdamW.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// Optimizer state: one first and one second moment per parameter, same shapes, fp32.
pub struct AdamW {
    pub config: AdamWConfig,
    /// Optimizer steps taken so far (the bias corrections use `steps + 1` for the next one).
    pub steps: i64,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl AdamW {
    /// Zero moments for `params`.
    pub fn new(params: &[Tensor], config: AdamWConfig) -> AdamW {
        let zeros = || params.iter().map(Tensor::zeros_like).collect();
        AdamW { config, steps: 0, m: zeros(), v: zeros() }
    }

    /// One update of `params` (fp32 masters) from `grads` (fp32, same shapes), learning rate `lr`.
    pub fn step(&mut self, params: &[Tensor], grads: &[Tensor], lr: f64) {
        let c = self.config;
        self.steps += 1;
        let bias1 = 1.0 - c.beta1.powi(self.steps as i32);
        let bias2_sqrt = (1.0 - c.beta2.powi(self.steps as i32)).sqrt();
        let step_size = lr / bias1;
        tch::no_grad(|| {
            for (((p, g), m), v) in params.iter().zip(grads).zip(&mut self.m).zip(&mut self.v) {
                if !g.defined() {
                    continue;
                }
                if c.weight_decay != 0.0 {
                    let _ = p.shallow_clone().g_mul_scalar_(1.0 - lr * c.weight_decay);
                }
                let _ = m.lerp_(g, 1.0 - c.beta1);
                let _ = v.g_mul_scalar_(c.beta2).addcmul_(&(g * (1.0 - c.beta2)), g);
                let denom = (v.sqrt() / bias2_sqrt) + c.eps;
                let _ = p.shallow_clone().addcdiv_(&(m.shallow_clone() * -step_size), &denom);
            }
        });
    }
}

/// Scales `grads` in place so their total 2-norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_` does; returns the norm before clipping.
pub fn clip_grad_norm(grads: &[Tensor], max_norm: f64) -> f64 {
    tch::no_grad(|| {
        let grads: Vec<&Tensor> = grads.iter().filter(|g| g.defined()).collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
        let coef = (max_norm / (total + 1e-6)).min(1.0);
        if max_norm > 0.0 && coef < 1.0 {
            for g in &grads {
                let _ = g.shallow_clone().g_mul_scalar_(coef);
            }
        }
        total
    })
}
