//! The DisputeGame's rules, one refusal at a time: every move checks its mover, turn, segment,
//! claims, clock and proofs, and bad requests, bonds and timing revert with their error while the
//! books keep balancing. Several challengers of one result each get their own game.

mod support;

use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use opml_bisect::{
    advance_time, adversary, Attack, ChallengerStrategy, DefenderStrategy, Move, ResultStatus, Side,
};
use opml_contracts::bindings::DisputeGame::DisputeGameErrors;
use opml_contracts::dev_signer;
use support::{play_until, refused, table};

#[tokio::test]
async fn requests_results_and_challenges_check_their_inputs() {
    let t = table().await;
    let data = t.input.to_le_bytes();
    let cases: [(&str, [u8; 32], Vec<u8>, Vec<u8>); 4] = [
        ("UnknownModel", [7; 32], t.header.clone(), data.clone()),
        ("BadInputHeader", t.commitment, vec![0; 10], data.clone()),
        (
            "BadInputLength",
            t.commitment,
            t.header.clone(),
            data[1..].to_vec(),
        ),
        (
            "InputTooLarge",
            t.commitment,
            t.header.clone(),
            vec![0; 65537],
        ),
    ];
    for (error, model, header, bytes) in cases {
        refused(t.requester.request(model, &header, &bytes).await, error);
    }
    let honest = adversary::defender(t.model.clone(), t.input.clone(), Attack::None).unwrap();
    let bond = t.params.result_bond;
    refused(
        t.submitter
            .submit_result(
                t.request,
                honest.output(),
                honest.trace_root(),
                bond - U256::from(1),
            )
            .await,
        "WrongBond",
    );
    refused(
        t.submitter
            .submit_result(99, honest.output(), honest.trace_root(), bond)
            .await,
        "NoSuchRequest",
    );
    let result = t.post(&honest).await;
    refused(
        t.submitter
            .submit_result(t.request, honest.output(), honest.trace_root(), bond)
            .await,
        "RequestAnswered",
    );
    refused(t.submitter.finalize(result).await, "WindowOpen");
    refused(
        t.challengers[0].challenge(result, U256::from(1)).await,
        "WrongBond",
    );
    advance_time(t.requester.contract().provider(), t.params.challenge_window)
        .await
        .unwrap();
    refused(
        t.challengers[0]
            .challenge(result, t.params.challenge_bond)
            .await,
        "WindowClosed",
    );
    t.submitter.finalize(result).await.unwrap();
    refused(t.submitter.finalize(result).await, "ResultNotPending");
    // The bond comes back, once.
    let provider = t.submitter.contract().provider();
    let me = dev_signer(1).address();
    assert_eq!(
        t.submitter.contract().credit(me).call().await.unwrap(),
        bond
    );
    let before = provider.get_balance(t.deployment.game).await.unwrap();
    t.submitter.withdraw().await.unwrap();
    assert_eq!(
        provider.get_balance(t.deployment.game).await.unwrap(),
        before - bond
    );
    refused(t.submitter.withdraw().await, "NothingToWithdraw");
    t.balanced().await;
}

