//! What the guard is asked to decide on, parsed from JSON into validated types once.
//!
//! Four shapes, told apart by their keys:
//! - a transaction request (`eth_sendTransaction`'s object: `from`, `to`, `value`, `data` or
//!   `input`, `gas`, `nonce`, `chainId`);
//! - a raw signed transaction (`{"raw": "0x02f8…"}`, or `rawTransaction`): decoded, its
//!   sender recovered from the signature;
//! - a Safe transaction, the Safe Transaction Service's JSON for a multisig transaction as it
//!   is (`safe`, `to`, `value`, `data`, `operation`, `safeTxGas`, `baseGas`, `gasPrice`,
//!   `gasToken`, `refundReceiver`, `nonce`, optional `confirmations`, `signatures`,
//!   `safeTxHash`); every other field of the service is accepted and not trusted;
//! - a withdrawal from a custodial hot wallet (`wallet`, `asset`, `amount`, `destination`).
//!
//! Every error names the field, the value and what was expected.

use alloy::consensus::transaction::SignerRecoverable;
use alloy::consensus::{Transaction as _, TxEnvelope};
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::safe::{Operation, SafeTx, SafeVersion};
use crate::units::{parse_u256, u256_from_json};

/// Largest request file or body accepted.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Largest calldata accepted (geth's transaction size limit is 128 KiB).
pub const MAX_DATA_BYTES: usize = 128 * 1024;
/// Most confirmations accepted on a Safe transaction.
pub const MAX_CONFIRMATIONS: usize = 64;

/// A request that does not parse. The message names the field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request is {0} bytes: the limit is {MAX_REQUEST_BYTES}")]
    TooLarge(usize),
    #[error("request is not JSON: {0}")]
    Json(String),
    #[error("request must be a JSON object, not {0}")]
    NotObject(&'static str),
    #[error(
        "cannot tell what kind of request this is: expected a transaction (from/to/data), a raw signed transaction (raw), a Safe transaction (safe, to, operation, nonce, ...) or a withdrawal (wallet, asset, amount, destination)"
    )]
    UnknownShape,
    #[error("field {field:?} is missing ({expected})")]
    Missing {
        field: &'static str,
        expected: &'static str,
    },
    #[error("field {field:?}: {value} is not {expected}")]
    Invalid {
        field: String,
        value: String,
        expected: String,
    },
    #[error("field {field:?} is not a field of a {shape} request")]
    UnknownField { field: String, shape: &'static str },
    /// JSON readers disagree on which of two equal keys counts (serde keeps the last, others
    /// the first): a request naming one address to Holdfast and another to a reviewer.
    #[error(
        "key {key:?} appears more than once in {}: a request must say each thing once",
        if .path.is_empty() { "the request".to_owned() } else { format!("{:?}", .path) }
    )]
    DuplicateKey { key: String, path: String },
}

/// Who asked, as the caller identifies them (an API token's subject, an e-mail, an address).
pub type Initiator = Option<String>;

/// A transaction to be signed by `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxRequest {
    pub chain_id: Option<u64>,
    pub from: Address,
    /// `None`: a contract creation.
    pub to: Option<Address>,
    pub value: U256,
    pub data: Bytes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gas: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<u64>,
    /// EIP-7702 delegations the transaction carries: `(authority, delegate)`; the authority's
    /// account gets the delegate's code.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub delegations: Vec<Delegation>,
    /// Set when the request came signed: its hash and type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed: Option<SignedTx>,
}

/// An EIP-7702 authorization in a signed transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delegation {
    /// Recovered from the authorization's signature; `None` if it does not recover.
    pub authority: Option<Address>,
    pub delegate: Address,
    pub chain_id: U256,
    pub nonce: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedTx {
    pub hash: B256,
    pub tx_type: u8,
}

/// One owner's confirmation as the Transaction Service lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confirmation {
    pub owner: Option<Address>,
    pub signature: Bytes,
}

