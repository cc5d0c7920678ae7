//! Approvals are signatures, not clicks: an approver signs EIP-712 typed data that binds the
//! request, the exact payload hash, the chain and the action, with their own Ethereum key
//! (hardware wallets sign EIP-712). An approval counts only for the payload it names.
//!
//! Domain `{name: "Holdfast", version: "1", chainId}`; type
//! `Approval(bytes32 requestId,bytes32 payloadHash,uint256 chainId,string action,uint64 deadline)`.

use alloy::primitives::{Address, B256, Bytes, Signature, U256};
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};
use serde::{Deserialize, Serialize};

mod typed {
    alloy::sol! {
        struct Approval {
            bytes32 requestId;
            bytes32 payloadHash;
            uint256 chainId;
            string action;
            uint64 deadline;
        }
    }
}

/// What an approval is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalAction {
    /// Release the request for signing.
    Approve,
    /// Lift an emergency freeze (the guard service).
    Unfreeze,
}

impl ApprovalAction {
    pub const fn name(self) -> &'static str {
        match self {
            ApprovalAction::Approve => "approve",
            ApprovalAction::Unfreeze => "unfreeze",
        }
    }
}

/// An approval as submitted: the typed data's fields and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedApproval {
    pub request_id: B256,
    pub payload_hash: B256,
    pub chain_id: u64,
    pub action: ApprovalAction,
    /// Unix seconds after which the approval no longer counts.
    pub deadline: u64,
    /// 65 bytes r ‖ s ‖ v.
    pub signature: Bytes,
}

/// An approval whose signature checked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedApproval {
    pub approver: Address,
    pub request_id: B256,
    pub payload_hash: B256,
    pub chain_id: u64,
    pub action: ApprovalAction,
    pub deadline: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    #[error("approval signature is {0} bytes: expected 65 (r, s, v)")]
    Length(usize),
    #[error("approval signature does not recover a signer")]
    Unrecoverable,
    #[error("approval expired at {deadline} (now {now})")]
    Expired { deadline: u64, now: u64 },
}

/// The EIP-712 domain of Holdfast approvals on `chain_id`.
pub fn domain(chain_id: u64) -> Eip712Domain {
    eip712_domain! {
        name: "Holdfast",
        version: "1",
        chain_id: chain_id,
    }
}

/// The hash an approver signs.
pub fn signing_hash(
    request_id: B256,
    payload_hash: B256,
    chain_id: u64,
    action: ApprovalAction,
    deadline: u64,
) -> B256 {
    typed::Approval {
        requestId: request_id,
        payloadHash: payload_hash,
        chainId: U256::from(chain_id),
        action: action.name().to_owned(),
        deadline,
    }
    .eip712_signing_hash(&domain(chain_id))
}

impl SignedApproval {
    /// Recovers the approver; an expired approval is an error.
    pub fn verify(&self, now: u64) -> Result<VerifiedApproval, ApprovalError> {
        if self.signature.len() != 65 {
            return Err(ApprovalError::Length(self.signature.len()));
        }
        if now > self.deadline {
            return Err(ApprovalError::Expired {
                deadline: self.deadline,
                now,
            });
        }
        let sig = Signature::try_from(self.signature.as_ref())
            .map_err(|_| ApprovalError::Unrecoverable)?;
        let hash = signing_hash(
            self.request_id,
            self.payload_hash,
            self.chain_id,
            self.action,
            self.deadline,
        );
        let approver = sig
            .recover_address_from_prehash(&hash)
            .map_err(|_| ApprovalError::Unrecoverable)?;
        Ok(VerifiedApproval {
            approver,
            request_id: self.request_id,
            payload_hash: self.payload_hash,
            chain_id: self.chain_id,
            action: self.action,
            deadline: self.deadline,
        })
    }

    /// Signs an approval with a local key (tests, the demo, `holdfast guard approve`).
    pub fn sign(
        signer: &alloy::signers::local::PrivateKeySigner,
        request_id: B256,
        payload_hash: B256,
        chain_id: u64,
        action: ApprovalAction,
        deadline: u64,
    ) -> Result<SignedApproval, alloy::signers::Error> {
        use alloy::signers::SignerSync;
        let hash = signing_hash(request_id, payload_hash, chain_id, action, deadline);
        let sig = signer.sign_hash_sync(&hash)?;
        Ok(SignedApproval {
            request_id,
            payload_hash,
            chain_id,
            action,
            deadline,
            signature: sig.as_bytes().to_vec().into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;

    #[test]
    fn an_approval_recovers_its_signer_and_binds_its_fields() {
        let key = PrivateKeySigner::random();
        let payload = B256::repeat_byte(7);
        let a = SignedApproval::sign(&key, payload, payload, 1, ApprovalAction::Approve, 100)
            .expect("signs");
        let v = a.verify(50).expect("verifies");
        assert_eq!(v.approver, key.address());
        // Changing any bound field changes who it recovers to.
        let mut other = a.clone();
        other.payload_hash = B256::repeat_byte(8);
        assert_ne!(other.verify(50).map(|v| v.approver), Ok(key.address()));
        let mut other = a.clone();
        other.chain_id = 5;
        assert_ne!(other.verify(50).map(|v| v.approver), Ok(key.address()));
        assert_eq!(
            a.verify(101),
            Err(ApprovalError::Expired {
                deadline: 100,
                now: 101
            })
        );
        let mut short = a;
        short.signature = Bytes::from_static(&[1, 2]);
        assert_eq!(short.verify(0), Err(ApprovalError::Length(2)));
    }
}
