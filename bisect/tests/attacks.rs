//! Attacks on the dispute game (issue 14), each played on the embedded chain with the real MNIST
//! CNN, with the honest outcome asserted and the books checked (`balance == locked + owed`):
//!
//! - a liar that challenges its own false result from other accounts and lets those games end
//!   first (or last) still loses at least its result bond, and the honest challenger ends with more
//!   than it put in whenever the liar answered its game;
//! - a forged output header (a node's true bytes re-declared as another tensor) cannot be opened;
//! - griefing challengers of a true result each lose their bond to the honest defender;
//! - a seeded random adversary mixes all of these over 200 games.

mod support;

use alloy::primitives::U256;
use opml_bisect::{
    advance_time, adversary, Attack, ChallengerStrategy, DefenderStrategy, GameClient, Move,
    ResultStatus, Side,
};
use opml_contracts::dev_signer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::{play_until, refused, table, Table};

/// What the game has credited to dev account `i` so far (nobody withdraws in these tests).
async fn credit(t: &Table, i: u32) -> U256 {
    t.submitter
        .contract()
        .credit(dev_signer(i).address())
        .call()
        .await
        .unwrap()
}

async fn burnt(t: &Table) -> U256 {
    t.submitter.contract().burnt().call().await.unwrap()
}

/// One game of the attack and the strategies that play it.
struct Play {
    id: u64,
    defender: Box<dyn DefenderStrategy>,
    /// The defender stops moving in this game after this many moves (a stalling liar).
    defender_stops_after: Option<u32>,
    defender_moves: u32,
    challenger: Box<dyn ChallengerStrategy>,
    challenger_client: GameClient,
    /// The dev account of the challenger.
    challenger_account: u32,
}

/// Plays every game to its end: each round every party with a move in a game makes it (a refused
/// move makes that party stall there, as the bots do); when nobody can move, the chain's clock
/// moves past the clocks and the expired games are ended by timeout.
async fn play_all(t: &Table, games: &mut [Play]) {
    loop {
        let mut open = false;
        let mut moved = false;
        for g in games.iter_mut() {
            let view = t.requester.view(g.id).await.unwrap();
            if view.is_over() {
                continue;
            }
            open = true;
            if view.turn == Side::Submitter {
                if g.defender_stops_after
                    .is_some_and(|n| g.defender_moves >= n)
                {
                    continue;
                }
                if let Some(mv) = g.defender.next_move(&view).unwrap() {
                    match t.submitter.play(g.id, &mv).await {
                        Ok(_) => {
                            g.defender_moves += 1;
                            moved = true;
                        }
                        Err(e) if e.is_rejection() => g.defender.refused(),
                        Err(e) => panic!("game {}: {e}", g.id),
                    }
                }
            } else if let Some(mv) = g.challenger.next_move(&view).unwrap() {
                match g.challenger_client.play(g.id, &mv).await {
                    Ok(_) => moved = true,
                    Err(e) if e.is_rejection() => g.challenger.refused(),
                    Err(e) => panic!("game {}: {e}", g.id),
                }
            }
        }
        if !open {
            return;
        }
        if !moved {
            advance_time(t.requester.contract().provider(), t.params.clock + 1)
                .await
                .unwrap();
            for g in games.iter() {
                let view = t.requester.view(g.id).await.unwrap();
                if view.turn_expired() {
                    t.requester.play(g.id, &Move::Timeout).await.unwrap();
                }
            }
        }
    }
}

/// A new request for the table's model and input, and the defender `fault` posting its result.
async fn post(t: &Table, fault: Attack) -> (u64, Box<dyn DefenderStrategy>) {
    let (_, request) = t
        .requester
        .request(t.commitment, &t.header, &t.input.to_le_bytes())
        .await
        .unwrap();
    let defender = adversary::defender(t.model.clone(), t.input.clone(), fault).unwrap();
    let (_, result) = t
        .submitter
        .submit_result(
            request,
            defender.output(),
            defender.trace_root(),
            t.params.result_bond,
        )
        .await
        .unwrap();
    (result, defender)
}