/// A Safe multisig transaction awaiting (or collecting) owner signatures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SafeRequest {
    pub chain_id: Option<u64>,
    pub safe: Address,
    pub tx: SafeTx,
    /// The version the request claims (`--safe-version`, or the wallet's configuration);
    /// the node's `VERSION()` wins when there is one.
    pub version: Option<SafeVersion>,
    /// A safeTxHash supplied with the request: compared with Holdfast's own, never trusted.
    pub claimed_hash: Option<B256>,
    pub confirmations: Vec<Confirmation>,
    /// Packed signatures (`signatures`), if given.
    pub signatures: Option<Bytes>,
    /// The method name the service's `dataDecoded` shows to signers, if given: compared
    /// with Holdfast's decoding.
    pub shown_method: Option<String>,
    pub proposer: Option<Address>,
}

/// A withdrawal a custodial hot wallet is asked to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithdrawalRequest {
    pub chain_id: Option<u64>,
    pub id: Option<String>,
    /// The wallet's name in the policy, or its address.
    pub wallet: String,
    /// An asset symbol of the policy, `native`, or a token address.
    pub asset: String,
    /// In whole units of the asset (`"2500.5"`), exact.
    pub amount: String,
    pub destination: Address,
}

/// What the guard decides on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Request {
    Transaction(TxRequest),
    Safe(Box<SafeRequest>),
    Withdrawal(WithdrawalRequest),
}

/// A request with who asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Envelope {
    pub request: Request,
    pub initiator: Initiator,
}

impl Request {
    pub fn chain_id(&self) -> Option<u64> {
        match self {
            Request::Transaction(t) => t.chain_id,
            Request::Safe(s) => s.chain_id,
            Request::Withdrawal(w) => w.chain_id,
        }
    }

    /// Sets the chain of a request that names none (`guard check --chain-id`: the
    /// Transaction Service's JSON carries no chain id). A request that names another chain
    /// is an error: the caller's chain and the request's must agree.
    pub fn set_chain_id(&mut self, chain: u64) -> Result<(), RequestError> {
        let slot = match self {
            Request::Transaction(t) => &mut t.chain_id,
            Request::Safe(s) => &mut s.chain_id,
            Request::Withdrawal(w) => &mut w.chain_id,
        };
        match *slot {
            Some(c) if c != chain => Err(RequestError::Invalid {
                field: "chainId".into(),
                value: c.to_string(),
                expected: format!("chain {chain}, which --chain-id gives"),
            }),
            _ => {
                *slot = Some(chain);
                Ok(())
            }
        }
    }

    pub const fn kind_name(&self) -> &'static str {
        match self {
            Request::Transaction(t) if t.signed.is_some() => "signed transaction",
            Request::Transaction(_) => "transaction",
            Request::Safe(_) => "Safe transaction",
            Request::Withdrawal(_) => "withdrawal",
        }
    }
}

/// Parses a request from JSON bytes.
pub fn parse(bytes: &[u8]) -> Result<Envelope, RequestError> {
    from_value(&parse_json(bytes)?)
}

/// Reads a request's JSON: bounded, and with no key repeated in any object at any depth
/// (the error names the key and where).
pub fn parse_json(bytes: &[u8]) -> Result<Value, RequestError> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(RequestError::TooLarge(bytes.len()));
    }
    strict::parse(bytes)
}

