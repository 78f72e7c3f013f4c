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
                if cpu_f32(&[p, g, m, v]) {
                    fused_cpu(p, g, m, v, &c, lr, step_size, bias2_sqrt);
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

/// Whether every tensor is a contiguous fp32 CPU tensor (the fused loop's requirement).
fn cpu_f32(tensors: &[&Tensor]) -> bool {
    tensors.iter().all(|t| t.device() == tch::Device::Cpu && t.kind() == tch::Kind::Float && t.is_contiguous())
}

/// The AdamW update of one parameter in a single pass over its four buffers (parameter,
/// gradient, moments), in parallel chunks: the same per-element arithmetic as the tensor path,
/// without its eight intermediate passes over memory.
#[allow(clippy::too_many_arguments)]
fn fused_cpu(
    p: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    c: &AdamWConfig,
    lr: f64,
    step_size: f64,
    bias2_sqrt: f64,
) {
    use rayon::prelude::*;
    let n = p.numel();
    // SAFETY: four distinct contiguous fp32 CPU buffers of `n` elements (checked by `cpu_f32` and
    // the optimizer's construction); no other thread touches them during the update.
    let (p, g, m, v) = unsafe {
        (
            std::slice::from_raw_parts_mut(p.data_ptr() as *mut f32, n),
            std::slice::from_raw_parts(g.data_ptr() as *const f32, n),
            std::slice::from_raw_parts_mut(m.data_ptr() as *mut f32, n),
            std::slice::from_raw_parts_mut(v.data_ptr() as *mut f32, n),
        )
    };
    let decay = (1.0 - lr * c.weight_decay) as f32;
    let (b1, b2) = ((1.0 - c.beta1) as f32, c.beta2 as f32);
    let one_minus_b2 = (1.0 - c.beta2) as f32;
    let (eps, bias2_sqrt, step) = (c.eps as f32, bias2_sqrt as f32, step_size as f32);
    const CHUNK: usize = 1 << 16;
    p.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| {
            for i in 0..p.len() {
                if c.weight_decay != 0.0 {
                    p[i] *= decay;
                }
                m[i] += b1 * (g[i] - m[i]);
                v[i] = v[i] * b2 + one_minus_b2 * g[i] * g[i];
                let denom = v[i].sqrt() / bias2_sqrt + eps;
                p[i] -= step * m[i] / denom;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, Tensor};

    /// The fused fp32 loop and the tensor path (here in f64) make the same updates.
    #[test]
    fn fused_cpu_update_matches_the_tensor_path() {
        tch::manual_seed(3);
        let config = AdamWConfig { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1 };
        let init = Tensor::randn([1000], (Kind::Float, tch::Device::Cpu));
        let grads: Vec<Tensor> = (0..3).map(|_| Tensor::randn([1000], (Kind::Float, tch::Device::Cpu))).collect();
        let fused = [init.copy()];
        let reference = [init.to_kind(Kind::Double)];
        let (mut a, mut b) = (AdamW::new(&fused, config), AdamW::new(&reference, config));
        for (step, g) in grads.iter().enumerate() {
            let lr = 1e-2 / (step + 1) as f64;
            a.step(&fused, &[g.copy()], lr);
            b.step(&reference, &[g.to_kind(Kind::Double)], lr);
        }
        let diff = (fused[0].to_kind(Kind::Double) - &reference[0]).abs().max().double_value(&[]);
        let moved = (fused[0].copy() - &init).abs().max().double_value(&[]);
        assert!(moved > 1e-3, "the parameters moved");
        assert!(diff < 1e-6, "fused and tensor paths differ by {diff:e}");
    }
}
