//! Deploying the contracts of a dispute and registering a model, through any alloy provider.

use crate::client::{ClientError, TxOutcome};
use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::providers::{DynProvider, Provider};
use opml_contracts::bindings::{DisputeGame, NodeVm, Registry, Step};
use opml_contracts::{Contract, ForeignCode};
use opml_dnn::kernel::KERNEL_BASE;
use opml_dnn::{Model, OpKind};
use opml_vm::Hash;
use serde::Serialize;

/// The game's constructor parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GameParams {
    /// Bond locked with each result (wei).
    #[serde(serialize_with = "opml_contracts::json::wei")]
    pub result_bond: U256,
    /// Bond locked with each challenge (wei).
    #[serde(serialize_with = "opml_contracts::json::wei")]
    pub challenge_bond: U256,
    /// Seconds a result may be challenged (in JSON: `challenge_window_ms`).
    #[serde(
        rename = "challenge_window_ms",
        serialize_with = "opml_contracts::json::seconds_as_ms"
    )]
    pub challenge_window: u64,
    /// Seconds on each party's clock per game (in JSON: `clock_ms`).
    #[serde(
        rename = "clock_ms",
        serialize_with = "opml_contracts::json::seconds_as_ms"
    )]
    pub clock: u64,
    /// Sub-segments per dissection move.
    pub arity: u64,
}

impl Default for GameParams {
    fn default() -> Self {
        let ether = U256::from(10u64).pow(U256::from(18u64));
        Self {
            result_bond: ether,
            challenge_bond: ether / U256::from(2u64),
            challenge_window: 3600,
            clock: 1800,
            arity: 2,
        }
    }
}

/// Every op kind's kernel image as this build makes it: (kind code, memory root of the image).
pub fn kernel_images() -> Vec<(u8, B256)> {
    OpKind::ALL
        .iter()
        .map(|k| (*k as u8, B256::from(k.kernel_root())))
        .collect()
}

/// Where the contracts of one deployment live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// The Step contract.
    #[serde(serialize_with = "opml_contracts::json::checksummed")]
    pub step: Address,
    /// The NodeVm contract.
    #[serde(serialize_with = "opml_contracts::json::checksummed")]
    pub node_vm: Address,
    /// The Registry, with every op kind's kernel image.
    #[serde(serialize_with = "opml_contracts::json::checksummed")]
    pub registry: Address,
    /// The DisputeGame.
    #[serde(serialize_with = "opml_contracts::json::checksummed")]
    pub game: Address,
}

fn deploy_error(what: &'static str) -> impl Fn(alloy::contract::Error) -> ClientError {
    move |source| ClientError::Chain {
        what,
        source: Box::new(source),
    }
}

impl Deployment {
    /// Deploys Step, NodeVm, the Registry (with the kernel image of every op kind) and a
    /// DisputeGame with `params`, from `provider`'s signer.
    pub async fn deploy(provider: &DynProvider, params: &GameParams) -> Result<Self, ClientError> {
        let step = Step::deploy(provider.clone())
            .await
            .map_err(deploy_error("deploy Step"))?;
        let node_vm = NodeVm::deploy(provider.clone())
            .await
            .map_err(deploy_error("deploy NodeVm"))?;
        let registry = Self::deploy_registry(provider, &kernel_images()).await?;
        let game = DisputeGame::deploy(
            provider.clone(),
            registry,
            *step.address(),
            *node_vm.address(),
            params.result_bond,
            params.challenge_bond,
            params.challenge_window,
            params.clock,
            params.arity,
        )
        .await
        .map_err(deploy_error("deploy DisputeGame"))?;
        Ok(Self {
            step: *step.address(),
            node_vm: *node_vm.address(),
            registry,
            game: *game.address(),
        })
    }

    /// Deploys a Registry holding `images` (op kind code, kernel memory root; entry
    /// `KERNEL_BASE`), from `provider`'s signer.
    pub async fn deploy_registry(
        provider: &DynProvider,
        images: &[(u8, B256)],
    ) -> Result<Address, ClientError> {
        let registry = Registry::deploy(
            provider.clone(),
            images.iter().map(|i| i.0).collect(),
            images.iter().map(|i| i.1).collect(),
            vec![KERNEL_BASE; images.len()],
        )
        .await
        .map_err(deploy_error("deploy Registry"))?;
        Ok(*registry.address())
    }