/// Parses a request from a JSON value.
pub fn from_value(value: &Value) -> Result<Envelope, RequestError> {
    let obj = value
        .as_object()
        .ok_or(RequestError::NotObject(match value {
            Value::Array(_) => "an array",
            Value::String(_) => "a string",
            Value::Number(_) => "a number",
            Value::Bool(_) => "a boolean",
            Value::Null => "null",
            Value::Object(_) => "an object",
        }))?;
    let f = Fields(obj);
    let initiator = f.string("initiator")?;
    let request = if obj.contains_key("raw") || obj.contains_key("rawTransaction") {
        f.only(
            &["raw", "rawTransaction", "initiator", "chainId"],
            "raw transaction",
        )?;
        Request::Transaction(raw_tx(&f)?)
    } else if obj.contains_key("safe") {
        Request::Safe(Box::new(safe_tx(&f)?))
    } else if obj.contains_key("wallet") && obj.contains_key("destination") {
        f.only(
            &[
                "wallet",
                "asset",
                "amount",
                "destination",
                "chainId",
                "chain_id",
                "id",
                "requestId",
                "initiator",
            ],
            "withdrawal",
        )?;
        Request::Withdrawal(WithdrawalRequest {
            chain_id: f.chain_id()?,
            id: match f.string("id")? {
                Some(id) => Some(id),
                None => f.string("requestId")?,
            },
            wallet: f
                .required_string("wallet", "the wallet's name in the policy or its address")?,
            asset: f.required_string(
                "asset",
                "an asset symbol of the policy, native, or a token address",
            )?,
            amount: f.required_string("amount", "a decimal amount in whole units, as a string")?,
            destination: f.required_address("destination")?,
        })
    } else if obj.contains_key("from") || obj.contains_key("to") {
        f.only(
            &[
                "from",
                "to",
                "value",
                "data",
                "input",
                "gas",
                "gasLimit",
                "nonce",
                "chainId",
                "chain_id",
                "initiator",
                "gasPrice",
                "maxFeePerGas",
                "maxPriorityFeePerGas",
                "type",
                "accessList",
            ],
            "transaction",
        )?;
        let data = match (obj.get("data"), obj.get("input")) {
            (Some(_), Some(_)) if f.bytes("data")? != f.bytes("input")? => {
                return Err(RequestError::Invalid {
                    field: "input".into(),
                    value: "a value different from data".into(),
                    expected: "the same bytes as data, or only one of them".into(),
                });
            }
            (Some(_), _) => f.bytes("data")?,
            (None, Some(_)) => f.bytes("input")?,
            (None, None) => Bytes::new(),
        };
        Request::Transaction(TxRequest {
            chain_id: f.chain_id()?,
            from: f.required_address("from")?,
            to: f.address("to")?,
            value: f.u256("value")?.unwrap_or_default(),
            data,
            gas: match f.u64("gas")? {
                Some(g) => Some(g),
                None => f.u64("gasLimit")?,
            },
            nonce: f.u64("nonce")?,
            delegations: Vec::new(),
            signed: None,
        })
    } else {
        return Err(RequestError::UnknownShape);
    };
    Ok(Envelope { request, initiator })
}

fn raw_tx(f: &Fields<'_>) -> Result<TxRequest, RequestError> {
    let field = if f.0.contains_key("raw") {
        "raw"
    } else {
        "rawTransaction"
    };
    let raw = f.bytes(field)?;
    let invalid = |expected: String| RequestError::Invalid {
        field: field.into(),
        value: format!("{} bytes", raw.len()),
        expected,
    };
    let mut slice = raw.as_ref();
    let envelope = TxEnvelope::decode_2718(&mut slice)
        .map_err(|e| invalid(format!("an EIP-2718 signed transaction ({e})")))?;
    if !slice.is_empty() {
        return Err(invalid(format!(
            "one signed transaction ({} bytes follow it)",
            slice.len()
        )));
    }
    let from = envelope.recover_signer().map_err(|e| {
        invalid(format!(
            "a transaction whose signature recovers a sender ({e})"
        ))
    })?;
    let to = match envelope.kind() {
        TxKind::Call(a) => Some(a),
        TxKind::Create => None,
    };
    let delegations = envelope
        .authorization_list()
        .unwrap_or_default()
        .iter()
        .map(|a| Delegation {
            authority: a.recover_authority().ok(),
            delegate: a.address,
            chain_id: a.chain_id,
            nonce: a.nonce,
        })
        .collect();
    let chain_id = envelope.chain_id();
    if let Some(given) = f.chain_id()?
        && chain_id.is_some_and(|c| c != given)
    {
        return Err(RequestError::Invalid {
            field: "chainId".into(),
            value: given.to_string(),
            expected: format!(
                "the signed transaction's chain id {}",
                chain_id.unwrap_or_default()
            ),
        });
    }
    Ok(TxRequest {
        chain_id: chain_id.or(f.chain_id()?),
        from,
        to,
        value: envelope.value(),
        data: envelope.input().clone(),
        gas: Some(envelope.gas_limit()),
        nonce: Some(envelope.nonce()),
        delegations,
        signed: Some(SignedTx {
            hash: *envelope.tx_hash(),
            tx_type: envelope.tx_type() as u8,
        }),
    })
}

