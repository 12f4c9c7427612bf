//! Whole disputes about a real MNIST inference on the embedded chain, one per scripted adversary,
//! on bisection and on a larger, non-power-of-two arity: the honest party always wins, rounds stay
//! within ceil(log_k nodes) + ceil(log_k steps), bonds add up, and no transaction comes near the
//! block gas limit.

use alloy::primitives::U256;
use opml_bisect::simulate::Accounts;
use opml_bisect::{simulate, Attack, GameParams, Side, SimulateOptions};
use opml_contracts::{dev_signer, EmbeddedChain};
use opml_dnn::mnist::{quantize_image, read_pgm};
use opml_dnn::Model;
use std::path::Path;
use std::sync::Arc;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

#[tokio::test]
async fn the_honest_party_wins_every_scripted_dispute() {
    let model = Arc::new(Model::load(&repo("models/mnist-cnn")).unwrap());
    let input = quantize_image(&read_pgm(&repo("data/mnist/samples/digit-6-label-1.pgm")).unwrap());
    let last = model.manifest.nodes.len() - 1;
    // (fault, whether the contract must refuse one of the liar's moves)
    let cases: Vec<(String, bool)> = [
        ("none".to_string(), false),
        ("node=0".to_string(), false),
        ("node=3".to_string(), false),
        (format!("node={last}"), false),
        ("output".to_string(), true),
        ("trace=3".to_string(), false),
        // A forged output header over the true data: the node leaf commits to the header, so the
        // liar cannot open the node (intermediate or last) and loses on time.
        ("header=3".to_string(), true),
        (format!("header={last}"), true),
        ("step=2:1000".to_string(), false),
        ("step=0:0".to_string(), false),
        ("steps=2:+5".to_string(), false),
        ("steps=4:-3".to_string(), false),
        ("boundary=5".to_string(), true),
        ("challenger".to_string(), false),
        (format!("challenger={last}"), false),
        ("challenger-random=7".to_string(), false),
        ("challenger-stall=2".to_string(), false),
        ("challenger-stall=8".to_string(), false),
    ]
    .into_iter()
    .collect();
    for arity in [2u64, 5] {
        for (spec, refusal) in &cases {
            let fault: Attack = spec.parse().unwrap();
            let chain = EmbeddedChain::default();
            let accounts = Accounts {
                deployer: chain.provider(dev_signer(0)),
                submitter: chain.provider(dev_signer(1)),
                challenger: chain.provider(dev_signer(2)),
            };
            let options = SimulateOptions {
                fault,
                params: GameParams {
                    arity,
                    ..GameParams::default()
                },
                model_uri: "file:models/mnist-cnn".into(),
            };
            let t = simulate(&accounts, model.clone(), input.clone(), &options)
                .await
                .unwrap_or_else(|e| panic!("{spec} k={arity}: {e}"));
            let case = format!("{spec} k={arity}");
            let want = if fault.is_submitters() {
                Side::Challenger
            } else {
                Side::Submitter
            };
            assert_eq!(t.winner, want, "{case}");
            assert!(t.rounds <= t.rounds_bound, "{case}: {} rounds", t.rounds);
            assert_eq!(
                t.moves.iter().any(|m| m.refused.is_some()),
                *refusal,
                "{case}: {:?}",
                t.moves
            );
            assert!(t.largest_tx < 1_000_000, "{case}: {}", t.largest_tx);
            // Bonds: nothing stays locked, the books balance, the winner of the game holds both of
            // its bonds, and a rejected result's bond is burnt.
            let b = t.bonds;
            assert_eq!(b.balance, b.locked + b.owed, "{case}");
            assert_eq!(b.locked, U256::ZERO, "{case}");
            let disputed = fault != Attack::None;
            let game = if disputed {
                b.challenge_bond * U256::from(2)
            } else {
                U256::ZERO
            };
            let expected = match want {
                Side::Submitter => (b.result_bond + game, U256::ZERO, U256::ZERO),
                Side::Challenger => (U256::ZERO, game, b.result_bond),
            };
            assert_eq!(
                (b.submitter_credit, b.challenger_credit, b.burnt),
                expected,
                "{case}"
            );
            if disputed {
                assert!(t.moves.iter().any(|m| m.action == "challenge"), "{case}");
            }
            // A liar whose VM claims the game reached: it got to phase 1 and ended in one step.
            if matches!(fault, Attack::Node { .. } | Attack::StepCount { .. }) {
                assert!(t.disputed_node.is_some(), "{case}");
                let last_move = t
                    .moves
                    .iter()
                    .rev()
                    .find(|m| m.action != "finalize")
                    .unwrap();
                assert_eq!(last_move.action, "prove_step", "{case}");
                assert_eq!(last_move.party, Side::Challenger, "{case}");
            }
            if let Attack::StepCount { node, .. } = fault {
                assert_eq!(t.disputed_node, Some(node as u32), "{case}");
            }
        }
    }
}
