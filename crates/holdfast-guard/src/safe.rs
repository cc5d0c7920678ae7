//! Safe transactions: the exact `safeTxHash` an owner signs, per Safe version, and what the
//! signatures attached to a request really are.
//!
//! The hash is EIP-712 over `SafeTx(...)` with the Safe's domain. Versions before 1.3.0 have
//! a domain without chain id (`EIP712Domain(address verifyingContract)`), so one signature is
//! valid for the same Safe address on every chain; 1.0.0 names `baseGas` `dataGas` (same
//! position, different type string, so a different hash).

use std::fmt;
use std::str::FromStr;

use alloy::primitives::{Address, B256, Bytes, Signature, U256, keccak256};
use alloy::sol_types::SolValue;
use serde::{Deserialize, Serialize};

/// A Safe contract version with a distinct transaction hash or storage semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum SafeVersion {
    #[serde(rename = "1.0.0")]
    V1_0_0,
    #[serde(rename = "1.1.1")]
    V1_1_1,
    #[serde(rename = "1.2.0")]
    V1_2_0,
    #[serde(rename = "1.3.0")]
    V1_3_0,
    #[serde(rename = "1.4.1")]
    V1_4_1,
    #[serde(rename = "1.5.0")]
    V1_5_0,
}

impl SafeVersion {
    pub const ALL: [SafeVersion; 6] = [
        SafeVersion::V1_0_0,
        SafeVersion::V1_1_1,
        SafeVersion::V1_2_0,
        SafeVersion::V1_3_0,
        SafeVersion::V1_4_1,
        SafeVersion::V1_5_0,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            SafeVersion::V1_0_0 => "1.0.0",
            SafeVersion::V1_1_1 => "1.1.1",
            SafeVersion::V1_2_0 => "1.2.0",
            SafeVersion::V1_3_0 => "1.3.0",
            SafeVersion::V1_4_1 => "1.4.1",
            SafeVersion::V1_5_0 => "1.5.0",
        }
    }

    /// Whether the EIP-712 domain includes the chain id (1.3.0 and later).
    pub const fn domain_has_chain_id(self) -> bool {
        matches!(
            self,
            SafeVersion::V1_3_0 | SafeVersion::V1_4_1 | SafeVersion::V1_5_0
        )
    }

    /// Whether `execTransaction` with `safeTxGas = 0` and `gasPrice = 0` reverts when the
    /// inner call fails (1.3.0 and later); before, the execution succeeds and only emits
    /// `ExecutionFailure`.
    pub const fn reverts_on_inner_failure(self) -> bool {
        self.domain_has_chain_id()
    }
}

impl fmt::Display for SafeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A Safe version string Holdfast does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Safe version {input:?}: expected one of 1.0.0, 1.1.1, 1.2.0, 1.3.0, 1.4.1, 1.5.0")]
pub struct UnknownSafeVersion {
    pub input: String,
}

impl FromStr for SafeVersion {
    type Err = UnknownSafeVersion;

    /// Accepts what `VERSION()` returns and what the Transaction Service reports: `1.3.0`,
    /// `1.3.0+L2`, `v1.4.1`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t.strip_prefix('v').unwrap_or(t);
        let t = t.split('+').next().unwrap_or(t);
        SafeVersion::ALL
            .into_iter()
            .find(|v| v.name() == t)
            .ok_or_else(|| UnknownSafeVersion {
                input: s.to_owned(),
            })
    }
}

/// `execTransaction`'s operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Call,
    DelegateCall,
}

impl Operation {
    pub const fn from_u8(v: u8) -> Option<Operation> {
        match v {
            0 => Some(Operation::Call),
            1 => Some(Operation::DelegateCall),
            _ => None,
        }
    }

    pub const fn as_u8(self) -> u8 {
        match self {
            Operation::Call => 0,
            Operation::DelegateCall => 1,
        }
    }
}

/// One Safe transaction, every field that its hash covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SafeTx {
    pub to: Address,
    pub value: U256,
    pub data: Bytes,
    pub operation: Operation,
    pub safe_tx_gas: U256,
    pub base_gas: U256,
    pub gas_price: U256,
    pub gas_token: Address,
    pub refund_receiver: Address,
    pub nonce: U256,
}

