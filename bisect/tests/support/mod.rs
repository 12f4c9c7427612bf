//! What the game tests share: contracts deployed on an embedded chain, the MNIST CNN registered,
//! one request posted, and accounts for a requester, a submitter and challengers.

#![allow(dead_code, unreachable_pub)]

use alloy::providers::Provider;
use opml_bisect::{
    ChallengerStrategy, ClientError, DefenderStrategy, Deployment, GameClient, GameParams, GameView,
};
use opml_contracts::{dev_signer, EmbeddedChain};
use opml_dnn::mnist::{quantize_image, read_pgm};
use opml_dnn::{Model, Tensor};
use std::path::Path;
use std::sync::Arc;

pub fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// Contracts deployed, the CNN registered and one request posted; the challengers are dev
/// accounts 2, 3, 4 and 5.
pub struct Table {
    pub _chain: EmbeddedChain,
    pub deployment: Deployment,
    pub params: GameParams,
    pub model: Arc<Model>,
    pub input: Tensor,
    pub commitment: [u8; 32],
    pub header: Vec<u8>,
    pub request: u64,
    pub requester: GameClient,
    pub submitter: GameClient,
    pub challengers: Vec<GameClient>,
}

pub async fn table() -> Table {
    let chain = EmbeddedChain::default();
    let params = GameParams {
        arity: 3,
        clock: 600,
        challenge_window: 1000,
        ..GameParams::default()
    };
    let deployer = chain.provider(dev_signer(0));
    let deployment = Deployment::deploy(&deployer, &params).await.unwrap();
    let model = Arc::new(Model::load(&repo("models/mnist-cnn")).unwrap());
    let (_, commitment) = deployment
        .register_model(
            &chain.provider(dev_signer(1)),
            &model,
            "file:models/mnist-cnn",
        )
        .await
        .unwrap();
    let client = |i| GameClient::new(deployment.game, chain.provider(dev_signer(i)));
    let requester = client(0).await.unwrap();
    let submitter = client(1).await.unwrap();
    let mut challengers = Vec::new();
    for i in 2..6 {
        challengers.push(client(i).await.unwrap());
    }
    let input = quantize_image(&read_pgm(&repo("data/mnist/samples/digit-2-label-6.pgm")).unwrap());
    let spec = &model.manifest.input;
    let header = opml_dnn::tensor::header(spec.dtype, &spec.shape).unwrap();
    let (_, request) = requester
        .request(commitment, &header, &input.to_le_bytes())
        .await
        .unwrap();
    Table {
        _chain: chain,
        deployment,
        params,
        model,
        input,
        commitment,
        header,
        request,
        requester,
        submitter,
        challengers,
    }
}

impl Table {
    pub async fn post(&self, party: &dyn DefenderStrategy) -> u64 {
        self.submitter
            .submit_result(
                self.request,
                party.output(),
                party.trace_root(),
                self.params.result_bond,
            )
            .await
            .unwrap()
            .1
    }

    pub async fn challenge(&self, which: usize, result: u64) -> u64 {
        self.challengers[which]
            .challenge(result, self.params.challenge_bond)
            .await
            .unwrap()
            .1
    }

    pub async fn balanced(&self) {
        let c = self.submitter.contract();
        let locked = c.locked().call().await.unwrap();
        let owed = c.owed().call().await.unwrap();
        let balance = c
            .provider()
            .get_balance(self.deployment.game)
            .await
            .unwrap();
        assert_eq!(balance, locked + owed);
    }
}

/// Plays `game` between the two parties until `stop` holds for the view (or the game is over).
pub async fn play_until(
    t: &Table,
    game: u64,
    challenger_client: &GameClient,
    submitter: &mut dyn DefenderStrategy,
    challenger: &mut dyn ChallengerStrategy,
    stop: impl Fn(&GameView) -> bool,
) -> GameView {
    loop {
        let view = t.submitter.view(game).await.unwrap();
        if view.is_over() || stop(&view) {
            return view;
        }
        if let Some(mv) = submitter.next_move(&view).unwrap() {
            t.submitter.play(game, &mv).await.unwrap();
        } else if let Some(mv) = challenger.next_move(&view).unwrap() {
            challenger_client.play(game, &mv).await.unwrap();
        } else {
            panic!("nobody moves at {view:?}");
        }
    }
}

#[track_caller]
pub fn refused<T: std::fmt::Debug>(result: Result<T, ClientError>, error: &str) {
    match result {
        Err(ClientError::Rejected { reason, .. }) => {
            assert!(reason.contains(error), "expected {error}, got {reason}")
        }
        other => panic!("expected {error}, got {other:?}"),
    }
}