#[tokio::test]
async fn every_move_checks_mover_turn_segment_claims_and_clock() {
    let t = table().await;
    let mut liar = adversary::defender(
        t.model.clone(),
        t.input.clone(),
        Attack::Node {
            node: 2,
            lie_from: None,
        },
    )
    .unwrap();
    let mut honest = adversary::challenger(t.model.clone(), t.input.clone(), Attack::None).unwrap();
    let result = t.post(&liar).await;
    let game = t.challenge(0, result).await;
    let ch = &t.challengers[0];
    let view = t.submitter.view(game).await.unwrap();
    assert_eq!(
        (view.phase, view.lo, view.hi, view.turn),
        (2, 0, 8, Side::Submitter)
    );

    // Phase 2, the defender's turn.
    refused(
        ch.play(game, &Move::Claims(vec![[1; 32]; 2])).await,
        "NotYourTurn",
    );
    refused(
        t.challengers[1].play(game, &Move::Timeout).await,
        "ClockRunning",
    );
    refused(
        t.submitter.play(game, &Move::Claims(vec![[1; 32]])).await,
        "BadClaimCount",
    );
    refused(
        t.submitter.play(game, &Move::ProveStep(vec![0; 10])).await,
        "WrongPhase",
    );
    let Some(Move::Claims(claims)) = liar.next_move(&view).unwrap() else {
        panic!("the defender posts claims first")
    };
    refused(
        t.submitter
            .play(
                game,
                &Move::Pick {
                    index: 0,
                    claims: claims.clone(),
                },
            )
            .await,
        "NotYourTurn",
    );
    // The defender's first move carries its bond (the challenge bond), and no other move does.
    let raw = |value: U256| {
        let c = t.submitter.contract();
        let claims: Vec<B256> = claims.iter().map(|h| B256::from(*h)).collect();
        async move { c.postClaims(game, claims).value(value).call().await }
    };
    let bond = t.params.challenge_bond;
    for value in [U256::ZERO, bond - U256::from(1), bond * U256::from(2)] {
        let err = raw(value).await.unwrap_err();
        assert!(
            matches!(
                err.as_decoded_interface_error::<DisputeGameErrors>(),
                Some(DisputeGameErrors::WrongBond(_))
            ),
            "{value}: {err}"
        );
    }
    t.submitter
        .play(game, &Move::Claims(claims.clone()))
        .await
        .unwrap();
    assert!(t.submitter.view(game).await.unwrap().defended);
    refused(
        t.submitter.play(game, &Move::Claims(claims.clone())).await,
        "NotYourTurn",
    );

    // The challenger's turn: its pick must name the posted claims and a sub-segment.
    let mut other = claims.clone();
    other[0][0] ^= 1;
    refused(
        ch.play(
            game,
            &Move::Pick {
                index: 0,
                claims: other,
            },
        )
        .await,
        "ClaimsMismatch",
    );
    refused(
        ch.play(
            game,
            &Move::Pick {
                index: 3,
                claims: claims.clone(),
            },
        )
        .await,
        "BadIndex",
    );
    refused(
        t.challengers[1]
            .play(
                game,
                &Move::Pick {
                    index: 0,
                    claims: claims.clone(),
                },
            )
            .await,
        "NotYourTurn",
    );

    // Play to the phase boundary; the opening's proofs are each checked.
    let view = play_until(&t, game, ch, &mut liar, &mut honest, |v| {
        v.phase == 2 && v.hi - v.lo == 1
    })
    .await;
    assert_eq!(view.lo, 2, "the challenger finds the corrupted node");
    let Some(Move::OpenNode(opening)) = liar.next_move(&view).unwrap() else {
        panic!("the defender opens the node")
    };
    let tamper: [(&str, fn(&mut opml_bisect::NodeOpening)); 10] = [
        ("BadOutputProof", |o| o.evidence.output_path[3][0] ^= 1),
        ("BadOutputProof", |o| o.evidence.output[0] ^= 1),
        ("BadNodeProof", |o| o.evidence.kind ^= 1),
        ("BadNodeProof", |o| o.evidence.node_path[0][5] ^= 1),
        ("BadInputProof", |o| o.evidence.inputs[0][0] ^= 1),
        ("BadInputProof", |o| {
            o.evidence.input_paths.pop();
        }),
        ("NotExitedCleanly", |o| {
            o.final_claim.state.status = opml_vm::Status::Running
        }),
        ("BadAccumulator", |o| {
            o.final_claim.accumulator.frontier[1][4] ^= 1
        }),
        // The output header is part of the node leaf: another one is another node.
        ("BadNodeProof", |o| o.final_claim.header[7] ^= 1),
        ("BadStepCount", |o| o.final_claim.state.step = 0),
    ];
    for (error, change) in tamper {
        let mut bad = opening.clone();
        change(&mut bad);
        refused(t.submitter.play(game, &Move::OpenNode(bad)).await, error);
    }
    refused(
        ch.play(game, &Move::OpenNode(opening.clone())).await,
        "NotYourTurn",
    );
    t.submitter
        .play(game, &Move::OpenNode(opening))
        .await
        .unwrap();
    let view = t.submitter.view(game).await.unwrap();
    assert_eq!((view.phase, view.node, view.lo), (1, 2, 0));

    // Phase 1 to its single step: a witness for another pre-state is refused by Step.
    let view = play_until(&t, game, ch, &mut liar, &mut honest, |v| {
        v.phase == 1 && v.hi - v.lo == 1
    })
    .await;
    let Some(Move::ProveStep(witness)) = honest.next_move(&view).unwrap() else {
        panic!("the challenger proves the step")
    };
    let mut other = witness.clone();
    other[0] ^= 1;
    refused(ch.play(game, &Move::ProveStep(other)).await, "Step");
    refused(
        t.submitter.play(game, &Move::Claims(vec![])).await,
        "NotYourTurn",
    );

    // The challenger dawdles past its clock: it may no longer move, and loses on time.
    advance_time(ch.contract().provider(), view.clock_left(Side::Challenger))
        .await
        .unwrap();
    refused(
        ch.play(game, &Move::ProveStep(witness)).await,
        "ClockExpired",
    );
    t.requester.play(game, &Move::Timeout).await.unwrap();
    let view = t.submitter.view(game).await.unwrap();
    assert_eq!(view.winner, Some(Side::Submitter));
    refused(t.requester.play(game, &Move::Timeout).await, "GameOver");
    t.balanced().await;
}

