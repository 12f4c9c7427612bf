//! Liveness of the honest bots on a real node (Hardhat's, on 127.0.0.1) under the attacks of
//! issue 14 that need real block production:
//!
//! - a flood of challengers: eight griefers dispute one honest result at once, each playing its
//!   game to the end, on a node that mines a block every second; the submitter bot (the real
//!   `opml submitter` process) must move in every game before its clock runs out, which it cannot
//!   do one transaction per block;
//! - a fee rise: a transaction signed at one base fee, which then jumps above its max fee, is
//!   re-signed with higher fees by the bot's outbox and mined (and counted in its metrics).
//!
//! The two tests take turns (a lock), so that the flood's timing does not share the CPU.

mod support;

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use opml_bisect::bot::{http_provider, BotMetrics, Identity, Outbox, Store};
use opml_bisect::{adversary, GameClient, Side};
use opml_contracts::dev_signer;
use opml_dnn::mnist::{quantize_image, read_pgm};
use opml_dnn::Model;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::hardhat::HardhatNode;

const OPML: &str = env!("CARGO_BIN_EXE_opml");
/// One test at a time: the flood is timed.
static TURN: Mutex<()> = Mutex::new(());

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("opml-liveness-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A provider that signs with dev account `index`.
fn wallet_provider(url: &str, index: u32) -> DynProvider {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(dev_signer(index)))
        .connect_http(url.parse().unwrap())
        .erased()
}