fn safe_tx(f: &Fields<'_>) -> Result<SafeRequest, RequestError> {
    let op = match f.0.get("operation") {
        None => {
            return Err(RequestError::Missing {
                field: "operation",
                expected: "0 (CALL) or 1 (DELEGATECALL)",
            });
        }
        Some(v) => {
            let n = u256_from_json(v).ok().and_then(|n| u8::try_from(n).ok());
            n.and_then(Operation::from_u8)
                .ok_or_else(|| RequestError::Invalid {
                    field: "operation".into(),
                    value: v.to_string(),
                    expected: "0 (CALL) or 1 (DELEGATECALL)".into(),
                })?
        }
    };
    let nonce = f.u256("nonce")?.ok_or(RequestError::Missing {
        field: "nonce",
        expected: "the Safe nonce the transaction is for",
    })?;
    let tx = SafeTx {
        to: f.required_address("to")?,
        value: f.u256("value")?.unwrap_or_default(),
        data: f.bytes_or_null("data")?,
        operation: op,
        safe_tx_gas: f.u256("safeTxGas")?.unwrap_or_default(),
        base_gas: match f.u256("baseGas")? {
            Some(g) => g,
            None => f.u256("dataGas")?.unwrap_or_default(),
        },
        gas_price: f.u256("gasPrice")?.unwrap_or_default(),
        gas_token: f.address("gasToken")?.unwrap_or_default(),
        refund_receiver: f.address("refundReceiver")?.unwrap_or_default(),
        nonce,
    };
    let mut confirmations = Vec::new();
    if let Some(list) = f.0.get("confirmations").filter(|v| !v.is_null()) {
        let list = list.as_array().ok_or_else(|| RequestError::Invalid {
            field: "confirmations".into(),
            value: short(list),
            expected: "an array of {owner, signature}".into(),
        })?;
        if list.len() > MAX_CONFIRMATIONS {
            return Err(RequestError::Invalid {
                field: "confirmations".into(),
                value: format!("{} entries", list.len()),
                expected: format!("at most {MAX_CONFIRMATIONS}"),
            });
        }
        for (i, c) in list.iter().enumerate() {
            let obj = c.as_object().ok_or_else(|| RequestError::Invalid {
                field: format!("confirmations[{i}]"),
                value: short(c),
                expected: "an object with owner and signature".into(),
            })?;
            let cf = Fields(obj);
            let sig = cf.bytes_named("signature", &format!("confirmations[{i}].signature"))?;
            if sig.is_empty() {
                continue;
            }
            confirmations.push(Confirmation {
                owner: cf.address_named("owner", &format!("confirmations[{i}].owner"))?,
                signature: sig,
            });
        }
    }
    let shown_method =
        f.0.get("dataDecoded")
            .and_then(|d| d.get("method"))
            .and_then(Value::as_str)
            .map(str::to_owned);
    let version =
        match f.string("version")? {
            Some(v) => Some(v.parse().map_err(|e: crate::safe::UnknownSafeVersion| {
                RequestError::Invalid {
                    field: "version".into(),
                    value: format!("{v:?}"),
                    expected: e.to_string(),
                }
            })?),
            None => None,
        };
    Ok(SafeRequest {
        chain_id: f.chain_id()?,
        safe: f.required_address("safe")?,
        tx,
        version,
        claimed_hash: f.b256("safeTxHash")?,
        confirmations,
        signatures: match f.0.get("signatures") {
            None | Some(Value::Null) => None,
            Some(_) => Some(f.bytes("signatures")?).filter(|b| !b.is_empty()),
        },
        shown_method,
        proposer: f.address("proposer")?,
    })
}

mod strict;

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}…", &s[..s.floor_char_boundary(80)])
    } else {
        s
    }
}

struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn invalid(&self, field: &str, expected: &str) -> RequestError {
        RequestError::Invalid {
            field: field.to_owned(),
            value: self.0.get(field).map(short).unwrap_or_default(),
            expected: expected.to_owned(),
        }
    }

    fn only(&self, allowed: &[&str], shape: &'static str) -> Result<(), RequestError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(RequestError::UnknownField {
                field: k.clone(),
                shape,
            }),
            None => Ok(()),
        }
    }

    fn string(&self, field: &str) -> Result<Option<String>, RequestError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.invalid(field, "a string")),
        }
    }

    fn required_string(
        &self,
        field: &'static str,
        expected: &'static str,
    ) -> Result<String, RequestError> {
        self.string(field)?
            .filter(|s| !s.trim().is_empty())
            .ok_or(RequestError::Missing { field, expected })
    }

    fn address(&self, field: &str) -> Result<Option<Address>, RequestError> {
        self.address_named(field, field)
    }

    fn address_named(&self, field: &str, name: &str) -> Result<Option<Address>, RequestError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => parse_address(s).map(Some).ok_or_else(|| {
                RequestError::Invalid {
                    field: name.to_owned(),
                    value: format!("{s:?}"),
                    expected: "a 20-byte hex address (0x + 40 hex digits; EIP-55 checksum checked when mixed-case)".into(),
                }
            }),
            Some(v) => Err(RequestError::Invalid {
                field: name.to_owned(),
                value: short(v),
                expected: "an address string".into(),
            }),
        }
    }

    fn required_address(&self, field: &'static str) -> Result<Address, RequestError> {
        self.address(field)?.ok_or(RequestError::Missing {
            field,
            expected: "a 20-byte hex address",
        })
    }

    fn b256(&self, field: &str) -> Result<Option<B256>, RequestError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => s
                .parse::<B256>()
                .ok()
                .filter(|_| s.len() == 66 && s.starts_with("0x"))
                .map(Some)
                .ok_or_else(|| self.invalid(field, "a 32-byte hash (0x + 64 hex digits)")),
            Some(_) => Err(self.invalid(field, "a 32-byte hash string")),
        }
    }

    fn bytes(&self, field: &str) -> Result<Bytes, RequestError> {
        self.bytes_named(field, field)
    }

    fn bytes_or_null(&self, field: &str) -> Result<Bytes, RequestError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(Bytes::new()),
            Some(_) => self.bytes(field),
        }
    }

    fn bytes_named(&self, field: &str, name: &str) -> Result<Bytes, RequestError> {
        let invalid = |value: String| RequestError::Invalid {
            field: name.to_owned(),
            value,
            expected: format!(
                "0x-prefixed hex bytes (an even number of digits, at most {MAX_DATA_BYTES} bytes)"
            ),
        };
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(Bytes::new()),
            Some(Value::String(s)) => {
                let hex = s
                    .strip_prefix("0x")
                    .ok_or_else(|| invalid(format!("{:?}", short_str(s))))?;
                if hex.len() / 2 > MAX_DATA_BYTES {
                    return Err(invalid(format!("{} bytes", hex.len() / 2)));
                }
                alloy::primitives::hex::decode(hex)
                    .map(Bytes::from)
                    .map_err(|_| invalid(format!("{:?}", short_str(s))))
            }
            Some(v) => Err(invalid(short(v))),
        }
    }

    fn u256(&self, field: &str) -> Result<Option<U256>, RequestError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => u256_from_json(v)
                .map(Some)
                .map_err(|e| self.invalid(field, e.expected)),
        }
    }

    fn u64(&self, field: &str) -> Result<Option<u64>, RequestError> {
        match self.u256(field)? {
            None => Ok(None),
            Some(n) => u64::try_from(n)
                .map(Some)
                .map_err(|_| self.invalid(field, "an integer below 2^64")),
        }
    }

    fn chain_id(&self) -> Result<Option<u64>, RequestError> {
        match self.u64("chainId")? {
            Some(c) => Ok(Some(c)),
            None => self.u64("chain_id"),
        }
    }
}

fn short_str(s: &str) -> &str {
    &s[..s.floor_char_boundary(80)]
}

/// A 20-byte hex address; a mixed-case address must carry a valid EIP-55 checksum (a typo in
/// a mixed-case address is caught, not silently accepted).
pub fn parse_address(s: &str) -> Option<Address> {
    let hex = s.strip_prefix("0x")?;
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let lower = hex.bytes().all(|b| !b.is_ascii_uppercase());
    let upper = hex.bytes().all(|b| !b.is_ascii_lowercase());
    if lower || upper {
        s.parse().ok()
    } else {
        Address::parse_checksummed(s, None).ok()
    }
}

