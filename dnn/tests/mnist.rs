//! The real MNIST models of `models/` on the real held-out digits of `data/mnist/`: the committed
//! integer models are what quantizing their f32 sources gives, they meet the accuracy targets, and
//! every node of a real inference re-executed in the VM gives the native commitment.

use opml_dnn::float::FloatModel;
use opml_dnn::graph::write_safetensors;
use opml_dnn::mnist::{float_image, quantize_image, read_pgm, Dataset};
use opml_dnn::quantize::quantize;
use opml_dnn::{Model, Tensor};
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn prediction(t: &Tensor) -> usize {
    t.as_i32().expect("ArgMax output")[[0]] as usize
}

#[test]
fn committed_models_are_the_quantized_float_models() {
    let train = Dataset::load(&repo("data/mnist/train.safetensors")).unwrap();
    let calibration: Vec<_> = (0..1000).map(|i| float_image(train.image(i))).collect();
    for name in ["mnist-cnn", "mnist-mlp"] {
        let float = FloatModel::load(&repo(&format!("models/{name}"))).unwrap();
        let fresh = quantize(&float, &calibration).unwrap();
        let committed = Model::load(&repo(&format!("models/{name}"))).unwrap();
        assert_eq!(
            fresh.manifest.nodes, committed.manifest.nodes,
            "{name}: graph differs (run scripts/mnist/quantize.sh)"
        );
        assert_eq!(
            write_safetensors(&fresh.weights).unwrap(),
            write_safetensors(&committed.weights).unwrap(),
            "{name}: weights differ (run scripts/mnist/quantize.sh)"
        );
        assert_eq!(fresh.commitment().unwrap(), committed.commitment().unwrap());
    }
}

/// `models/mnist-cnn/float.onnx` (written by `scripts/mnist/export-onnx.sh`) holds the same float
/// model as float.json + safetensors, to the bit, so it quantizes to the committed integer model:
/// the same nodes, weights and model commitment.
#[cfg(feature = "onnx")]
#[test]
fn the_onnx_export_imports_to_the_committed_model() {
    let onnx = FloatModel::load(&repo("models/mnist-cnn/float.onnx")).unwrap();
    let json = FloatModel::load(&repo("models/mnist-cnn")).unwrap();
    assert_eq!(onnx.name, json.name);
    assert_eq!(onnx.input_shape, json.input_shape);
    assert_eq!(format!("{:?}", onnx.layers), format!("{:?}", json.layers));
    assert_eq!(
        onnx.weights, json.weights,
        "run scripts/mnist/export-onnx.sh"
    );
    let train = Dataset::load(&repo("data/mnist/train.safetensors")).unwrap();
    let calibration: Vec<_> = (0..1000).map(|i| float_image(train.image(i))).collect();
    let fresh = quantize(&onnx, &calibration).unwrap();
    let committed = Model::load(&repo("models/mnist-cnn")).unwrap();
    assert_eq!(fresh.manifest.nodes, committed.manifest.nodes);
    assert_eq!(
        write_safetensors(&fresh.weights).unwrap(),
        write_safetensors(&committed.weights).unwrap()
    );
    assert_eq!(fresh.commitment().unwrap(), committed.commitment().unwrap());
}

#[test]
fn held_out_accuracy_meets_the_targets() {
    let test = Dataset::load(&repo("data/mnist/test.safetensors")).unwrap();
    assert_eq!(test.len(), 2000);
    // (model, least integer accuracy, largest drop from f32)
    for (name, min_accuracy, max_drop) in [("mnist-cnn", 0.975, 0.005), ("mnist-mlp", 0.965, 0.005)]
    {
        let model = Model::load(&repo(&format!("models/{name}"))).unwrap();
        let float = FloatModel::load(&repo(&format!("models/{name}"))).unwrap();
        let (mut int_ok, mut float_ok) = (0, 0);
        for i in 0..test.len() {
            let label = usize::from(test.labels[i]);
            let trace = model.run(&quantize_image(test.image(i))).unwrap();
            int_ok += usize::from(prediction(trace.output()) == label);
            let logits = float
                .forward(float_image(test.image(i)))
                .unwrap()
                .pop()
                .unwrap()
                .1;
            let best = (0..logits.len()).fold(0, |b, k| if logits[k] > logits[b] { k } else { b });
            float_ok += usize::from(best == label);
        }
        let (acc, facc) = (int_ok as f64 / 2000.0, float_ok as f64 / 2000.0);
        assert!(acc >= min_accuracy, "{name}: integer accuracy {acc}");
        assert!(
            facc - acc <= max_drop,
            "{name}: integer {acc} vs f32 {facc}"
        );
    }
}

#[test]
fn every_node_of_real_inferences_agrees_with_the_vm() {
    let samples = repo("data/mnist/samples");
    let mut files: Vec<_> = std::fs::read_dir(&samples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 10);
    for name in ["mnist-cnn", "mnist-mlp"] {
        let model = Model::load(&repo(&format!("models/{name}"))).unwrap();
        for file in files.iter().take(3) {
            let input = quantize_image(&read_pgm(file).unwrap());
            let trace = model.run(&input).unwrap();
            for (index, node) in trace.nodes.iter().enumerate() {
                let vm = model
                    .run_node_in_vm(index, &input, &trace, u64::MAX)
                    .unwrap();
                assert_eq!(
                    vm.commitment,
                    node.commitment,
                    "{name} {}: node {index}",
                    file.display()
                );
                assert_eq!(vm.output, node.output);
            }
        }
    }
}
