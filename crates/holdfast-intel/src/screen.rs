//! Screening: an address in, a [`Verdict`] out — risk level, every matching label, and why.

use holdfast_primitives::{Category, Chain, Confidence, Date, RiskLevel};

use crate::address::{self, AddressError, AddressFormat, AddressKey};
use crate::index::{IntelIndex, Label, applies_to};

/// What a screening is asked about besides the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScreenOptions {
    /// Restrict to labels that apply on this chain (and validate the address for it).
    pub chain: Option<Chain>,
    /// Judge list membership on this day (defaults to today).
    pub as_of: Date,
}

impl ScreenOptions {
    pub fn today() -> Self {
        ScreenOptions {
            chain: None,
            as_of: Date::today(),
        }
    }
}

/// One label as a screening returns it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LabelView {
    pub source: String,
    pub category: Category,
    pub confidence: Confidence,
    /// Risk this label carries on its own.
    pub risk: RiskLevel,
    /// Whether it applies on the `as_of` day (a delisted sanction does not).
    pub active: bool,
    /// Chains the label applies to.
    pub chains: Vec<Chain>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listed_on: Option<Date>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delisted_on: Option<Date>,
    /// Matched case-insensitively because the source gives the address only lower-cased.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub case_folded: bool,
}

/// The result of screening one address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    /// The input as given.
    pub input: String,
    /// The address in canonical form (EIP-55 for EVM).
    pub address: String,
    pub format: AddressFormat,
    /// Chains the address is valid on (or the one asked for).
    pub chains: Vec<Chain>,
    pub risk: RiskLevel,
    pub as_of: Date,
    /// Every label found, the most severe first; inactive ones are listed but not counted.
    pub labels: Vec<LabelView>,
    /// Plain-words reasons for the risk level.
    pub reasons: Vec<String>,
    /// For a Bitcoin or Litecoin address screened with [`IntelIndex::screen_clustered`]: its
    /// cluster in the UTXO index and the labels its members carry (inferred, never one of
    /// `labels`), or why there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<crate::cluster::ClusterScreen>,
}

impl IntelIndex {
    /// Parses and screens one address.
    pub fn screen(&self, input: &str, options: &ScreenOptions) -> Result<Verdict, AddressError> {
        let parsed = address::parse(input, options.chain)?;
        Ok(self.verdict(
            input.to_owned(),
            &parsed.key,
            parsed.display,
            parsed.format,
            parsed.chains.iter().collect(),
            options,
        ))
    }

    /// Screens an EVM address that is already parsed (the guard's counterparties).
    pub fn screen_evm(
        &self,
        address: &alloy_primitives::Address,
        options: &ScreenOptions,
    ) -> Verdict {
        let display = address.to_checksum(None);
        let chains = match options.chain {
            Some(c) => vec![c],
            None => Chain::ALL.into_iter().filter(|c| c.is_evm()).collect(),
        };
        self.verdict(
            display.clone(),
            &AddressKey::Evm(*address),
            display,
            AddressFormat::Evm,
            chains,
            options,
        )
    }

    fn verdict(
        &self,
        input: String,
        key: &AddressKey,
        display: String,
        format: AddressFormat,
        chains: Vec<Chain>,
        options: &ScreenOptions,
    ) -> Verdict {
        let exact = self.labels(key);
        let folded = self.folded_labels(key);
        let mut labels = Vec::with_capacity(exact.len() + folded.len());
        let mut risk = RiskLevel::None;
        let mut reasons = Vec::new();
        for label in exact.iter().chain(folded) {
            if !applies_to(label.chains, options.chain) {
                continue;
            }
            let view = self.view(label, options.as_of);
            if view.active {
                risk = risk.max(view.risk);
            }
            reasons.push(self.reason(label, &view));
            labels.push(view);
        }
        if labels.is_empty() {
            reasons.push(format!(
                "no label for this address in Holdfast's intel (as of {})",
                options.as_of
            ));
        }
        Verdict {
            input,
            address: display,
            format,
            chains,
            risk,
            as_of: options.as_of,
            labels,
            reasons,
            cluster: None,
        }
    }

    /// Whether the address has any active label at `level` or above (the hot path for
    /// bulk screening: no allocation for EVM addresses).
    pub fn risk_of_key(&self, key: &AddressKey, chain: Option<Chain>, as_of: Date) -> RiskLevel {
        self.labels(key)
            .iter()
            .chain(self.folded_labels(key))
            .filter(|l| applies_to(l.chains, chain) && l.active_on(as_of))
            .map(Label::risk)
            .max()
            .unwrap_or_default()
    }

    pub(crate) fn view(&self, label: &Label, as_of: Date) -> LabelView {
        let own = |s: Option<&str>| s.map(str::to_owned);
        LabelView {
            source: self.source(label).to_owned(),
            category: label.category,
            confidence: label.confidence,
            risk: label.risk(),
            active: label.active_on(as_of),
            chains: label.chains.iter().collect(),
            actor: own(self.actor(label)),
            name: own(self.name(label)),
            program: own(self.program(label)),
            uid: own(self.uid(label)),
            reference: own(self.reference(label)),
            listed_on: label.listed_on,
            delisted_on: label.delisted_on,
            case_folded: label.case_folded,
        }
    }

    fn reason(&self, label: &Label, view: &LabelView) -> String {
        let mut s = String::new();
        let what = describe(label.category);
        if view.active {
            s.push_str(&format!("{}: {what} per {}", view.risk, view.source));
        } else {
            s.push_str(&format!("not counted: was {what} per {}", view.source));
        }
        if let Some(name) = &view.name {
            s.push_str(&format!(" ({name})"));
        }
        if let Some(p) = &view.program {
            s.push_str(&format!(", program {p}"));
        }
        if let Some(u) = &view.uid {
            s.push_str(&format!(", uid {u}"));
        }
        if let Some(d) = view.listed_on {
            s.push_str(&format!(", listed {d}"));
        }
        if let Some(d) = view.delisted_on {
            s.push_str(&format!(", delisted {d}"));
        }
        if label.category.base_risk() > view.risk {
            s.push_str(&format!(
                ", capped at {} because source confidence {} is below {}",
                view.risk,
                view.confidence,
                Confidence::SEVERE_FLOOR
            ));
        }
        if view.case_folded {
            s.push_str(", matched case-insensitively (source lists it lower-cased)");
        }
        s
    }
}

/// What a label of `category` says an address is, in words.
pub(crate) fn describe(category: Category) -> &'static str {
    match category {
        Category::Sanctioned => "sanctioned",
        Category::DprkAttributed => "attributed to the DPRK",
        Category::Hack => "a hack or theft address",
        Category::Phishing => "a phishing address",
        Category::Scam => "a scam address",
        Category::Ransomware => "a ransomware address",
        Category::Darknet => "a darknet market address",
        Category::Mixer => "a mixer",
        Category::Tainted => "tainted by a traced theft",
        Category::Blocked => "blocked by a token issuer",
        Category::Gambling => "a gambling service",
        Category::Exchange => "an exchange",
        Category::Bridge => "a bridge",
        Category::Defi => "a DeFi protocol",
        Category::Miner => "a miner",
        Category::Service => "a known service",
        Category::Other => "labelled",
    }
}