/// Parses a 0x hex or decimal string as a U256 (for flags such as `--value`).
pub fn parse_integer(s: &str) -> Option<U256> {
    parse_u256(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Envelope, RequestError> {
        parse(s.as_bytes())
    }

    #[test]
    fn a_safe_transaction_service_json_parses_as_it_is() {
        // The shape of GET /api/v1/multisig-transactions/{safeTxHash}/ (fields trimmed).
        let json = r#"{
          "safe": "0x1Db92e2EeBC8E0c075a02BeA49a2935BcD2dFCF4",
          "to": "0x96221423681A6d52E184D440a8eFCEbB105C7242",
          "value": "0",
          "data": "0xa9059cbb000000000000000000000000bdd077f651ebe7f7b3ce16fe5f2b025be29695160000000000000000000000000000000000000000000000000000000000000000",
          "operation": 1,
          "gasToken": "0x0000000000000000000000000000000000000000",
          "safeTxGas": 45746,
          "baseGas": 0,
          "gasPrice": "0",
          "refundReceiver": "0x0000000000000000000000000000000000000000",
          "nonce": 71,
          "executionDate": null,
          "submissionDate": "2025-02-21T14:13:35.000Z",
          "safeTxHash": "0x46deef0f52e3a983b67abf4714448a41dd7ffd6d32d32da69d62081c68ad7882",
          "isExecuted": false,
          "dataDecoded": {"method": "transfer", "parameters": []},
          "confirmations": [{"owner": "0x0000000000000000000000000000000000000001", "signature": "0x", "signatureType": "EOA"}],
          "trusted": true,
          "signatures": null
        }"#;
        let env = parse_str(json).expect("parses");
        let Request::Safe(s) = env.request else {
            panic!("not a Safe request")
        };
        assert_eq!(s.tx.operation, Operation::DelegateCall);
        assert_eq!(s.tx.nonce, U256::from(71));
        assert_eq!(s.tx.safe_tx_gas, U256::from(45746));
        assert_eq!(s.shown_method.as_deref(), Some("transfer"));
        assert!(s.claimed_hash.is_some());
        assert!(s.confirmations.is_empty(), "empty signatures are skipped");
    }

    #[test]
    fn errors_name_the_field_and_the_value() {
        let e = parse_str(r#"{"from":"0x12","to":"0x0000000000000000000000000000000000000001"}"#)
            .unwrap_err();
        assert!(
            e.to_string().contains("\"from\"") && e.to_string().contains("0x12"),
            "{e}"
        );
        let e = parse_str(r#"{"from":"0x0000000000000000000000000000000000000001","value":"ten"}"#)
            .unwrap_err();
        assert!(
            e.to_string().contains("value") && e.to_string().contains("ten"),
            "{e}"
        );
        let e = parse_str(r#"{"from":"0x0000000000000000000000000000000000000001","vaule":"1"}"#)
            .unwrap_err();
        assert_eq!(
            e,
            RequestError::UnknownField {
                field: "vaule".into(),
                shape: "transaction"
            }
        );
        let e = parse_str(r#"{"safe":"0x0000000000000000000000000000000000000001","to":"0x0000000000000000000000000000000000000002","operation":2,"nonce":0}"#).unwrap_err();
        assert!(e.to_string().contains("operation"), "{e}");
        assert_eq!(
            parse_str("[1]").unwrap_err(),
            RequestError::NotObject("an array")
        );
        assert_eq!(parse_str("{}").unwrap_err(), RequestError::UnknownShape);
        // A bad EIP-55 checksum is a typo, not an address.
        let e = parse_str(r#"{"from":"0x098B716B8Aaf21512996dC57EB0615e2383E2f97"}"#).unwrap_err();
        assert!(e.to_string().contains("checksum"), "{e}");
        assert!(matches!(
            parse(&vec![b' '; MAX_REQUEST_BYTES + 1]),
            Err(RequestError::TooLarge(_))
        ));
    }

    /// Issue 13, item 12: `{"to": <Lazarus>, ..., "to": <exchange>}` was read last-wins, so
    /// Holdfast decided on the exchange while the stored body a reviewer reads names Lazarus.
    #[test]
    fn a_key_given_twice_is_refused_in_every_shape_and_at_every_depth() {
        const LAZARUS: &str = "0x098B716B8Aaf21512996dC57EB0615e2383E2f96";
        const EXCHANGE: &str = "0xF977814e90dA44bFA03b6295A0616a897441aceC";
        let dup = |json: &str, key: &str, path: &str| {
            let e = parse_str(json).expect_err(json);
            assert_eq!(
                e,
                RequestError::DuplicateKey {
                    key: key.into(),
                    path: path.into()
                },
                "{json}"
            );
            assert!(e.to_string().contains(key), "{e}");
        };
        dup(
            &format!(r#"{{"from":"{EXCHANGE}","to":"{LAZARUS}","value":"1","to":"{EXCHANGE}"}}"#),
            "to",
            "",
        );
        // The same key spelled with an escape is the same key.
        dup(
            &format!(r#"{{"from":"{EXCHANGE}","to":"{LAZARUS}","to":"{EXCHANGE}"}}"#),
            "to",
            "",
        );
        dup(r#"{"raw":"0x00","raw":"0x01"}"#, "raw", "");
        dup(
            &format!(
                r#"{{"wallet":"hot","asset":"ETH","amount":"1","destination":"{LAZARUS}","destination":"{EXCHANGE}"}}"#
            ),
            "destination",
            "",
        );
        let safe = |extra: &str| {
            format!(
                r#"{{"safe":"{EXCHANGE}","to":"{EXCHANGE}","value":"1","operation":0,"nonce":1{extra}}}"#
            )
        };
        dup(
            &safe(&format!(
                r#","refundReceiver":"{LAZARUS}","refundReceiver":"0x0000000000000000000000000000000000000000""#
            )),
            "refundReceiver",
            "",
        );
        dup(
            &safe(&format!(
                r#","confirmations":[{{"owner":"{EXCHANGE}","signature":"0x","owner":"{LAZARUS}"}}]"#
            )),
            "owner",
            "confirmations[0]",
        );
        dup(
            &safe(
                r#","dataDecoded":{"method":"transfer","parameters":[{"name":"to","value":"1","value":"2"}]}"#,
            ),
            "value",
            "dataDecoded.parameters[0]",
        );
        // Fields the guard ignores are held to it too: a reviewer reads them.
        dup(&safe(r#","origin":"a","origin":"b""#), "origin", "");
        assert!(parse_str(&safe("")).is_ok());
    }

    #[test]
    fn the_strict_reader_reads_what_serde_json_reads() {
        for json in [
            r#"{"a":[1,-2,3.5,18446744073709551615,1e400,true,null,"xé"],"b":{"c":{}},"d":[]}"#,
            r#"[{"a":1},{"a":1}]"#,
            "\"s\"",
            "12",
        ] {
            let ours = parse_json(json.as_bytes());
            let theirs = serde_json::from_str::<Value>(json);
            match (ours, theirs) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{json}"),
                (Err(RequestError::Json(_)), Err(_)) => {}
                (a, b) => panic!("{json}: {a:?} vs {b:?}"),
            }
        }
        assert!(matches!(
            parse_json(b"{\"a\":1} x"),
            Err(RequestError::Json(_))
        ));
    }

    #[test]
    fn a_raw_signed_transaction_is_decoded_and_its_sender_recovered() {
        use alloy::consensus::{SignableTransaction, TxEip1559};
        use alloy::eips::eip2718::Encodable2718;
        use alloy::signers::SignerSync;
        use alloy::signers::local::PrivateKeySigner;
        let signer = PrivateKeySigner::random();
        let tx = TxEip1559 {
            chain_id: 1,
            nonce: 7,
            gas_limit: 60_000,
            max_fee_per_gas: 1,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(Address::repeat_byte(0x22)),
            value: U256::from(5),
            access_list: Default::default(),
            input: Bytes::from_static(&[1, 2, 3]),
        };
        let sig = signer.sign_hash_sync(&tx.signature_hash()).expect("sign");
        let env: TxEnvelope = tx.into_signed(sig).into();
        let raw = alloy::primitives::hex::encode_prefixed(env.encoded_2718());
        let parsed = parse_str(&format!(r#"{{"raw":"{raw}"}}"#)).expect("parses");
        let Request::Transaction(t) = parsed.request else {
            panic!()
        };
        assert_eq!(t.from, signer.address());
        assert_eq!(t.nonce, Some(7));
        assert_eq!(t.chain_id, Some(1));
        assert_eq!(t.value, U256::from(5));
        assert_eq!(t.signed.as_ref().map(|s| s.tx_type), Some(2));
        let e = parse_str(r#"{"raw":"0x02f8"}"#).unwrap_err();
        assert!(e.to_string().contains("raw"), "{e}");
        let e = parse_str(&format!(r#"{{"raw":"{raw}","chainId":5}}"#)).unwrap_err();
        assert!(e.to_string().contains("chain id 1"), "{e}");
    }
}
