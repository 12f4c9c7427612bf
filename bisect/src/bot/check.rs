//! The checks a bot makes of its configuration against the chain: on every start ([`Bot::start`])
//! and, one by one with a verdict each, for `opml submitter|challenger --check` ([`check_config`]).
//!
//! [`Bot::start`]: super::Bot::start

use super::outbox::{gwei, price, Market, Pricing};
use super::{transport, BotConfig, BotError, DEFAULT_RESERVE_GAMES};
use crate::client::{ClientError, GameClient, Side};
use crate::Deployment;
use alloy::primitives::utils::format_ether;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use opml_dnn::Model;
use std::path::Path;

/// The chain's id.
pub(super) async fn read_chain_id(provider: &DynProvider) -> Result<u64, BotError> {
    Ok(provider
        .get_chain_id()
        .await
        .map_err(transport("read chain id"))?)
}

/// The deployment behind the configured game, refused unless it is this build's code
/// ([`Deployment::verify`]).
pub(super) async fn verify_deployment(
    config: &BotConfig,
    provider: &DynProvider,
) -> Result<Deployment, BotError> {
    match Deployment::verify(provider, config.game).await {
        Err(ClientError::Foreign(reason)) => Err(BotError::ForeignDeployment {
            game: config.game,
            reason,
        }),
        other => Ok(other?),
    }
}

/// A model folder and its commitment.
pub(super) fn load_model(path: &Path) -> Result<(B256, Model), BotError> {
    let model_error = |source| BotError::Model {
        path: path.display().to_string(),
        source,
    };
    let model = Model::load(path).map_err(model_error)?;
    let commitment = model.commitment().map_err(model_error)?;
    Ok((B256::from(commitment), model))
}

/// The contract's terms for a bot of one role, checked against its configuration.
pub(super) struct Terms {
    /// A client of the game without a signer.
    pub(super) probe: GameClient,
    /// The bond of this role: the result bond (submitter) or the challenge bond (challenger).
    pub(super) bond: U256,
    /// The bond of each side of a game.
    pub(super) game_bond: U256,
    /// Submitter: wei kept for defence; zero for a challenger.
    pub(super) reserve: U256,
}

impl Terms {
    /// Reads the game's arity and bonds: an error when the configured arity differs or a bond the
    /// role locks exceeds the configured `bond`.
    pub(super) async fn read(
        role: Side,
        config: &BotConfig,
        provider: &DynProvider,
    ) -> Result<Self, BotError> {
        let probe = GameClient::new(config.game, provider.clone()).await?;
        if let Some(arity) = config.arity {
            if arity != probe.arity() {
                return Err(BotError::ArityMismatch {
                    game: config.game,
                    config: arity,
                    contract: probe.arity(),
                });
            }
        }
        let game_bond = probe.challenge_bond();
        let bond = match role {
            Side::Submitter => probe.result_bond().await?,
            Side::Challenger => game_bond,
        };
        // A submitter locks the result bond with each result, and the game bond with its first
        // move in each game it defends; a challenger the game bond with each challenge.
        let locks = match role {
            Side::Submitter => vec![("result", bond), ("game", game_bond)],
            Side::Challenger => vec![("game", game_bond)],
        };
        for (what, wei) in locks {
            if wei > config.bond {
                return Err(BotError::BondTooLarge {
                    what,
                    contract: wei,
                    config: config.bond,
                });
            }
        }
        let reserve = match role {
            Side::Submitter => config
                .reserve
                .unwrap_or(game_bond * U256::from(DEFAULT_RESERVE_GAMES)),
            Side::Challenger => U256::ZERO,
        };
        Ok(Self {
            probe,
            bond,
            game_bond,
            reserve,
        })
    }

    /// The balance below which the bot takes on no new work: a result bond on top of the reserve
    /// (submitter), a challenge bond (challenger).
    pub(super) fn needed(&self) -> U256 {
        self.reserve + self.bond
    }
}

/// One check of [`check_config`] and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked (`chain`, `deployment`, `model <path>`...).
    pub name: String,
    /// What was found: `Ok` with the facts when it passes, `Err` with why when it fails.
    pub outcome: Result<String, String>,
}