    /// The deployment behind the game at `game`, checked before anyone locks a bond in it: the
    /// game, its Step verifier, NodeVm and Registry run this build's compiled code (immutables
    /// aside), and the Registry holds this build's kernel image for every op kind. A look-alike
    /// (a game wired to a Step that lets a liar win, a Registry with another kernel) is a
    /// [`ClientError::Foreign`].
    pub async fn verify(provider: &DynProvider, game: Address) -> Result<Self, ClientError> {
        let check = |contract: Contract, address: Address| async move {
            let code = provider
                .get_code_at(address)
                .await
                .map_err(|e| ClientError::Chain {
                    what: "read code",
                    source: Box::new(e.into()),
                })?;
            if contract.matches(&code) {
                Ok(())
            } else {
                Err(ClientError::Foreign(
                    ForeignCode { contract, address }.to_string(),
                ))
            }
        };
        check(Contract::DisputeGame, game).await?;
        let g = DisputeGame::new(game, provider.clone());
        let read = |what: &'static str| move |e| ClientError::from_call(what, e);
        let step = g
            .stepVerifier()
            .call()
            .await
            .map_err(read("read stepVerifier"))?;
        let node_vm = g.nodeVm().call().await.map_err(read("read nodeVm"))?;
        let registry = g.registry().call().await.map_err(read("read registry"))?;
        check(Contract::Step, step).await?;
        check(Contract::NodeVm, node_vm).await?;
        check(Contract::Registry, registry).await?;
        let r = Registry::new(registry, provider.clone());
        for (kind, root) in kernel_images() {
            let image = r
                .kernel(kind)
                .call()
                .await
                .map_err(read("read kernel image"))?;
            if image.memRoot != root || image.entry != KERNEL_BASE {
                return Err(ClientError::Foreign(format!(
                    "the Registry at {registry} holds kernel image {} (entry {:#x}) for op kind \
                     {kind}, not this build's {root}",
                    image.memRoot, image.entry
                )));
            }
        }
        Ok(Self {
            step,
            node_vm,
            registry,
            game,
        })
    }

    /// Who registered the model `commitment` in this deployment's Registry (the zero address when
    /// nobody did: requests for it are refused).
    pub async fn model_owner(
        &self,
        provider: &DynProvider,
        commitment: B256,
    ) -> Result<Address, ClientError> {
        let info = Registry::new(self.registry, provider.clone())
            .model(commitment)
            .call()
            .await
            .map_err(|e| ClientError::from_call("read model", e))?;
        Ok(info.owner)
    }

    /// Registers `model` (its files at `uri`) from `provider`'s signer; returns its commitment.
    pub async fn register_model(
        &self,
        provider: &DynProvider,
        model: &Model,
        uri: &str,
    ) -> Result<(TxOutcome, Hash), ClientError> {
        let model_error = |e: opml_dnn::ModelError| ClientError::Malformed(e.to_string());
        let spec = &model.manifest.input;
        let header = opml_dnn::tensor::header(spec.dtype, &spec.shape)
            .map_err(|e| ClientError::Malformed(e.to_string()))?;
        let leaves: Vec<B256> = model
            .node_leaves()
            .map_err(model_error)?
            .into_iter()
            .map(B256::from)
            .collect();
        let weights: Vec<B256> = model
            .weight_commitments()
            .map_err(model_error)?
            .into_iter()
            .map(B256::from)
            .collect();
        let registry = Registry::new(self.registry, provider.clone());
        let pending = registry
            .registerModel(Bytes::from(header), leaves, weights, uri.to_string())
            .send()
            .await
            .map_err(deploy_error("register model"))?;
        let receipt = pending
            .get_receipt()
            .await
            .map_err(|source| ClientError::Pending {
                what: "register model",
                source,
            })?;
        let event = receipt
            .inner
            .logs()
            .iter()
            .find_map(|log| {
                <Registry::ModelRegistered as alloy::sol_types::SolEvent>::decode_log_data(
                    log.data(),
                )
                .ok()
            })
            .ok_or_else(|| ClientError::Malformed("no ModelRegistered event".into()))?;
        Ok((
            TxOutcome {
                hash: receipt.transaction_hash,
                gas: receipt.gas_used,
            },
            event.model.0,
        ))
    }
}