/// Dev account of `t.challengers[i]`.
fn challenger_account(i: usize) -> u32 {
    i as u32 + 2
}

/// Opens a game on `result` by challenger `i` playing `fault`, defended by a fresh `defender_fault`
/// strategy that stops after `stops_after` of its moves.
async fn open_game(
    t: &Table,
    result: u64,
    i: usize,
    fault: Attack,
    defender_fault: Attack,
    stops_after: Option<u32>,
) -> Play {
    Play {
        id: t.challenge(i, result).await,
        defender: adversary::defender(t.model.clone(), t.input.clone(), defender_fault).unwrap(),
        defender_stops_after: stops_after,
        defender_moves: 0,
        challenger: adversary::challenger(t.model.clone(), t.input.clone(), fault).unwrap(),
        challenger_client: t.challengers[i].clone(),
        challenger_account: challenger_account(i),
    }
}

#[tokio::test]
async fn a_liar_with_challengers_of_its_own_still_loses_its_result_bond() {
    let lie = Attack::Node {
        node: 2,
        lie_from: None,
    };
    // (the liar answers the honest game once before it stalls, its own challengers' games end
    // before the honest one)
    for (answers, own_first) in [(true, true), (true, false), (false, true), (false, false)] {
        let case = format!("answers honest game: {answers}, own games first: {own_first}");
        let t = table().await;
        let p = t.params;
        let (result, _) = post(&t, lie).await;
        // Two challengers of the liar's own (dev 2 and 3) challenge before the honest one (dev 4);
        // in the liar's own games the liar plays its lie out and loses, as fast as it can.
        let mut own = vec![
            open_game(&t, result, 0, Attack::None, lie, None).await,
            open_game(&t, result, 1, Attack::None, lie, None).await,
        ];
        let mut honest =
            vec![open_game(&t, result, 2, Attack::None, lie, Some(u32::from(answers))).await];
        if own_first {
            play_all(&t, &mut own).await;
            play_all(&t, &mut honest).await;
        } else {
            play_all(&t, &mut honest).await;
            play_all(&t, &mut own).await;
        }
        assert_eq!(
            t.submitter.result_status(result).await.unwrap(),
            ResultStatus::Rejected,
            "{case}"
        );
        let bond = p.challenge_bond;
        // The liar put in its result bond, one defence bond per game it answered and its own
        // challengers' bonds; it gets back at most the bonds of the games its accounts won.
        let defended = 2 + u64::from(answers);
        let liar_in = p.result_bond + bond * U256::from(defended) + bond * U256::from(2);
        let liar_out = credit(&t, 1).await + credit(&t, 2).await + credit(&t, 3).await;
        assert!(
            liar_out + p.result_bond <= liar_in,
            "{case}: the liar put in {liar_in} and got {liar_out} back"
        );
        // The honest challenger takes both bonds of its game when the liar answered it, and its
        // own bond back when the liar never did (protocol section 12.4: nothing better exists).
        let honest_out = credit(&t, 4).await;
        let want = if answers { bond * U256::from(2) } else { bond };
        assert_eq!(honest_out, want, "{case}");
        assert_eq!(burnt(&t).await, p.result_bond, "{case}");
        t.balanced().await;
    }
}