/// Checks `config` for a bot of `role` against the chain behind `provider`, with the checks
/// [`Bot::start`](super::Bot::start) makes and then some it cannot (the models are registered, the
/// account is funded), without retrying a failing node, writing anything or opening the database.
/// Every check that can run does, so one report names every problem.
pub async fn check_config(role: Side, config: &BotConfig, provider: &DynProvider) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut record = |name: String, outcome: Result<String, String>| {
        let pass = outcome.is_ok();
        checks.push(Check { name, outcome });
        pass
    };
    let account = config.signer.address();
    let chain_id = match read_chain_id(provider).await {
        Ok(id) => {
            let depth = config.confirmations_on(id);
            let ok = format!("chain id {id}; logs are acted on {depth} blocks deep");
            record("chain".into(), Ok(ok));
            Some(id)
        }
        Err(e) => {
            record("chain".into(), Err(e.to_string()));
            None
        }
    };
    let key = match chain_id {
        Some(id) if opml_contracts::warn_if_dev_key(id, account) => Err(format!(
            "{account} is a public dev account, and chain {id} is no development chain"
        )),
        _ => Ok(format!("signs as {account}")),
    };
    record("key".into(), key);
    if chain_id.is_some() {
        record("fees".into(), check_fees(config, provider).await);
    }
    let deployment = match chain_id {
        Some(_) => match verify_deployment(config, provider).await {
            Ok(d) => {
                let ok = format!(
                    "the game at {} and its Step, NodeVm and Registry are this build's",
                    d.game
                );
                record("deployment".into(), Ok(ok));
                Some(d)
            }
            Err(e) => {
                record("deployment".into(), Err(e.to_string()));
                None
            }
        },
        None => None,
    };
    let terms = match &deployment {
        Some(_) => match Terms::read(role, config, provider).await {
            Ok(t) => {
                let ok = format!(
                    "arity {}, {}challenge bond {} ETH, within the config's bond of {} ETH",
                    t.probe.arity(),
                    match role {
                        Side::Submitter => format!("result bond {} ETH, ", format_ether(t.bond)),
                        Side::Challenger => String::new(),
                    },
                    format_ether(t.game_bond),
                    format_ether(config.bond),
                );
                record("terms".into(), Ok(ok));
                Some(t)
            }
            Err(e) => {
                record("terms".into(), Err(e.to_string()));
                None
            }
        },
        None => None,
    };
    for path in &config.models {
        let name = format!("model {}", path.display());
        let commitment = match load_model(path) {
            Ok((c, _)) => c,
            Err(e) => {
                record(name, Err(e.to_string()));
                continue;
            }
        };
        let outcome = match &deployment {
            None => Ok(format!(
                "commitment {commitment} (the Registry was not checked)"
            )),
            Some(d) => match d.model_owner(provider, commitment).await {
                Ok(owner) if owner != Address::ZERO => {
                    Ok(format!("commitment {commitment}, registered by {owner}"))
                }
                Ok(_) => Err(format!(
                    "commitment {commitment} is not registered in the Registry at {} \
                     (`opml deploy --model` registers it)",
                    d.registry
                )),
                Err(e) => Err(e.to_string()),
            },
        };
        record(name, outcome);
    }
    if let Some(t) = &terms {
        let need = t.needed();
        let what = match role {
            Side::Submitter => "a result bond plus the reserve",
            Side::Challenger => "a challenge bond",
        };
        let outcome = match t.probe.balance(account).await {
            Ok(have) if have >= need => Ok(format!(
                "{} ETH covers {what} ({} ETH)",
                format_ether(have),
                format_ether(need)
            )),
            Ok(have) => Err(format!(
                "{account} holds {} ETH, less than {what} ({} ETH)",
                format_ether(have),
                format_ether(need)
            )),
            Err(e) => Err(e.to_string()),
        };
        record("balance".into(), outcome);
    }
    checks
}

/// The market's gas price against the config's fee cap: a cap below what a transaction needs
/// now (the base fee plus the tip) fails, with the numbers.
async fn check_fees(config: &BotConfig, provider: &DynProvider) -> Result<String, String> {
    let m = Market::read(provider).await.map_err(|e| e.to_string())?;
    let market = format!(
        "base fee {} gwei, tip {} gwei, estimate {} gwei",
        gwei(m.base_fee),
        gwei(m.tip),
        gwei(m.max_fee)
    );
    match (config.max_fee_per_gas, price(m, config.max_fee_per_gas)) {
        (None, _) => Ok(format!("{market}; no cap (max_fee_gwei)")),
        (Some(cap), Pricing::Wait) => Err(format!(
            "max_fee_gwei = {} is below what a transaction needs now ({market}): the bot would \
             send nothing until the base fee falls",
            gwei(cap)
        )),
        (Some(cap), Pricing::Send { max_fee, .. }) if max_fee < m.max_fee => Ok(format!(
            "{market}; transactions go at the cap of {} gwei (less room for a rising base fee)",
            gwei(cap)
        )),
        (Some(cap), Pricing::Send { .. }) => {
            Ok(format!("{market}; within the cap of {} gwei", gwei(cap)))
        }
    }
}
