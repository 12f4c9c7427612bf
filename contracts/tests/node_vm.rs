//! NodeVm against the Rust VM on every node of a real MNIST inference: the initial state the chain
//! builds from commitments is the machine's, and the final state of the kernel run proves the
//! node's native output commitment. Bad final claims revert with their error.

use alloy::primitives::{Bytes, B256};
use opml_contracts::bindings::NodeVm::{self, NodeVmErrors};
use opml_contracts::{dev_signer, EmbeddedChain};
use opml_dnn::kernel::{kernel_inputs, KERNEL_BASE};
use opml_dnn::mnist::{quantize_image, read_pgm};
use opml_dnn::Model;
use opml_vm::Machine;
use std::path::Path;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[test]
fn nodes_of_a_real_inference_link_the_phases() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let chain = EmbeddedChain::default();
    let contract = runtime
        .block_on(NodeVm::deploy(chain.provider(dev_signer(0))))
        .unwrap();
    let model = Model::load(&repo("models/mnist-cnn")).unwrap();
    let input = quantize_image(&read_pgm(&repo("data/mnist/samples/digit-0-label-7.pgm")).unwrap());
    let trace = model.run(&input).unwrap();
    let outputs = trace.outputs();
    for (index, node) in model.manifest.nodes.iter().enumerate() {
        let inputs = model.node_inputs(index, &input, &outputs[..index]).unwrap();
        let (dtype, shape) = node.op.output_type(&inputs).unwrap();
        let params = node.op.params(&inputs).unwrap();
        let slots = kernel_inputs(
            &node.op.kernel_params(&inputs).unwrap(),
            &inputs,
            (dtype, &shape),
        )
        .unwrap();
        let mut machine = Machine::new(node.op.kind().kernel(), slots);

        let mut commitments = vec![B256::from(params.commitment().unwrap())];
        commitments.extend(inputs.iter().map(|t| B256::from(t.commitment().unwrap())));
        let onchain = runtime
            .block_on(async {
                contract
                    .initialStateHash(
                        B256::from(node.op.kind().kernel_root()),
                        KERNEL_BASE,
                        commitments,
                    )
                    .call()
                    .await
            })
            .unwrap();
        assert_eq!(
            onchain.0,
            machine.state_hash(),
            "node {index}: initial state"
        );

        machine.run(u64::MAX);
        let state = machine.state().encode().to_vec();
        let acc = machine.output().snapshot().encode();
        let header = opml_dnn::tensor::header(dtype, &shape).unwrap();
        let out = runtime
            .block_on(async {
                contract
                    .finalOutput(
                        Bytes::from(state.clone()),
                        Bytes::from(acc.clone()),
                        Bytes::from(header.clone()),
                    )
                    .call()
                    .await
            })
            .unwrap();
        assert_eq!(
            out.stateHash.0,
            machine.state_hash(),
            "node {index}: final state"
        );
        assert_eq!(
            out.outputCommitment.0, trace.nodes[index].commitment,
            "node {index}: output"
        );

        // A faulted run and a forged accumulator are refused.
        let mut faulted = state.clone();
        faulted[168] = 2;
        let mut forged = acc.clone();
        forged[40] ^= 1;
        for (what, s, a, want) in [
            ("faulted", faulted, acc.clone(), "NotExitedCleanly"),
            ("forged", state, forged, "BadAccumulator"),
        ] {
            let err = runtime
                .block_on(async {
                    contract
                        .finalOutput(Bytes::from(s), Bytes::from(a), Bytes::from(header.clone()))
                        .call()
                        .await
                })
                .unwrap_err();
            let decoded = err
                .as_decoded_interface_error::<NodeVmErrors>()
                .unwrap_or_else(|| panic!("{what}: {err}"));
            assert!(
                format!("{decoded:?}").starts_with(want),
                "{what}: {decoded:?}"
            );
        }
    }
}
