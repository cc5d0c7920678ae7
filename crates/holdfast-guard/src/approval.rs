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

/// What an approval must match to count. One rule for every place that counts approvals:
/// the engine's quorum, the guard service's approve and unfreeze, and the approvals it
/// shows as counted.
#[derive(Debug, Clone, Copy)]
pub struct Quorum<'a> {
    pub action: ApprovalAction,
    /// The request (or freeze) it must name; `None` where the caller binds no id (the
    /// engine, which sees only the payload).
    pub request_id: Option<B256>,
    pub payload_hash: B256,
    /// `None`: a request whose chain is unknown (offline checks).
    pub chain_id: Option<u64>,
    pub group: &'a str,
    pub members: &'a [Address],
    /// Never counts for the request it initiated.
    pub initiator: Option<Address>,
    pub now: u64,
}

/// Why an approval does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotCounted {
    #[error("its action is {got:?}, not {want:?}")]
    Action {
        got: &'static str,
        want: &'static str,
    },
    #[error("it is for {got}, not {want}")]
    Request { got: B256, want: B256 },
    #[error(
        "it approves payload {got}, but this request's payload is {want} (an approval for one payload never counts for another)"
    )]
    Payload { got: B256, want: B256 },
    #[error("it is for chain {got}, the request for chain {want}")]
    Chain { got: u64, want: u64 },
    #[error("{approver} is not a member of group {group:?}")]
    NotMember { approver: Address, group: String },
    #[error("{approver} initiated this request and cannot approve it")]
    Initiator { approver: Address },
    #[error("it expired at {deadline} (now {now})")]
    Expired { deadline: u64, now: u64 },
}

/// Whether `a` counts for `q`, and if not, why.
pub fn counts_for(a: &VerifiedApproval, q: &Quorum<'_>) -> Result<(), NotCounted> {
    if a.action != q.action {
        return Err(NotCounted::Action {
            got: a.action.name(),
            want: q.action.name(),
        });
    }
    if let Some(want) = q.request_id
        && a.request_id != want
    {
        return Err(NotCounted::Request {
            got: a.request_id,
            want,
        });
    }
    if a.payload_hash != q.payload_hash {
        return Err(NotCounted::Payload {
            got: a.payload_hash,
            want: q.payload_hash,
        });
    }
    if let Some(want) = q.chain_id
        && a.chain_id != want
    {
        return Err(NotCounted::Chain {
            got: a.chain_id,
            want,
        });
    }
    if q.now > a.deadline {
        return Err(NotCounted::Expired {
            deadline: a.deadline,
            now: q.now,
        });
    }
    if !q.members.contains(&a.approver) {
        return Err(NotCounted::NotMember {
            approver: a.approver,
            group: q.group.to_owned(),
        });
    }
    if q.initiator == Some(a.approver) {
        return Err(NotCounted::Initiator {
            approver: a.approver,
        });
    }
    Ok(())
}

/// The distinct approvers whose approvals count for `q`, sorted.
pub fn counted(approvals: &[VerifiedApproval], q: &Quorum<'_>) -> Vec<Address> {
    let mut have: Vec<Address> = approvals
        .iter()
        .filter(|a| counts_for(a, q).is_ok())
        .map(|a| a.approver)
        .collect();
    have.sort();
    have.dedup();
    have
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::signers::local::PrivateKeySigner;

    #[test]
    fn counts_for_is_the_one_rule() {
        let members = [Address::repeat_byte(1), Address::repeat_byte(2)];
        let q = Quorum {
            action: ApprovalAction::Approve,
            request_id: Some(B256::repeat_byte(9)),
            payload_hash: B256::repeat_byte(7),
            chain_id: Some(1),
            group: "ops",
            members: &members,
            initiator: Some(Address::repeat_byte(2)),
            now: 100,
        };
        let ok = VerifiedApproval {
            approver: Address::repeat_byte(1),
            request_id: B256::repeat_byte(9),
            payload_hash: B256::repeat_byte(7),
            chain_id: 1,
            action: ApprovalAction::Approve,
            deadline: 100,
        };
        assert_eq!(counts_for(&ok, &q), Ok(()));
        let not = |f: &dyn Fn(&mut VerifiedApproval)| {
            let mut a = ok.clone();
            f(&mut a);
            counts_for(&a, &q).expect_err("does not count")
        };
        assert!(matches!(
            not(&|a| a.action = ApprovalAction::Unfreeze),
            NotCounted::Action { .. }
        ));
        assert!(matches!(
            not(&|a| a.request_id = B256::ZERO),
            NotCounted::Request { .. }
        ));
        assert!(matches!(
            not(&|a| a.payload_hash = B256::ZERO),
            NotCounted::Payload { .. }
        ));
        assert!(matches!(not(&|a| a.chain_id = 5), NotCounted::Chain { .. }));
        assert!(matches!(
            not(&|a| a.deadline = 99),
            NotCounted::Expired { .. }
        ));
        assert!(matches!(
            not(&|a| a.approver = Address::repeat_byte(3)),
            NotCounted::NotMember { .. }
        ));
        assert!(matches!(
            not(&|a| a.approver = Address::repeat_byte(2)),
            NotCounted::Initiator { .. }
        ));
        let twice = [ok.clone(), ok.clone()];
        assert_eq!(counted(&twice, &q), vec![ok.approver], "once per approver");
    }

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