const DOMAIN_WITH_CHAIN: &str = "EIP712Domain(uint256 chainId,address verifyingContract)";
const DOMAIN_WITHOUT_CHAIN: &str = "EIP712Domain(address verifyingContract)";
const SAFE_TX: &str = "SafeTx(address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,uint256 baseGas,uint256 gasPrice,address gasToken,address refundReceiver,uint256 nonce)";
const SAFE_TX_1_0_0: &str = "SafeTx(address to,uint256 value,bytes data,uint8 operation,uint256 safeTxGas,uint256 dataGas,uint256 gasPrice,address gasToken,address refundReceiver,uint256 nonce)";

/// The Safe's EIP-712 domain separator.
pub fn domain_separator(version: SafeVersion, chain_id: u64, safe: Address) -> B256 {
    if version.domain_has_chain_id() {
        keccak256((keccak256(DOMAIN_WITH_CHAIN), U256::from(chain_id), safe).abi_encode())
    } else {
        keccak256((keccak256(DOMAIN_WITHOUT_CHAIN), safe).abi_encode())
    }
}

impl SafeTx {
    /// `keccak256` of the EIP-712 struct encoding (`encodeData` with the type hash).
    pub fn struct_hash(&self, version: SafeVersion) -> B256 {
        let type_hash = keccak256(if version == SafeVersion::V1_0_0 {
            SAFE_TX_1_0_0
        } else {
            SAFE_TX
        });
        let mut enc = Vec::with_capacity(11 * 32);
        enc.extend_from_slice(type_hash.as_slice());
        enc.extend_from_slice(&self.to.into_word().0);
        enc.extend_from_slice(&self.value.to_be_bytes::<32>());
        enc.extend_from_slice(keccak256(&self.data).as_slice());
        enc.extend_from_slice(&U256::from(self.operation.as_u8()).to_be_bytes::<32>());
        enc.extend_from_slice(&self.safe_tx_gas.to_be_bytes::<32>());
        enc.extend_from_slice(&self.base_gas.to_be_bytes::<32>());
        enc.extend_from_slice(&self.gas_price.to_be_bytes::<32>());
        enc.extend_from_slice(&self.gas_token.into_word().0);
        enc.extend_from_slice(&self.refund_receiver.into_word().0);
        enc.extend_from_slice(&self.nonce.to_be_bytes::<32>());
        keccak256(enc)
    }

    /// The hash owners sign: `keccak256(0x19 0x01 ‖ domainSeparator ‖ structHash)`.
    pub fn safe_tx_hash(&self, version: SafeVersion, chain_id: u64, safe: Address) -> B256 {
        let mut buf = [0u8; 66];
        buf[0] = 0x19;
        buf[1] = 0x01;
        buf[2..34].copy_from_slice(domain_separator(version, chain_id, safe).as_slice());
        buf[34..].copy_from_slice(self.struct_hash(version).as_slice());
        keccak256(buf)
    }
}

impl SafeTx {
    /// `execTransaction` of this transaction with `signatures`.
    pub fn exec_call(&self, signatures: Bytes) -> crate::abi::safe::execTransactionCall {
        crate::abi::safe::execTransactionCall {
            to: self.to,
            value: self.value,
            data: self.data.clone(),
            operation: self.operation.as_u8(),
            safeTxGas: self.safe_tx_gas,
            baseGas: self.base_gas,
            gasPrice: self.gas_price,
            gasToken: self.gas_token,
            refundReceiver: self.refund_receiver,
            signatures,
        }
    }

    /// The Safe's own `getTransactionHash` of this transaction.
    pub fn hash_call(&self) -> crate::abi::safe::getTransactionHashCall {
        crate::abi::safe::getTransactionHashCall {
            to: self.to,
            value: self.value,
            data: self.data.clone(),
            operation: self.operation.as_u8(),
            safeTxGas: self.safe_tx_gas,
            baseGas: self.base_gas,
            gasPrice: self.gas_price,
            gasToken: self.gas_token,
            refundReceiver: self.refund_receiver,
            _nonce: self.nonce,
        }
    }
}

