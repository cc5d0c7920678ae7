//! [`LabelRecord`]: one label as sources produce it and as imports persist it.

use holdfast_primitives::{Category, Chain, Confidence, Date};

/// One label on one address, with owned strings: the form in which every source yields its
/// labels, `intel import` persists them (JSON lines) and the API returns them. The index
/// interns these into a compact form ([`crate::index::Label`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelRecord {
    /// The address as the source gave it (original case kept).
    pub address: String,
    /// The chain the label is restricted to; `None` means every chain sharing the address
    /// format (e.g. every EVM chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<Chain>,
    /// Where the label comes from, e.g. `ofac-sdn`, `graphsense:lazarus2`.
    pub source: String,
    pub category: Category,
    pub confidence: Confidence,
    /// Actor identifier (GraphSense actor ids such as `lazarusgroup`, `binance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Human label: SDN entity name, exchange wallet name, incident name, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where to read more: URL, press release, dataset row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Sanctions programs (OFAC `DPRK3, CYBER2`), when the source is a sanctions list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// Identifier of the listed party in the source (OFAC SDN uid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// First day the label is known to apply (list date).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_on: Option<Date>,
    /// Day the label stopped applying (delisting date); it applies on days before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delisted_on: Option<Date>,
    /// The source gives this address only lower-cased although its format is
    /// case-sensitive (base58): it is matched case-insensitively, see docs/INTEL.md.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub case_folded: bool,
}

impl LabelRecord {
    /// A record with the required fields and nothing else.
    pub fn new(
        address: impl Into<String>,
        source: impl Into<String>,
        category: Category,
        confidence: Confidence,
    ) -> Self {
        LabelRecord {
            address: address.into(),
            chain: None,
            source: source.into(),
            category,
            confidence,
            actor: None,
            name: None,
            reference: None,
            program: None,
            uid: None,
            listed_on: None,
            delisted_on: None,
            case_folded: false,
        }
    }
}
