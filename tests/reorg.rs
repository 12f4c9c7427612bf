//! Chain safety against a reorg (issue 20), on Hardhat's node: `evm_snapshot` and `evm_revert`
//! take back the blocks that hold a request, as a reorg of the chain's head would. A bot that acts
//! on logs at the head records the request that vanished; a bot with `confirmations = 2` never
//! sees it, and sees the request mined in its place once two blocks are on top of it.

mod support;

use alloy::network::EthereumWallet;
use alloy::primitives::{B256, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use opml_bisect::bot::{http_provider, Endpoint, RequestRecord};
use opml_bisect::{
    Bot, BotConfig, DefenderStrategy, Deployment, GameClient, GameParams, GraphPhase, Side,
    Submitter,
};
use opml_contracts::dev_signer;
use opml_dnn::mnist::{quantize_image, read_pgm};
use opml_dnn::Model;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::hardhat::HardhatNode;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A provider on `url` that signs as `signer`.
fn signing(url: &str, signer: PrivateKeySigner) -> DynProvider {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url.parse().unwrap())
        .erased()
}

/// Calls the node's `method` with `params`.
async fn node_call(
    provider: &DynProvider,
    method: &'static str,
    params: serde_json::Value,
) -> serde_json::Value {
    provider
        .raw_request(method.into(), params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

#[test]
fn a_bot_with_confirmations_never_acts_on_a_request_a_reorg_removed() {
    let node = HardhatNode::start();
    let dir = std::env::temp_dir().join(format!("opml-reorg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let deployer = signing(&node.url, dev_signer(0));
        // Blocks only with transactions and when the test mines one (the node's config also mines
        // one a second).
        node_call(&deployer, "evm_setIntervalMining", serde_json::json!([0])).await;
        let params = GameParams::default();
        let deployment = Deployment::deploy(&deployer, &params).await.unwrap();
        let model = Model::load(&repo("models/mnist-cnn")).unwrap();
        let (_, commitment) = deployment
            .register_model(&deployer, &model, "file:models/mnist-cnn")
            .await
            .unwrap();
        let config = |signer: PrivateKeySigner, db: &str, confirmations: u64| BotConfig {
            rpc: Endpoint::Http(node.url.parse().unwrap()),
            signer,
            game: deployment.game,
            models: vec![repo("models/mnist-cnn")],
            bond: U256::from(10u128.pow(18)),
            reserve: None,
            arity: Some(params.arity),
            poll_interval: Duration::from_millis(10),
            db: dir.join(db),
            serve: Vec::new(),
            from_block: 0,
            max_node_steps: opml_bisect::MAX_NODE_STEPS,
            metrics_addr: None,
            max_fee_per_gas: None,
            confirmations: Some(confirmations),
        };
        let start = |config: BotConfig| {
            Bot::start(
                Side::Submitter,
                config,
                http_provider(node.url.parse().unwrap()),
            )
        };
        let mut deep = start(config(dev_signer(1), "deep.redb", 2)).await.unwrap();
        // Unfunded, so that it sends nothing: the blocks are the test's alone.
        let unfunded = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x71)).unwrap();
        let mut shallow = start(config(unfunded, "shallow.redb", 0)).await.unwrap();
        deep.tick().await.unwrap();
        shallow.tick().await.unwrap();

        let requester = GameClient::new(deployment.game, deployer.clone())
            .await
            .unwrap();
        let spec = &model.manifest.input;
        let header = opml_dnn::tensor::header(spec.dtype, &spec.shape).unwrap();
        // Each request from a provider of its own: a provider keeps the nonces it handed out,
        // and the reorg hands the vanished request's nonce back.
        let request = |digit: &str| {
            let input = quantize_image(&read_pgm(&repo(digit)).unwrap());
            let requester = signing(&node.url, dev_signer(0));
            let header = &header;
            async move {
                GameClient::new(deployment.game, requester)
                    .await
                    .unwrap()
                    .request(commitment, header, &input.to_le_bytes())
                    .await
                    .unwrap()
                    .1
            }
        };
        let snapshot = node_call(&deployer, "evm_snapshot", serde_json::json!([])).await;
        let vanishing = request("data/mnist/samples/digit-2-label-6.pgm").await;
        node_call(&deployer, "evm_mine", serde_json::json!([])).await;
        deep.tick().await.unwrap();
        shallow.tick().await.unwrap();
        assert_eq!(
            shallow.store().request(vanishing).unwrap(),
            Some(RequestRecord::Waiting)
        );
        assert_eq!(
            deep.store().request(vanishing).unwrap(),
            None,
            "one block on top"
        );

        // The reorg: the request's block and the one on top are gone, three empty blocks follow.
        let reverted = node_call(&deployer, "evm_revert", serde_json::json!([snapshot])).await;
        assert_eq!(reverted, serde_json::Value::Bool(true));
        for _ in 0..3 {
            node_call(&deployer, "evm_mine", serde_json::json!([])).await;
        }
        let contract = requester.contract();
        assert_eq!(
            contract.requestCount().call().await.unwrap(),
            0,
            "the reorg kept the request"
        );
        deep.tick().await.unwrap();
        assert_eq!(
            deep.store().request(vanishing).unwrap(),
            None,
            "acted on a vanished log"
        );
        // The bot at the head holds a request the chain no longer has.
        assert_eq!(
            shallow.store().request(vanishing).unwrap(),
            Some(RequestRecord::Waiting)
        );

        // Another request takes the same id; the deep bot answers it once two blocks are on top.
        let replacement = request("data/mnist/samples/digit-6-label-1.pgm").await;
        assert_eq!(replacement, vanishing);
        deep.tick().await.unwrap();
        assert_eq!(
            deep.store().request(replacement).unwrap(),
            None,
            "no block on top"
        );
        for _ in 0..2 {
            node_call(&deployer, "evm_mine", serde_json::json!([])).await;
        }
        deep.tick().await.unwrap();
        let Some(RequestRecord::Answered { result }) = deep.store().request(replacement).unwrap()
        else {
            panic!("the request two blocks deep was not answered");
        };
        // Its answer is to the replacement's input (the vanished request's was another digit).
        let posted = requester.result_info(result).await.unwrap();
        let input =
            quantize_image(&read_pgm(&repo("data/mnist/samples/digit-6-label-1.pgm")).unwrap());
        let honest = GraphPhase::honest(std::sync::Arc::new(model), input).unwrap();
        let submitter = Submitter::with_view(honest);
        assert_eq!(posted.output, B256::from(submitter.output()));
    });
    let _ = std::fs::remove_dir_all(&dir);
}