/// The approved-hash signature form (`v = 1`) of `owners`, in the ascending order
/// `checkSignatures` requires.
pub fn approved_hash_signatures(owners: &[Address]) -> Bytes {
    let mut sorted = owners.to_vec();
    sorted.sort();
    let mut out = Vec::with_capacity(65 * sorted.len());
    for owner in &sorted {
        out.extend_from_slice(&owner.into_word().0);
        out.extend_from_slice(&[0u8; 32]);
        out.push(1);
    }
    out.into()
}

/// How one 65-byte Safe signature authorizes (by its `v`, as `checkSignatures` reads it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureKind {
    /// ECDSA over the safeTxHash (`v` 27 or 28).
    Ecdsa,
    /// ECDSA over the `eth_sign` prefixed hash (`v` 31 or 32).
    EthSign,
    /// `v = 1`: the owner in `r` approved the hash on chain (`approveHash`) or sends the
    /// execution; only the chain can confirm it.
    ApprovedHash,
    /// `v = 0`: an EIP-1271 contract signature by the owner in `r`; only the chain can
    /// check it.
    Contract,
}

/// Whether a signer owns the Safe, as far as Holdfast knows: never a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ownership {
    Owner,
    NotOwner,
    /// The owners are not known (no node, and the policy lists none).
    Unknown,
}

impl Ownership {
    /// `signer`'s ownership given the owners, if known.
    pub fn of(signer: Address, owners: Option<&[Address]>) -> Ownership {
        match owners {
            None => Ownership::Unknown,
            Some(o) if o.contains(&signer) => Ownership::Owner,
            Some(_) => Ownership::NotOwner,
        }
    }
}

/// Where a signature of a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "from", content = "index", rename_all = "snake_case")]
pub enum SignatureSource {
    /// `confirmations[i]`.
    Confirmation(usize),
    /// The `i`-th 65-byte part of the packed `signatures`.
    Packed(usize),
}

/// One signature of a request, checked against the hash Holdfast computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureCheck {
    pub source: SignatureSource,
    pub kind: SignatureKind,
    /// Who signed: recovered for ECDSA forms, read from `r` for the others.
    pub signer: Address,
    /// The owner the request says signed: a Transaction Service confirmation's `owner`,
    /// or for a packed signature the confirmation it matches (same bytes, or the same
    /// signer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claimed_owner: Option<Address>,
    /// For a packed signature, the confirmation it matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<usize>,
    pub ownership: Ownership,
    /// Whether this is a signature of the computed hash by an owner: ECDSA forms must
    /// recover to the claimed owner, who must not be known as a non-owner; with no claim,
    /// the signer must be an owner. `None` when that cannot be known here: forms only the
    /// chain can verify, or no claim and the owners unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid: Option<bool>,
}

impl SignatureCheck {
    /// What is wrong with it, in words that claim only what is known; `None` if nothing is.
    pub fn problem(&self) -> Option<String> {
        if self.valid != Some(false) {
            return None;
        }
        let whence = match self.source {
            SignatureSource::Confirmation(i) => format!("confirmation {i}"),
            SignatureSource::Packed(i) => format!("packed signature {i}"),
        };
        Some(match self.claimed_owner {
            Some(claimed) if claimed != self.signer => format!(
                "{whence} is said to be by {claimed} but recovers to {} over the computed hash: it is not {claimed}'s signature of this transaction",
                self.signer
            ),
            _ => format!(
                "{whence} is a signature of the computed hash by {}, who is not an owner of the Safe",
                self.signer
            ),
        })
    }
}

/// A signature blob that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("signatures are {0} bytes: expected a multiple of 65 (r, s, v per owner)")]
    Length(usize),
    #[error("signature {index}: v = {v} is not a Safe signature type (0, 1, 27, 28, 31 or 32)")]
    BadV { index: usize, v: u8 },
    #[error("signature {index}: ECDSA signature does not recover a signer")]
    Unrecoverable { index: usize },
}

/// Checks one 65-byte signature (r ‖ s ‖ v) of a Transaction Service confirmation.
pub fn check_signature(
    hash: B256,
    sig: &[u8],
    index: usize,
    claimed_owner: Option<Address>,
    owners: Option<&[Address]>,
) -> Result<SignatureCheck, SignatureError> {
    check_one(
        hash,
        sig,
        SignatureSource::Confirmation(index),
        claimed_owner,
        owners,
    )
}

