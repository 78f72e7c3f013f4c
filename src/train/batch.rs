//! Micro-batches on the device: samples padded to their longest, or packed (several samples per
//! row, each with its own positions and attention confined to itself), with next-token targets
//! and the mask the model's attention takes.
use crate::data::encode::{Sample, IGNORE};
use crate::data::loader::{targets, trained_targets};
use crate::model::llama::Mask;
use tch::{Device, Kind, Tensor};

/// One micro-batch on the device: ids and next-token targets `[rows, len]`, positions, mask.
pub struct Batch {
    pub ids: Tensor,
    pub targets: Tensor,
    pub positions: Tensor,
    pub mask: Mask,
    /// Targets that are not ignored.
    pub trained: usize,
    /// Tokens that are not padding.
    pub tokens: usize,
}

/// Right-pads `samples` to the longest; causal attention keeps padding out of real tokens' view.
pub fn padded_batch(samples: &[&Sample], pad_id: u32, device: Device) -> Batch {
    let len = samples.iter().map(|s| s.input_ids.len()).max().unwrap_or(1);
    let rows: Vec<Vec<&Sample>> = samples.iter().map(|&s| vec![s]).collect();
    let (ids, tgt, pos, _) = layout(&rows, len, pad_id);
    let b = samples.len() as i64;
    finish(ids, tgt, pos, b, len as i64, Mask::Causal, samples, device)
}

/// Packs `samples` (in order) into rows of at most `max_len` tokens, first fit; each row attends
/// block-diagonally (a token sees only earlier tokens of its own sample).
pub fn packed_batch(samples: &[&Sample], max_len: usize, pad_id: u32, device: Device) -> Batch {
    let mut rows: Vec<Vec<&Sample>> = Vec::new();
    let mut fill: Vec<usize> = Vec::new();
    for &s in samples {
        let n = s.input_ids.len();
        match fill.iter().position(|&f| f + n <= max_len) {
            Some(r) => {
                rows[r].push(s);
                fill[r] += n;
            }
            None => {
                rows.push(vec![s]);
                fill.push(n);
            }
        }
    }
    let len = fill.iter().copied().max().unwrap_or(1);
    let (ids, tgt, pos, seg) = layout(&rows, len, pad_id);
    let (b, t) = (rows.len() as i64, len as i64);
    let seg = Tensor::from_slice(&seg).view([b, t]);
    let same = seg.unsqueeze(2).eq_tensor(&seg.unsqueeze(1));
    let causal = Tensor::ones([t, t], (Kind::Bool, Device::Cpu)).tril(0);
    let mask = same.logical_and(&causal).unsqueeze(1).to_device(device);
    finish(ids, tgt, pos, b, t, Mask::Explicit(mask), samples, device)
}

/// Flat ids, targets, positions and segment numbers of rows laid out to `len`.
fn layout(rows: &[Vec<&Sample>], len: usize, pad_id: u32) -> (Vec<i64>, Vec<i64>, Vec<i64>, Vec<i64>) {
    let n = rows.len() * len;
    let (mut ids, mut tgt, mut pos, mut seg) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for row in rows {
        let mut used = 0;
        for (k, s) in row.iter().enumerate() {
            ids.extend(s.input_ids.iter().map(|&i| i64::from(i)));
            tgt.extend(targets(s));
            pos.extend(0..s.input_ids.len() as i64);
            seg.extend(std::iter::repeat_n(k as i64, s.input_ids.len()));
            used += s.input_ids.len();
        }
        // Padding: its own segment, ignored targets.
        ids.extend(std::iter::repeat_n(i64::from(pad_id), len - used));
        tgt.extend(std::iter::repeat_n(IGNORE, len - used));
        pos.extend(0..(len - used) as i64);
        seg.extend(std::iter::repeat_n(-1, len - used));
    }
    (ids, tgt, pos, seg)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    ids: Vec<i64>,
    tgt: Vec<i64>,
    pos: Vec<i64>,
    b: i64,
    t: i64,
    mask: Mask,
    samples: &[&Sample],
    device: Device,
) -> Batch {
    Batch {
        ids: Tensor::from_slice(&ids).view([b, t]).to_device(device),
        targets: Tensor::from_slice(&tgt).view([b, t]).to_device(device),
        positions: Tensor::from_slice(&pos).view([b, t]).to_device(device),
        mask,
        trained: samples.iter().map(|s| trained_targets(s)).sum(),
        tokens: samples.iter().map(|s| s.input_ids.len()).sum(),
    }
}
