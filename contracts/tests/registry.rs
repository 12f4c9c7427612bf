//! The Registry against the Rust model commitment: the real MNIST models register under the
//! commitment `opml-dnn` computes, kernel images are the op kinds' own, and bad registrations revert
//! with their error.

use alloy::primitives::{Bytes, B256};
use alloy::sol_types::SolEvent;
use opml_contracts::bindings::Registry::{self, RegistryErrors};
use opml_contracts::{dev_signer, EmbeddedChain};
use opml_dnn::kernel::KERNEL_BASE;
use opml_dnn::{Model, OpKind};
use std::path::Path;

fn b256s(hashes: &[[u8; 32]]) -> Vec<B256> {
    hashes.iter().map(|h| B256::from(*h)).collect()
}

#[test]
fn mnist_models_register_under_their_commitment() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let chain = EmbeddedChain::default();
    let provider = chain.provider(dev_signer(0));
    rt.block_on(async {
        let kinds: Vec<u8> = OpKind::ALL.iter().map(|k| *k as u8).collect();
        let roots: Vec<B256> = OpKind::ALL
            .iter()
            .map(|k| B256::from(k.kernel_root()))
            .collect();
        let entries = vec![KERNEL_BASE; kinds.len()];
        let registry = Registry::deploy(
            provider.clone(),
            kinds.clone(),
            roots.clone(),
            entries.clone(),
        )
        .await
        .unwrap();
        for (kind, root) in kinds.iter().zip(&roots) {
            let image = registry.kernel(*kind).call().await.unwrap();
            assert_eq!((image.memRoot, image.entry), (*root, KERNEL_BASE));
        }
        for name in ["mnist-cnn", "mnist-mlp"] {
            let model = Model::load(
                &Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../models")
                    .join(name),
            )
            .unwrap();
            let spec = &model.manifest.input;
            let header = Bytes::from(opml_dnn::tensor::header(spec.dtype, &spec.shape).unwrap());
            let leaves = b256s(&model.node_leaves().unwrap());
            let weights = b256s(&model.weight_commitments().unwrap());
            let call = registry.registerModel(
                header.clone(),
                leaves.clone(),
                weights.clone(),
                format!("file:models/{name}"),
            );
            let commitment = call.call().await.unwrap();
            assert_eq!(commitment.0, model.commitment().unwrap(), "{name}");
            let receipt = call.send().await.unwrap().get_receipt().await.unwrap();
            assert!(receipt.status());
            let event =
                Registry::ModelRegistered::decode_log_data(receipt.inner.logs()[0].data()).unwrap();
            assert_eq!(
                (event.model, event.nodeLeaves, event.weightCommitments),
                (commitment, leaves.clone(), weights.clone())
            );
            let info = registry.model(commitment).call().await.unwrap();
            assert_eq!(info.owner, chain.dev_accounts()[0]);
            assert_eq!(info.nodeCount as usize, model.manifest.nodes.len());
            // Twice is refused.
            let err = call.call().await.unwrap_err();
            assert_eq!(
                err.as_decoded_interface_error::<RegistryErrors>(),
                Some(RegistryErrors::AlreadyRegistered(
                    Registry::AlreadyRegistered { model: commitment }
                ))
            );
        }
        // Malformed registrations.
        let err = registry
            .registerModel(Bytes::from(vec![0; 10]), vec![], vec![], String::new())
            .call()
            .await
            .unwrap_err();
        assert!(matches!(
            err.as_decoded_interface_error::<RegistryErrors>(),
            Some(RegistryErrors::NoNodes(_))
        ));
        let err = registry
            .registerModel(
                Bytes::from(vec![0; 3]),
                vec![B256::ZERO],
                vec![],
                String::new(),
            )
            .call()
            .await
            .unwrap_err();
        assert!(matches!(
            err.as_decoded_interface_error::<RegistryErrors>(),
            Some(RegistryErrors::BadInputHeader(_))
        ));
        // The data root agrees with the VM's for every small count.
        for n in 0..10u8 {
            let leaves: Vec<[u8; 32]> = (0..n).map(|k| [k + 1; 32]).collect();
            let onchain = registry.dataRoot(b256s(&leaves)).call().await.unwrap();
            assert_eq!(
                onchain.0,
                opml_vm::data_root(&leaves.concat()),
                "{n} leaves"
            );
        }
        // A kind registered twice at deployment is refused.
        assert!(Registry::deploy(
            provider.clone(),
            vec![1, 1],
            vec![roots[0], roots[1]],
            vec![KERNEL_BASE; 2]
        )
        .await
        .is_err());
    });
}