fn check_one(
    hash: B256,
    sig: &[u8],
    source: SignatureSource,
    claimed_owner: Option<Address>,
    owners: Option<&[Address]>,
) -> Result<SignatureCheck, SignatureError> {
    let index = match source {
        SignatureSource::Confirmation(i) | SignatureSource::Packed(i) => i,
    };
    if sig.len() != 65 {
        return Err(SignatureError::Length(sig.len()));
    }
    let r = B256::from_slice(&sig[..32]);
    let s = B256::from_slice(&sig[32..64]);
    let v = sig[64];
    let owner_in_r = Address::from_word(r);
    let (kind, signer) = match v {
        0 => (SignatureKind::Contract, owner_in_r),
        1 => (SignatureKind::ApprovedHash, owner_in_r),
        27 | 28 => (SignatureKind::Ecdsa, recover(hash, r, s, v - 27, index)?),
        31 | 32 => {
            let prefixed = keccak256(
                [
                    b"\x19Ethereum Signed Message:\n32".as_slice(),
                    hash.as_slice(),
                ]
                .concat(),
            );
            (
                SignatureKind::EthSign,
                recover(prefixed, r, s, v - 31, index)?,
            )
        }
        v => return Err(SignatureError::BadV { index, v }),
    };
    let ownership = Ownership::of(signer, owners);
    let valid = match (kind, claimed_owner, ownership) {
        (_, _, Ownership::NotOwner) => Some(false),
        (SignatureKind::ApprovedHash | SignatureKind::Contract, _, _) => None,
        (_, Some(c), _) if c != signer => Some(false),
        (_, Some(_), Ownership::Owner) | (_, None, Ownership::Owner) => Some(true),
        // It recovers to the owner the request names, whose ownership is not known here.
        (_, Some(_), Ownership::Unknown) => Some(true),
        (_, None, Ownership::Unknown) => None,
    };
    Ok(SignatureCheck {
        source,
        kind,
        signer,
        claimed_owner,
        confirmation: None,
        ownership,
        valid,
    })
}

/// Splits a packed signature blob (as `execTransaction` takes it) and checks each part,
/// matched to the request's confirmations (`(owner, signature)`): a part with the same bytes
/// as a confirmation, or else recovering to a confirmation's owner, is claimed by that
/// owner. Dynamic parts of contract signatures (after the 65-byte slots) are not read.
pub fn check_signatures(
    hash: B256,
    blob: &[u8],
    owners: Option<&[Address]>,
    confirmations: &[(Option<Address>, &[u8])],
) -> Result<Vec<SignatureCheck>, SignatureError> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut contract_data_from = blob.len();
    while i * 65 + 65 <= blob.len().min(contract_data_from) {
        let sig = &blob[i * 65..i * 65 + 65];
        if sig[64] == 0 {
            // A contract signature's `s` is the offset of its dynamic part: the 65-byte slots
            // end where the first dynamic part begins.
            let offset = U256::from_be_slice(&sig[32..64]);
            if let Ok(o) = usize::try_from(offset) {
                contract_data_from = contract_data_from.min(o);
            }
        }
        let mut chk = check_one(hash, sig, SignatureSource::Packed(i), None, owners)?;
        let matched = confirmations
            .iter()
            .position(|(_, c)| *c == sig)
            .or_else(|| {
                confirmations
                    .iter()
                    .position(|(o, _)| *o == Some(chk.signer))
            });
        if let Some(m) = matched {
            let claimed = confirmations[m].0.unwrap_or(chk.signer);
            chk = check_one(hash, sig, SignatureSource::Packed(i), Some(claimed), owners)?;
            chk.confirmation = Some(m);
        }
        out.push(chk);
        i += 1;
    }
    if out.is_empty() || (contract_data_from == blob.len() && !blob.len().is_multiple_of(65)) {
        return Err(SignatureError::Length(blob.len()));
    }
    Ok(out)
}

