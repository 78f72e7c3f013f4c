//! Loading maps the checkpoint: resident memory grows by far less than the file until the weights
//! are used, and by about the file size once a forward pass has read them. (A file of its own, so
//! no other test allocates in this process while it measures.)
use tch::{Device, Kind, Tensor};
use vicuna::model::config::Preset;
use vicuna::model::llama::Llama;
use vicuna::model::weights::{load_model, save_model};

fn resident_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize =
        status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[test]
fn loading_maps_the_file_and_reads_weights_only_when_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Preset::Small.config(16000, Some(1), vec![2]);
    config.num_hidden_layers = 4;
    {
        let model = Llama::init(config, 0, Kind::Float, Device::Cpu).unwrap();
        save_model(&model, dir.path(), Kind::Float, usize::MAX, None).unwrap();
    }
    let file = std::fs::metadata(dir.path().join("model.safetensors")).unwrap().len() as usize;
    let before = resident_bytes();
    let model = load_model(dir.path(), Kind::Float, Device::Cpu).unwrap();
    let loaded = resident_bytes().saturating_sub(before);
    assert!(loaded < file / 10, "loading made {loaded} bytes resident for a {file}-byte checkpoint");
    let ids = Tensor::from_slice(&(0..64).collect::<Vec<i64>>()).view([1, 64]);
    let _ = tch::no_grad(|| model.forward(&ids));
    let used = resident_bytes().saturating_sub(before);
    assert!(used > file / 2, "a forward pass should read the weights: {used} bytes resident for a {file}-byte file");
    println!("checkpoint {file} bytes; resident after load {loaded}, after a forward {used}");
}