#[tokio::test]
async fn a_forged_output_header_cannot_be_opened() {
    let t = table().await;
    let last = t.model.manifest.nodes.len() - 1;
    // The arg-max's int32[1] re-declared as int8[4] over the same data root (the posted output),
    // and an intermediate node's output re-declared in the trace alone (the true output).
    for node in [last, 3] {
        let fault = Attack::Header { node };
        let (result, mut liar) = post(&t, fault).await;
        let game = t.challenge(0, result).await;
        let mut honest =
            adversary::challenger(t.model.clone(), t.input.clone(), Attack::None).unwrap();
        let view = play_until(&t, game, &t.challengers[0], &mut liar, &mut honest, |v| {
            v.phase == 2 && v.hi - v.lo == 1
        })
        .await;
        assert_eq!(view.lo, node as u64, "{fault}");
        let Some(opening @ Move::OpenNode(_)) = liar.next_move(&view).unwrap() else {
            panic!("{fault}: the liar has an opening")
        };
        refused(t.submitter.play(game, &opening).await, "BadNodeProof");
        advance_time(
            t.requester.contract().provider(),
            view.clock_left(Side::Submitter),
        )
        .await
        .unwrap();
        t.challengers[0].play(game, &Move::Timeout).await.unwrap();
        let view = t.requester.view(game).await.unwrap();
        assert_eq!(view.winner, Some(Side::Challenger), "{fault}");
        assert_eq!(
            t.submitter.result_status(result).await.unwrap(),
            ResultStatus::Rejected,
            "{fault}"
        );
    }
    assert_eq!(credit(&t, 2).await, t.params.challenge_bond * U256::from(4));
    t.balanced().await;
}

#[tokio::test]
async fn griefers_of_a_true_result_lose_their_bonds() {
    let t = table().await;
    let p = t.params;
    let (result, _) = post(&t, Attack::None).await;
    let griefers = [
        Attack::Challenger { node: Some(1) },
        Attack::ChallengerRandom { seed: 3 },
        Attack::ChallengerStalls { after: 2 },
        Attack::Challenger { node: None },
    ];
    let mut games = Vec::new();
    for (i, fault) in griefers.into_iter().enumerate() {
        games.push(open_game(&t, result, i, fault, Attack::None, None).await);
    }
    play_all(&t, &mut games).await;
    for g in &games {
        let view = t.requester.view(g.id).await.unwrap();
        assert_eq!(view.winner, Some(Side::Submitter), "game {}", g.id);
        assert_eq!(credit(&t, g.challenger_account).await, U256::ZERO);
    }
    advance_time(t.requester.contract().provider(), p.challenge_window)
        .await
        .unwrap();
    t.submitter.finalize(result).await.unwrap();
    // The defender put in the result bond and four defence bonds; it gets those and the four
    // griefers' bonds.
    assert_eq!(
        credit(&t, 1).await,
        p.result_bond + p.challenge_bond * U256::from(8)
    );
    t.balanced().await;
}

/// A liar's fault for node count `nodes`, at random.
fn random_lie(rng: &mut StdRng, nodes: usize) -> Attack {
    let node = rng.gen_range(0..nodes);
    match rng.gen_range(0..7) {
        0 => Attack::Node {
            node,
            lie_from: None,
        },
        1 => Attack::Node {
            node,
            lie_from: Some(rng.gen_range(0..2000)),
        },
        2 => Attack::Output,
        3 => Attack::Trace { node },
        4 => Attack::Header { node },
        5 => Attack::StepCount {
            node,
            delta: if rng.gen() { 5 } else { -3 },
        },
        _ => Attack::Boundary { node },
    }
}

/// A challenger that does not play to win (a liar's own challenger trying to lose, or a griefer).
fn random_throw(rng: &mut StdRng, nodes: usize) -> Attack {
    match rng.gen_range(0..3) {
        0 => Attack::Challenger {
            node: Some(rng.gen_range(0..nodes)),
        },
        1 => Attack::ChallengerRandom { seed: rng.gen() },
        _ => Attack::ChallengerStalls {
            after: rng.gen_range(0..6),
        },
    }
}