fn recover(
    hash: B256,
    r: B256,
    s: B256,
    parity: u8,
    index: usize,
) -> Result<Address, SignatureError> {
    let sig = Signature::new(r.into(), s.into(), parity == 1);
    sig.recover_address_from_prehash(&hash)
        .map_err(|_| SignatureError::Unrecoverable { index })
}

/// Well-known storage slots of a Safe.
pub mod slots {
    use alloy::primitives::{B256, b256};

    /// Slot 0: the singleton (`masterCopy`) the proxy delegates to. The Bybit takeover
    /// overwrote it.
    pub const SINGLETON: B256 = B256::ZERO;
    pub const MODULES_MAPPING: u64 = 1;
    pub const OWNERS_MAPPING: u64 = 2;
    pub const OWNER_COUNT: u64 = 3;
    pub const THRESHOLD: u64 = 4;
    pub const NONCE: u64 = 5;
    pub const APPROVED_HASHES_MAPPING: u64 = 8;
    /// `keccak256("guard_manager.guard.address")` (1.3.0 and later).
    pub const GUARD: B256 =
        b256!("0x4a204f620c8c5ccdca3fd54d003badd85ba500436a431f0cbda4f558c93c34c8");
    /// `keccak256("fallback_manager.handler.address")` (1.1.0 and later).
    pub const FALLBACK_HANDLER: B256 =
        b256!("0x6c9a6c4a39284e37ed1cf53d337577d14212a4870fb976a4366c693b939918d5");
    /// `keccak256("module_manager.module_guard.address")` (1.5.0).
    pub const MODULE_GUARD: B256 =
        b256!("0xb104e0b93118902c651344349b610029d694cfdec91c589c91ebafbcd0289947");
}

/// EIP-1967 proxy slots (`keccak256("eip1967.proxy.<name>") - 1`).
pub mod eip1967 {
    use alloy::primitives::{B256, b256};

    pub const IMPLEMENTATION: B256 =
        b256!("0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc");
    pub const ADMIN: B256 =
        b256!("0xb53127684a568b3173ae13b9f8a6016e243e63b6e8ee1178d6a717850b5d6103");
    pub const BEACON: B256 =
        b256!("0xa3f0ad74e5423aebfd80d3ef4346578335a9a72aeaee59ff6cb3582b35133d50");
}

/// The storage slot of `mapping(address => ...)` at `base` for `key`.
pub fn mapping_slot(key: Address, base: u64) -> B256 {
    keccak256((key, U256::from(base)).abi_encode())
}