/// Calls a node method the test needs (Hardhat's mining controls).
async fn node_call(provider: &DynProvider, method: &'static str, params: serde_json::Value) {
    let _: serde_json::Value = provider
        .raw_request(method.into(), params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"));
}

/// The submitter bot process, its log in a file; killed when dropped.
struct SubmitterProcess {
    child: Child,
    log: PathBuf,
}

impl SubmitterProcess {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for SubmitterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seconds on each party's clock per game in the flood. The defender moves about 27 times in
/// each game (3 graph claims, the node opening, about 22 step claims for the conv layers); one
/// transaction per block for 8 games would cost each game about 8 s per move, over 200 s.
const FLOOD_CLOCK: u64 = 100;
const GRIEFERS: u32 = 8;
/// Dev account of the first griefer (Hardhat funds accounts 0 to 19).
const FIRST_GRIEFER: u32 = 10;

#[test]
fn an_honest_submitter_outlasts_a_flood_of_challengers() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let node = HardhatNode::start();
    let dir = workdir("flood");
    let out = Command::new(OPML)
        .args(["deploy", "--rpc", &node.url, "--model", "models/mnist-cnn"])
        .args([
            "--window",
            "120",
            "--clock",
            &FLOOD_CLOCK.to_string(),
            "--json",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deployed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let game: Address = deployed["game"].as_str().unwrap().parse().unwrap();

    let config = dir.join("submitter.toml");
    std::fs::write(
        &config,
        format!(
            "rpc = \"{}\"\nkey = \"dev:1\"\ngame = \"{game}\"\nmodels = [\"{}\"]\n\
             bond = \"1 ether\"\npoll_interval_ms = 200\ndb = \"submitter.redb\"\n",
            node.url,
            repo("models/mnist-cnn").display()
        ),
    )
    .unwrap();
    let log = dir.join("submitter.log");
    let submitter = SubmitterProcess {
        child: Command::new(OPML)
            .args(["submitter", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        log,
    };

    let rt = tokio::runtime::Runtime::new().unwrap();
    let summary = rt.block_on(async {
        let model = Arc::new(Model::load(&repo("models/mnist-cnn")).unwrap());
        let input =
            quantize_image(&read_pgm(&repo("data/mnist/samples/digit-6-label-1.pgm")).unwrap());
        let spec = &model.manifest.input;
        let header = opml_dnn::tensor::header(spec.dtype, &spec.shape).unwrap();
        let requester = GameClient::new(game, wallet_provider(&node.url, 0))
            .await
            .unwrap();
        let (_, request) = requester
            .request(model.commitment().unwrap(), &header, &input.to_le_bytes())
            .await
            .unwrap();
        // The honest result, posted while every transaction is mined at once.
        let start = Instant::now();
        let result = loop {
            let live = requester
                .contract()
                .request(request)
                .call()
                .await
                .unwrap()
                .result;
            if live != 0 {
                break live;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no result posted\n{}",
                submitter.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        // From now on a block a second, as a real chain would.
        let admin = requester.contract().provider().clone();
        node_call(&admin, "evm_setAutomine", serde_json::json!([false])).await;
        node_call(&admin, "evm_setIntervalMining", serde_json::json!([1000])).await;

        // Eight griefers challenge at once and each plays its game to the end, each getting a
        // different node wrong (so that the defender records eight different node runs).
        let mut griefers = Vec::new();
        for g in 0..GRIEFERS {
            let client = GameClient::new(game, wallet_provider(&node.url, FIRST_GRIEFER + g))
                .await
                .unwrap();
            let fault = format!("challenger={g}").parse().unwrap();
            let mut griefer = adversary::challenger(model.clone(), input.clone(), fault).unwrap();
            griefers.push(tokio::spawn(async move {
                let bond = client.challenge_bond();
                let (_, id) = client.challenge(result, bond).await.unwrap();
                let mut moves = 0u32;
                loop {
                    let view = client.view(id).await.unwrap();
                    if view.is_over() {
                        return (id, view, moves);
                    }
                    match griefer.next_move(&view).unwrap() {
                        Some(mv) => match client.play(id, &mv).await {
                            Ok(_) => moves += 1,
                            Err(e) if e.is_rejection() => griefer.refused(),
                            Err(e) => panic!("griefer of game {id}: {e}"),
                        },
                        None => tokio::time::sleep(Duration::from_millis(200)).await,
                    }
                }
            }));
        }
        let started = Instant::now();
        let mut summary = Vec::new();
        for griefer in griefers {
            let outcome = tokio::time::timeout(Duration::from_secs(600), griefer).await;
            let Ok(Ok(outcome)) = outcome else {
                panic!("a game did not end: {outcome:?}\n{}", submitter.log());
            };
            summary.push(outcome);
        }
        eprintln!(
            "flood: {GRIEFERS} games over in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        // The books balance.
        let contract = requester.contract();
        let balance = admin.get_balance(game).await.unwrap();
        let locked = contract.locked().call().await.unwrap();
        let owed = contract.owed().call().await.unwrap();
        assert_eq!(balance, locked + owed);
        summary
    });
    let mut least_clock = u64::MAX;
    for (id, view, griefer_moves) in &summary {
        assert_eq!(
            view.winner,
            Some(Side::Submitter),
            "game {id} lost by the honest submitter\n{}",
            submitter.log()
        );
        least_clock = least_clock.min(view.clocks[Side::Submitter as usize]);
        eprintln!(
            "game {id}: griefer moves {griefer_moves}, defender clock left {} of {FLOOD_CLOCK} s",
            view.clocks[Side::Submitter as usize]
        );
    }
    eprintln!("flood: the defender's least clock left: {least_clock} of {FLOOD_CLOCK} s");
    drop(submitter);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_transaction_priced_out_by_a_fee_rise_is_sent_again_with_higher_fees() {
    let _turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let node = HardhatNode::start();
    let dir = workdir("fees");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let provider = http_provider(node.url.parse().unwrap());
        let chain_id = provider.get_chain_id().await.unwrap();
        let signer = dev_signer(18);
        let account = signer.address();
        let identity = Identity {
            role: Side::Submitter,
            chain_id,
            game: Address::ZERO,
            account,
        };
        let store = Arc::new(Store::open(&dir.join("outbox.redb"), &identity).unwrap());
        let metrics = Arc::new(BotMetrics::new(Side::Submitter));
        let outbox = Arc::new(
            Outbox::open(
                provider.clone(),
                signer,
                chain_id,
                store.clone(),
                Duration::from_millis(100),
                metrics.clone(),
            )
            .await
            .unwrap(),
        );
        // Blocks only when the test mines one.
        node_call(&provider, "evm_setAutomine", serde_json::json!([false])).await;
        let to = dev_signer(19).address();
        let sending = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let tx = TransactionRequest::default()
                    .with_to(to)
                    .with_value(U256::from(1));
                outbox.send("transfer", tx).await
            })
        };
        // Signed and written down at today's fees...
        let first = loop {
            if let Some(pending) = store.outbox().unwrap().first() {
                break pending.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // ...then the base fee jumps to 1,000 gwei: blocks are mined without it.
        let high = U256::from(1_000u64) * U256::from(1_000_000_000u64);
        node_call(
            &provider,
            "hardhat_setNextBlockBaseFeePerGas",
            serde_json::json!([format!("{high:#x}")]),
        )
        .await;
        let start = Instant::now();
        let receipt = loop {
            node_call(&provider, "evm_mine", serde_json::json!([])).await;
            if sending.is_finished() {
                break sending.await.unwrap().unwrap();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the transaction was never re-priced"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        assert!(receipt.status());
        assert_ne!(receipt.transaction_hash, first.hash, "mined at the old fees");
        let block = provider
            .get_block_by_number(receipt.block_number.unwrap().into())
            .await
            .unwrap()
            .unwrap();
        let base_fee = u128::from(block.header.base_fee_per_gas.unwrap());
        let signed_first = {
            use alloy::consensus::Transaction;
            use alloy::eips::Decodable2718;
            alloy::consensus::TxEnvelope::decode_2718(&mut first.raw.as_ref())
                .unwrap()
                .max_fee_per_gas()
        };
        // The first version could not have been mined in that block; the replacement was.
        assert!(signed_first < base_fee, "first {signed_first}, base fee {base_fee}");
        assert!(receipt.effective_gas_price >= base_fee);
        assert!(store.outbox().unwrap().is_empty(), "the journal kept it");
        let m = metrics.snapshot();
        assert_eq!((m.transactions_sent, m.pending_transactions), (1, 0), "{m:?}");
        assert!(m.transactions_replaced >= 1, "{m:?}");
        eprintln!(
            "re-priced: signed at a max fee of {} gwei, mined in {:.1} s at {} gwei (base fee {} gwei)",
            signed_first / 1_000_000_000,
            start.elapsed().as_secs_f64(),
            receipt.effective_gas_price / 1_000_000_000,
            base_fee / 1_000_000_000
        );
    });
    let _ = std::fs::remove_dir_all(&dir);
}