#[tokio::test]
async fn a_random_adversary_never_beats_the_honest_side() {
    const GAMES: u64 = 200;
    let seed: u64 = std::env::var("OPML_ATTACK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(14);
    let t = table().await;
    let p = t.params;
    let bond = p.challenge_bond;
    let nodes = t.model.manifest.nodes.len();
    let mut games_played = 0;
    let mut round = 0u64;
    while games_played < GAMES {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(round));
        let case = format!("seed {seed} round {round} (replay: OPML_ATTACK_SEED={seed})");
        round += 1;
        let before: Vec<U256> = credits(&t).await;
        let burnt_before = burnt(&t).await;
        if rng.gen_bool(0.6) {
            // A lie, challenged by 0-2 challengers of the liar's own that play to win or to
            // lose, and by one honest challenger; the liar stalls in any game at random.
            let lie = random_lie(&mut rng, nodes);
            let (result, _) = post(&t, lie).await;
            let own = rng.gen_range(0..=2);
            let mut games = Vec::new();
            for i in 0..own {
                let fault = if rng.gen() {
                    Attack::None
                } else {
                    random_throw(&mut rng, nodes)
                };
                let stop = rng.gen_bool(0.3).then(|| rng.gen_range(0..4));
                games.push(open_game(&t, result, i, fault, lie, stop).await);
            }
            let stop = rng.gen_bool(0.5).then(|| rng.gen_range(0..4));
            games.push(open_game(&t, result, 2, Attack::None, lie, stop).await);
            let case = format!("{case}: lie {lie}, {own} own challengers, honest stops {stop:?}");
            play_all(&t, &mut games).await;
            games_played += games.len() as u64;
            let honest = games.last().unwrap();
            let view = t.requester.view(honest.id).await.unwrap();
            assert_eq!(view.winner, Some(Side::Challenger), "{case}");
            assert_eq!(
                t.submitter.result_status(result).await.unwrap(),
                ResultStatus::Rejected,
                "{case}"
            );
            let after = credits(&t).await;
            let gained = |i: usize| after[i] - before[i];
            let honest_want = if view.defended {
                bond * U256::from(2)
            } else {
                bond
            };
            assert_eq!(gained(4), honest_want, "{case}");
            let mut defended = 0u64;
            for g in &games {
                defended += u64::from(t.requester.view(g.id).await.unwrap().defended);
            }
            let liar_in = p.result_bond + bond * U256::from(defended + own as u64);
            let liar_out = gained(1) + gained(2) + gained(3);
            assert!(
                liar_out + p.result_bond <= liar_in,
                "{case}: the liar put in {liar_in}, got {liar_out} back"
            );
            assert_eq!(burnt(&t).await - burnt_before, p.result_bond, "{case}");
        } else {
            // A true result and 1-3 griefers.
            let (result, _) = post(&t, Attack::None).await;
            let count = rng.gen_range(1..=3);
            let mut games = Vec::new();
            for i in 0..count {
                let fault = random_throw(&mut rng, nodes);
                games.push(open_game(&t, result, i, fault, Attack::None, None).await);
            }
            let case = format!("{case}: true result, {count} griefers");
            play_all(&t, &mut games).await;
            games_played += count as u64;
            for g in &games {
                let view = t.requester.view(g.id).await.unwrap();
                assert_eq!(view.winner, Some(Side::Submitter), "{case}");
            }
            advance_time(t.requester.contract().provider(), p.challenge_window)
                .await
                .unwrap();
            t.submitter.finalize(result).await.unwrap();
            let after = credits(&t).await;
            assert_eq!(
                after[1] - before[1],
                p.result_bond + bond * U256::from(2 * count as u64),
                "{case}"
            );
            for i in 0..count {
                assert_eq!(after[i + 2], before[i + 2], "{case}: griefer {i}");
            }
        }
        t.balanced().await;
    }
}

/// What the game has credited to each of dev accounts 0..6.
async fn credits(t: &Table) -> Vec<U256> {
    let mut credits = Vec::new();
    for i in 0..6 {
        credits.push(credit(t, i).await);
    }
    credits
}
