//! Placeholder: the verifier is being written.
use crate::Hash;
/// Verifier error.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Placeholder.
    #[error("not implemented")]
    Todo,
}
/// Verifies a step.
pub fn verify_step(_pre: &Hash, _witness: &[u8]) -> Result<Hash, VerifyError> {
    Err(VerifyError::Todo)
}