/// The storage slot of `approvedHashes[owner][hash]`.
pub fn approved_hash_slot(owner: Address, hash: B256) -> B256 {
    let inner = mapping_slot(owner, slots::APPROVED_HASHES_MAPPING);
    keccak256((hash, inner).abi_encode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    #[test]
    fn slot_constants_are_the_hashes_they_claim() {
        assert_eq!(
            keccak256("guard_manager.guard.address"),
            slots::GUARD,
            "guard slot"
        );
        assert_eq!(
            keccak256("fallback_manager.handler.address"),
            slots::FALLBACK_HANDLER
        );
        assert_eq!(
            keccak256("module_manager.module_guard.address"),
            slots::MODULE_GUARD
        );
        for (name, slot) in [
            ("eip1967.proxy.implementation", eip1967::IMPLEMENTATION),
            ("eip1967.proxy.admin", eip1967::ADMIN),
            ("eip1967.proxy.beacon", eip1967::BEACON),
        ] {
            let h = U256::from_be_bytes(keccak256(name).0) - U256::from(1);
            assert_eq!(B256::from(h), slot, "{name}");
        }
    }

    #[test]
    fn versions_parse_from_what_contracts_and_services_say() {
        assert_eq!("1.3.0+L2".parse(), Ok(SafeVersion::V1_3_0));
        assert_eq!("v1.4.1".parse(), Ok(SafeVersion::V1_4_1));
        assert_eq!("1.1.1".parse(), Ok(SafeVersion::V1_1_1));
        let e = "1.6.0".parse::<SafeVersion>().unwrap_err();
        assert!(e.to_string().contains("1.6.0"), "{e}");
    }

    #[test]
    fn domains_differ_by_version_and_chain() {
        let safe = address!("0x1db92e2eebc8e0c075a02bea49a2935bcd2dfcf4");
        let old1 = domain_separator(SafeVersion::V1_1_1, 1, safe);
        let old10 = domain_separator(SafeVersion::V1_1_1, 10, safe);
        assert_eq!(old1, old10, "1.1.1's domain has no chain id");
        assert_ne!(
            domain_separator(SafeVersion::V1_3_0, 1, safe),
            domain_separator(SafeVersion::V1_3_0, 10, safe)
        );
    }

    /// Issue 13, item 5: offline, with the owners unknown, a packed signature was "not by an
    /// owner" although it recovers to exactly the owner its confirmation names.
    #[test]
    fn ownership_is_three_valued_and_packed_signatures_match_their_confirmations() {
        use alloy::signers::SignerSync;
        use alloy::signers::local::PrivateKeySigner;
        let hash = B256::repeat_byte(0x42);
        let (a, b, c) = (
            PrivateKeySigner::random(),
            PrivateKeySigner::random(),
            PrivateKeySigner::random(),
        );
        let sig = |k: &PrivateKeySigner| k.sign_hash_sync(&hash).expect("sign").as_bytes();
        let (sa, sb, sc) = (sig(&a), sig(&b), sig(&c));
        let blob: Vec<u8> = [sa, sb, sc].concat();
        let confirmations: Vec<(Option<Address>, &[u8])> =
            vec![(Some(a.address()), &sa[..]), (Some(b.address()), &sb[..])];

        // Owners unknown: matched parts are valid (they recover to the owner named), the
        // unmatched one is unknown, and nothing is a problem.
        let checks = check_signatures(hash, &blob, None, &confirmations).expect("parses");
        assert_eq!(checks.len(), 3);
        for (i, chk) in checks.iter().enumerate() {
            assert_eq!(chk.source, SignatureSource::Packed(i));
            assert_eq!(chk.ownership, Ownership::Unknown);
            assert_eq!(chk.problem(), None, "{chk:?}");
        }
        assert_eq!(checks[0].confirmation, Some(0));
        assert_eq!(checks[1].claimed_owner, Some(b.address()));
        assert_eq!(checks[0].valid, Some(true));
        assert_eq!((checks[2].confirmation, checks[2].valid), (None, None));

        // Owners known: owners are valid, a non-owner is named as one.
        let owners = [a.address(), b.address()];
        let checks = check_signatures(hash, &blob, Some(&owners), &confirmations).expect("parses");
        assert_eq!(checks[0].ownership, Ownership::Owner);
        assert_eq!(checks[0].valid, Some(true));
        assert_eq!(checks[2].ownership, Ownership::NotOwner);
        let p = checks[2].problem().expect("a problem");
        assert!(
            p.contains(&c.address().to_string()) && p.contains("not an owner"),
            "{p}"
        );

        // A confirmation naming another owner than its signature's signer.
        let forged = check_signature(hash, &sc, 0, Some(a.address()), None).expect("parses");
        assert_eq!(forged.valid, Some(false));
        let p = forged.problem().expect("a problem");
        assert!(
            p.contains("is said to be by") && !p.contains("not an owner"),
            "{p}"
        );
    }

    #[test]
    fn approved_hash_signatures_name_their_owner_and_bad_blobs_are_errors() {
        let owner = address!("0x00000000000000000000000000000000000000aa");
        let mut blob = owner.into_word().to_vec();
        blob.extend([0u8; 32]);
        blob.push(1);
        let checks = check_signatures(B256::ZERO, &blob, Some(&[owner]), &[]).expect("parses");
        assert_eq!(checks[0].kind, SignatureKind::ApprovedHash);
        assert_eq!(checks[0].signer, owner);
        assert_eq!(checks[0].valid, None);
        assert!(matches!(
            check_signatures(B256::ZERO, &blob[..64], None, &[]),
            Err(SignatureError::Length(64))
        ));
        blob[64] = 5;
        assert!(matches!(
            check_signatures(B256::ZERO, &blob, None, &[]),
            Err(SignatureError::BadV { index: 0, v: 5 })
        ));
    }
}