#[tokio::test]
async fn several_challengers_each_play_their_own_game() {
    let t = table().await;
    // A faulty result, disputed twice: the first game lost rejects it and burns its bond; the
    // other game goes on to its own end.
    let mut liar = adversary::defender(t.model.clone(), t.input.clone(), Attack::Output).unwrap();
    let result = t.post(&liar).await;
    let first = t.challenge(0, result).await;
    let second = t.challenge(1, result).await;
    // Both games reach the last node, which the liar cannot open on a wrong output.
    let mut views = Vec::new();
    for (game, i) in [(second, 1), (first, 0)] {
        let mut honest =
            adversary::challenger(t.model.clone(), t.input.clone(), Attack::None).unwrap();
        let view = play_until(&t, game, &t.challengers[i], &mut liar, &mut honest, |v| {
            v.phase == 2 && v.hi - v.lo == 1
        })
        .await;
        assert!(view.defended, "the defender's first move carried its bond");
        let Some(mv) = liar.next_move(&view).unwrap() else {
            panic!()
        };
        refused(t.submitter.play(game, &mv).await, "OutputMismatch");
        views.push(view);
    }
    refused(t.submitter.finalize(result).await, "WindowOpen");
    // It stalls in both and loses both on time; the first game lost rejects the result and burns
    // its bond, the other goes on to its own end.
    let left = views.iter().map(|v| v.clock_left(Side::Submitter)).max();
    advance_time(t.requester.contract().provider(), left.unwrap())
        .await
        .unwrap();
    t.challengers[1].play(second, &Move::Timeout).await.unwrap();
    let c = t.submitter.contract();
    assert_eq!(
        t.submitter.result_status(result).await.unwrap(),
        ResultStatus::Rejected
    );
    let credit = |i: u32| async move { c.credit(dev_signer(i).address()).call().await.unwrap() };
    let p = t.params;
    // The winner of a game takes both of its bonds; the result bond is burnt, nobody's.
    assert_eq!(credit(3).await, p.challenge_bond * U256::from(2));
    assert_eq!(c.burnt().call().await.unwrap(), p.result_bond);
    t.balanced().await;
    t.challengers[0].play(first, &Move::Timeout).await.unwrap();
    assert_eq!(credit(2).await, p.challenge_bond * U256::from(2));
    assert_eq!(credit(1).await, U256::ZERO);
    assert_eq!(c.burnt().call().await.unwrap(), p.result_bond);
    t.balanced().await;
    // The request is open again, for an honest answer.
    let honest_submitter =
        adversary::defender(t.model.clone(), t.input.clone(), Attack::None).unwrap();
    let again = t.post(&honest_submitter).await;
    assert_ne!(again, result);

    // An honest result disputed by two wrong challengers: both lose their bonds to the submitter,
    // and the result is final only once both games are over and the window has passed.
    let mut wrong = [
        adversary::challenger(
            t.model.clone(),
            t.input.clone(),
            Attack::Challenger { node: Some(1) },
        )
        .unwrap(),
        adversary::challenger(
            t.model.clone(),
            t.input.clone(),
            Attack::Challenger { node: Some(6) },
        )
        .unwrap(),
    ];
    let games = [t.challenge(0, again).await, t.challenge(1, again).await];
    let mut defender = honest_submitter;
    let [first_wrong, second_wrong] = &mut wrong;
    let view = play_until(
        &t,
        games[0],
        &t.challengers[0],
        &mut defender,
        first_wrong,
        |_| false,
    )
    .await;
    assert_eq!(view.winner, Some(Side::Submitter));
    // The second challenger moves once more, then stops: past the window the result still waits
    // for its game, which the submitter ends when the challenger's clock has run out.
    let view = play_until(
        &t,
        games[1],
        &t.challengers[1],
        &mut defender,
        second_wrong,
        |v| v.turn == Side::Challenger && v.pending_claims.is_some(),
    )
    .await;
    assert!(!view.is_over());
    advance_time(c.provider(), 2 * t.params.challenge_window)
        .await
        .unwrap();
    refused(t.submitter.finalize(again).await, "GamesOpen");
    let view = t.submitter.view(games[1]).await.unwrap();
    assert_eq!(defender.next_move(&view).unwrap(), Some(Move::Timeout));
    t.submitter.play(games[1], &Move::Timeout).await.unwrap();
    t.submitter.finalize(again).await.unwrap();
    // Back: the result bond, and each game's two bonds.
    assert_eq!(
        credit(1).await,
        p.result_bond + p.challenge_bond * U256::from(4)
    );
    t.balanced().await;
}
