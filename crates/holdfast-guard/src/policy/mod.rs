//! Policy as code: ordered rules, first match wins, default deny.
//!
//! A policy is a TOML file (format in `docs/GUARD.md`): wallets, assets (decimals and an
//! optional USD price), named address lists, approver groups, then `[[rule]]`s, each with
//! conditions under `when` (all must hold) and an action: `allow`, `deny`, `hold` for a
//! duration (a cancel window), or `require_approvals` from a group. A request no rule
//! matches is denied.
//!
//! Parsing validates everything once ([`Policy::parse`]): unknown keys, undefined lists,
//! groups, wallets or assets, amounts that do not fit an asset's decimals, conditions that
//! cannot be evaluated; each error names the file, the line and the key.

mod eval;
mod file;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use holdfast_primitives::{Asset, Category, RiskLevel};
use serde::Serialize;
use toml::Spanned;

pub use eval::{Decision, Evaluation, describe_amount, evaluate};

use crate::facts::{CallFact, FindingKind, RequestKind};
use crate::known;
use crate::request::parse_address;
use crate::safe::SafeVersion;
use crate::units::{Usd, parse_duration, parse_units};

/// The built-in policy used without `--policy` (`policies/default.toml`).
pub const DEFAULT_POLICY: &str = include_str!("../../../../policies/default.toml");

/// A policy that does not parse or does not make sense, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": key `{k}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for PolicyError {}

/// The fungible identity of an asset for limits: the native coin, or a token contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum AssetKey {
    Native,
    Token(Address),
}

impl AssetKey {
    pub fn of(asset: &Asset) -> AssetKey {
        asset.token().map_or(AssetKey::Native, AssetKey::Token)
    }
}

/// An asset the policy knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AssetDef {
    pub symbol: String,
    pub key: AssetKey,
    pub decimals: u8,
    pub usd: Option<Usd>,
}

/// A wallet the policy governs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wallet {
    pub name: String,
    pub address: Address,
    pub chain_id: Option<u64>,
    pub safe_version: Option<SafeVersion>,
    pub owners: Vec<Address>,
}

/// What a rule does when it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RuleAction {
    Allow,
    Deny,
    /// Signed only after this long without a cancel.
    Hold {
        duration: Duration,
    },
    /// Signed only once `count` distinct members of `group` have approved the payload.
    RequireApprovals {
        count: u32,
        group: String,
    },
}

/// Whose past outflows a velocity limit sums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    /// Everything the wallet sent.
    Wallet,
    /// What the wallet sent to each destination of this request, separately.
    Destination,
}

/// States of the simulation a rule can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SimFact {
    Ran,
    Unavailable,
    Failed,
    TimedOut,
    /// It ran and the transaction reverted or halted.
    Reverted,
    /// A Safe's inner call failed while `execTransaction` succeeded.
    InnerFailed,
}

/// One condition of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Wallet(Vec<Address>),
    ChainId(Vec<u64>),
    Initiator(Vec<String>),
    Kind(Vec<RequestKind>),
    DestinationIn(String),
    DestinationNotIn(String),
    DestinationNew(Duration),
    AssetIn(Vec<AssetKey>),
    AssetNotIn(Vec<AssetKey>),
    AmountAbove {
        asset: AssetKey,
        amount: U256,
    },
    UsdAbove(Usd),
    Velocity {
        window: Duration,
        per: Per,
        asset: Option<AssetKey>,
        amount_above: Option<U256>,
        usd_above: Option<Usd>,
        count_above: Option<u32>,
    },
    CounterpartyRisk(RiskLevel),
    CounterpartyCategory(Vec<Category>),
    Call(Vec<CallFact>),
    NoCall(Vec<CallFact>),
    DelegatecallToUnlisted(String),
    ApprovalToUnlisted(String),
    /// Some call with a selector Holdfast cannot decode goes to an address not in the list.
    UnknownCallToUnlisted(String),
    CriticalWrite(bool),
    /// A critical slot written that no decoded call announces.
    HiddenCriticalWrite(bool),
    Simulation(Vec<SimFact>),
    Finding(Vec<FindingKind>),
    TimeOutside {
        /// Minutes after midnight, local to `offset_minutes`.
        from: u32,
        to: u32,
        /// Monday first.
        days: [bool; 7],
        offset_minutes: i32,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub description: Option<String>,
    pub line: usize,
    pub when: Vec<Condition>,
    pub action: RuleAction,
}

/// A named list of addresses (built-in lists expanded).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressList {
    pub addresses: HashSet<Address>,
    /// The built-in lists it includes (`safe:multisend-call-only`, ...), for messages.
    pub builtins: Vec<String>,
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub description: Option<String>,
    pub source: String,
    pub wallets: Vec<Wallet>,
    pub assets: Vec<AssetDef>,
    pub lists: BTreeMap<String, AddressList>,
    pub groups: BTreeMap<String, Vec<Address>>,
    pub rules: Vec<Rule>,
}

/// Largest policy file read.
pub const MAX_POLICY_BYTES: usize = 4 << 20;

struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn err(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> PolicyError {
        PolicyError {
            file: self.file.to_owned(),
            line: Some(self.line_of(span.start)),
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    fn at<T>(&self, s: &Spanned<T>, key: &str, message: impl Into<String>) -> PolicyError {
        self.err(s.span(), key, message)
    }
}

impl Policy {
    /// The built-in default policy.
    pub fn default_policy() -> Result<Policy, PolicyError> {
        Policy::parse("(built-in default policy)", DEFAULT_POLICY)
    }

    /// Parses and validates a policy; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Policy, PolicyError> {
        if text.len() > MAX_POLICY_BYTES {
            return Err(PolicyError {
                file: file.to_owned(),
                line: None,
                key: None,
                message: format!("{} bytes: the limit is {MAX_POLICY_BYTES}", text.len()),
            });
        }
        let cx = Ctx { file, text };
        let raw: file::RawPolicy = toml::from_str(text).map_err(|e| PolicyError {
            file: file.to_owned(),
            line: e.span().map(|s| cx.line_of(s.start)),
            key: None,
            message: e.message().trim().to_owned(),
        })?;
        if raw.policy.format != 1 {
            return Err(PolicyError {
                file: file.to_owned(),
                line: None,
                key: Some("policy.format".into()),
                message: format!(
                    "format {} is not supported: this Holdfast reads format 1",
                    raw.policy.format
                ),
            });
        }
        let mut assets = Vec::new();
        for (symbol, a) in &raw.assets {
            let key = format!("assets.{symbol}");
            let asset_key = match (&a.token, a.native) {
                (Some(t), false) => {
                    AssetKey::Token(parse_address(t.get_ref()).ok_or_else(|| {
                        cx.at(
                            t,
                            &format!("{key}.token"),
                            format!("{:?} is not an address", t.get_ref()),
                        )
                    })?)
                }
                (None, true) => AssetKey::Native,
                _ => {
                    return Err(PolicyError {
                        file: file.to_owned(),
                        line: None,
                        key: Some(key),
                        message: "an asset has either `native = true` or a `token` address, not both or neither".into(),
                    });
                }
            };
            if a.decimals > 77 {
                return Err(PolicyError {
                    file: file.to_owned(),
                    line: None,
                    key: Some(format!("{key}.decimals")),
                    message: format!("{} decimals: at most 77", a.decimals),
                });
            }
            let usd = match &a.usd {
                Some(u) => Some(Usd::parse(u.get_ref()).map_err(|e| {
                    cx.at(
                        u,
                        &format!("{key}.usd"),
                        format!("{e} (a price in dollars, at most 8 decimals, as a string)"),
                    )
                })?),
                None => None,
            };
            if symbol.eq_ignore_ascii_case("native") && asset_key != AssetKey::Native {
                return Err(PolicyError {
                    file: file.to_owned(),
                    line: None,
                    key: Some(key),
                    message: "the symbol `native` is reserved for the native coin".into(),
                });
            }
            assets.push(AssetDef {
                symbol: symbol.clone(),
                key: asset_key,
                decimals: a.decimals,
                usd,
            });
        }
        let mut lists = BTreeMap::new();
        for (name, entries) in &raw.lists {
            let mut list = AddressList::default();
            for e in entries {
                let s = e.get_ref();
                if s.starts_with("safe:") {
                    let addrs = known::list(s).ok_or_else(|| {
                        cx.at(
                            e,
                            &format!("lists.{name}"),
                            format!(
                                "{s:?} is not a built-in list: expected one of {}",
                                known::LISTS
                                    .iter()
                                    .map(|(n, _)| *n)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        )
                    })?;
                    list.addresses.extend(addrs.iter().copied());
                    list.builtins.push(s.clone());
                } else {
                    list.addresses.insert(parse_address(s).ok_or_else(|| {
                        cx.at(e, &format!("lists.{name}"), format!("{s:?} is not an address (0x + 40 hex digits, valid EIP-55 checksum if mixed-case) or a built-in list (safe:...)"))
                    })?);
                }
            }
            lists.insert(name.clone(), list);
        }
        let mut groups = BTreeMap::new();
        for (name, g) in &raw.groups {
            let mut members = Vec::new();
            for m in &g.members {
                let a = parse_address(m.get_ref()).ok_or_else(|| {
                    cx.at(m, &format!("groups.{name}.members"), format!("{:?} is not an address: approvers are Ethereum accounts (their EIP-712 signatures are the approvals)", m.get_ref()))
                })?;
                if members.contains(&a) {
                    return Err(cx.at(
                        m,
                        &format!("groups.{name}.members"),
                        format!("{a} is listed twice"),
                    ));
                }
                members.push(a);
            }
            groups.insert(name.clone(), members);
        }
        let mut wallets = Vec::new();
        for (name, w) in &raw.wallets {
            let key = format!("wallets.{name}");
            let address = parse_address(w.address.get_ref()).ok_or_else(|| {
                cx.at(
                    &w.address,
                    &format!("{key}.address"),
                    format!("{:?} is not an address", w.address.get_ref()),
                )
            })?;
            let safe_version = match &w.safe_version {
                Some(v) => Some(
                    v.get_ref()
                        .parse::<SafeVersion>()
                        .map_err(|e| cx.at(v, &format!("{key}.safe_version"), e.to_string()))?,
                ),
                None => None,
            };
            let mut owners = Vec::new();
            for o in &w.owners {
                owners.push(parse_address(o.get_ref()).ok_or_else(|| {
                    cx.at(
                        o,
                        &format!("{key}.owners"),
                        format!("{:?} is not an address", o.get_ref()),
                    )
                })?);
            }
            wallets.push(Wallet {
                name: name.clone(),
                address,
                chain_id: w.chain_id,
                safe_version,
                owners,
            });
        }
        let mut policy = Policy {
            name: raw.policy.name.clone(),
            description: raw.policy.description.clone(),
            source: file.to_owned(),
            wallets,
            assets,
            lists,
            groups,
            rules: Vec::new(),
        };
        let mut names = HashSet::new();
        for (i, r) in raw.rules.iter().enumerate() {
            let rule = policy.rule(&cx, i, r)?;
            if !names.insert(rule.name.clone()) {
                return Err(cx.at(
                    &r.name,
                    &format!("rule[{i}].name"),
                    format!(
                        "two rules are named {:?}: names identify rules in decisions",
                        rule.name
                    ),
                ));
            }
            policy.rules.push(rule);
        }
        Ok(policy)
    }

    fn rule(&self, cx: &Ctx<'_>, i: usize, r: &file::RawRule) -> Result<Rule, PolicyError> {
        let name = r.name.get_ref().trim().to_owned();
        let key = |k: &str| format!("rule[{i}].{k}");
        if name.is_empty() {
            return Err(cx.at(&r.name, &key("name"), "a rule needs a name"));
        }
        let action = match r.action.get_ref().as_str() {
            "allow" => RuleAction::Allow,
            "deny" => RuleAction::Deny,
            "hold" => {
                let h = r.hold.as_ref().ok_or_else(|| cx.at(&r.action, &key("hold"), "action \"hold\" needs `hold = \"<duration>\"` (the cancel window, e.g. \"24h\")"))?;
                let duration = parse_duration(h.get_ref())
                    .map_err(|e| cx.at(h, &key("hold"), e.to_string()))?;
                if duration.is_zero() {
                    return Err(cx.at(
                        h,
                        &key("hold"),
                        "a hold of 0 is an allow: write action = \"allow\"",
                    ));
                }
                RuleAction::Hold { duration }
            }
            "require_approvals" => {
                let g = r.group.as_ref().ok_or_else(|| {
                    cx.at(
                        &r.action,
                        &key("group"),
                        "action \"require_approvals\" needs `group = \"<group name>\"`",
                    )
                })?;
                let members = self.groups.get(g.get_ref()).ok_or_else(|| {
                    cx.at(
                        g,
                        &key("group"),
                        format!(
                            "no group named {:?} (defined: {})",
                            g.get_ref(),
                            self.groups.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    )
                })?;
                let n = r.approvals.as_ref().ok_or_else(|| {
                    cx.at(
                        &r.action,
                        &key("approvals"),
                        "action \"require_approvals\" needs `approvals = <count>`",
                    )
                })?;
                let count = *n.get_ref();
                // An empty group is a placeholder (the built-in policy's `admins`): its rules
                // can never be approved until members are configured; `warnings` says so.
                if count == 0 || (!members.is_empty() && count as usize > members.len()) {
                    return Err(cx.at(
                        n,
                        &key("approvals"),
                        format!(
                            "{count} approvals from group {:?} of {} members: expected 1 to {}",
                            g.get_ref(),
                            members.len(),
                            members.len()
                        ),
                    ));
                }
                RuleAction::RequireApprovals {
                    count,
                    group: g.get_ref().clone(),
                }
            }
            other => {
                return Err(cx.at(&r.action, &key("action"), format!("{other:?} is not an action: expected allow, deny, hold or require_approvals")));
            }
        };
        let stray = |k: &str, present: bool, for_action: &str| -> Result<(), PolicyError> {
            if present {
                Err(cx.at(
                    &r.action,
                    &key(k),
                    format!("`{k}` only goes with action = \"{for_action}\""),
                ))
            } else {
                Ok(())
            }
        };
        if !matches!(action, RuleAction::Hold { .. }) {
            stray("hold", r.hold.is_some(), "hold")?;
        }
        if !matches!(action, RuleAction::RequireApprovals { .. }) {
            stray("approvals", r.approvals.is_some(), "require_approvals")?;
            stray("group", r.group.is_some(), "require_approvals")?;
        }
        let when = self.conditions(cx, &key("when"), &r.when)?;
        Ok(Rule {
            name,
            description: r.description.clone(),
            line: cx.line_of(r.name.span().start),
            when,
            action,
        })
    }

    fn list_ref(
        &self,
        cx: &Ctx<'_>,
        s: &Spanned<String>,
        key: &str,
    ) -> Result<String, PolicyError> {
        let name = s.get_ref();
        if self.lists.contains_key(name) {
            Ok(name.clone())
        } else {
            Err(cx.at(
                s,
                key,
                format!(
                    "no list named {name:?} (defined: {})",
                    self.lists.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ))
        }
    }

    fn asset_ref(
        &self,
        cx: &Ctx<'_>,
        s: &Spanned<String>,
        key: &str,
    ) -> Result<AssetKey, PolicyError> {
        let sym = s.get_ref();
        if sym.eq_ignore_ascii_case("native") {
            return Ok(AssetKey::Native);
        }
        if let Some(a) = self.assets.iter().find(|a| a.symbol == *sym) {
            return Ok(a.key);
        }
        if let Some(a) = parse_address(sym) {
            return Ok(AssetKey::Token(a));
        }
        Err(cx.at(s, key, format!("{sym:?} is not an asset of this policy (defined: {}), `native`, or a token address", self.assets.iter().map(|a| a.symbol.as_str()).collect::<Vec<_>>().join(", "))))
    }

    fn conditions(
        &self,
        cx: &Ctx<'_>,
        key: &str,
        w: &file::RawWhen,
    ) -> Result<Vec<Condition>, PolicyError> {
        let k = |s: &str| format!("{key}.{s}");
        let mut out = Vec::new();
        if let Some(ws) = &w.wallet {
            let mut v = Vec::new();
            for s in ws {
                let a = self
                    .wallets
                    .iter()
                    .find(|x| x.name == *s.get_ref())
                    .map(|x| x.address)
                    .or_else(|| parse_address(s.get_ref()))
                    .ok_or_else(|| {
                        cx.at(
                            s,
                            &k("wallet"),
                            format!(
                                "{:?} is neither a wallet of this policy nor an address",
                                s.get_ref()
                            ),
                        )
                    })?;
                v.push(a);
            }
            out.push(Condition::Wallet(v));
        }
        if let Some(c) = &w.chain_id {
            out.push(Condition::ChainId(c.clone()));
        }
        if let Some(i) = &w.initiator {
            out.push(Condition::Initiator(i.clone()));
        }
        if let Some(ks) = &w.kind {
            let mut v = Vec::new();
            for s in ks {
                v.push(match s.get_ref().as_str() {
                    "transaction" => RequestKind::Transaction,
                    "signed" => RequestKind::SignedTransaction,
                    "safe" => RequestKind::Safe,
                    "withdrawal" => RequestKind::Withdrawal,
                    other => {
                        return Err(cx.at(
                            s,
                            &k("kind"),
                            format!("{other:?}: expected transaction, signed, safe or withdrawal"),
                        ));
                    }
                });
            }
            out.push(Condition::Kind(v));
        }
        if let Some(l) = &w.destination_in {
            out.push(Condition::DestinationIn(self.list_ref(
                cx,
                l,
                &k("destination_in"),
            )?));
        }
        if let Some(l) = &w.destination_not_in {
            out.push(Condition::DestinationNotIn(self.list_ref(
                cx,
                l,
                &k("destination_not_in"),
            )?));
        }
        if let Some(d) = &w.destination_new {
            out.push(Condition::DestinationNew(
                parse_duration(d.get_ref())
                    .map_err(|e| cx.at(d, &k("destination_new"), e.to_string()))?,
            ));
        }
        let mut assets_in = None;
        if let Some(a) = &w.asset_in {
            let mut v = Vec::new();
            for s in a {
                v.push(self.asset_ref(cx, s, &k("asset_in"))?);
            }
            assets_in = Some(v.clone());
            out.push(Condition::AssetIn(v));
        }
        if let Some(a) = &w.asset_not_in {
            let mut v = Vec::new();
            for s in a {
                v.push(self.asset_ref(cx, s, &k("asset_not_in"))?);
            }
            out.push(Condition::AssetNotIn(v));
        }
        if let Some(amount) = &w.amount_above {
            let asset = match assets_in.as_deref() {
                Some([one]) => *one,
                _ => return Err(cx.at(amount, &k("amount_above"), "amount_above needs `asset_in` naming exactly one asset (an amount is in that asset's units)")),
            };
            let decimals = self.decimals(asset).ok_or_else(|| {
                cx.at(
                    amount,
                    &k("amount_above"),
                    "the asset's decimals are unknown: define it under [assets]",
                )
            })?;
            let v = parse_units(amount.get_ref(), decimals)
                .map_err(|e| cx.at(amount, &k("amount_above"), e.to_string()))?;
            out.push(Condition::AmountAbove { asset, amount: v });
        }
        if let Some(u) = &w.usd_above {
            out.push(Condition::UsdAbove(
                Usd::parse(u.get_ref()).map_err(|e| cx.at(u, &k("usd_above"), e.to_string()))?,
            ));
        }
        if let Some(v) = &w.velocity {
            let vk = |s: &str| format!("{key}.velocity.{s}");
            let window = parse_duration(v.window.get_ref())
                .map_err(|e| cx.at(&v.window, &vk("window"), e.to_string()))?;
            let per = match v.per.as_ref().map(|p| p.get_ref().as_str()) {
                None | Some("wallet") => Per::Wallet,
                Some("destination") => Per::Destination,
                Some(other) => {
                    return Err(cx.at(
                        v.per.as_ref().unwrap_or(&v.window),
                        &vk("per"),
                        format!("{other:?}: expected wallet or destination"),
                    ));
                }
            };
            let asset = match &v.asset {
                Some(a) => Some(self.asset_ref(cx, a, &vk("asset"))?),
                None => None,
            };
            let amount_above = match &v.amount_above {
                Some(a) => {
                    let asset = asset.ok_or_else(|| {
                        cx.at(a, &vk("amount_above"), "a velocity amount needs `asset`")
                    })?;
                    let d = self.decimals(asset).ok_or_else(|| {
                        cx.at(
                            a,
                            &vk("amount_above"),
                            "the asset's decimals are unknown: define it under [assets]",
                        )
                    })?;
                    Some(
                        parse_units(a.get_ref(), d)
                            .map_err(|e| cx.at(a, &vk("amount_above"), e.to_string()))?,
                    )
                }
                None => None,
            };
            let usd_above = match &v.usd_above {
                Some(u) => Some(
                    Usd::parse(u.get_ref())
                        .map_err(|e| cx.at(u, &vk("usd_above"), e.to_string()))?,
                ),
                None => None,
            };
            if amount_above.is_none() && usd_above.is_none() && v.count_above.is_none() {
                return Err(cx.at(
                    &v.window,
                    &vk("window"),
                    "a velocity limit needs amount_above, usd_above or count_above",
                ));
            }
            out.push(Condition::Velocity {
                window,
                per,
                asset,
                amount_above,
                usd_above,
                count_above: v.count_above,
            });
        }
        if let Some(r) = &w.counterparty_risk {
            out.push(Condition::CounterpartyRisk(
                r.get_ref()
                    .parse::<RiskLevel>()
                    .map_err(|e| cx.at(r, &k("counterparty_risk"), e.to_string()))?,
            ));
        }
        if let Some(cs) = &w.counterparty_category {
            let mut v = Vec::new();
            for c in cs {
                v.push(
                    c.get_ref()
                        .parse::<Category>()
                        .map_err(|e| cx.at(c, &k("counterparty_category"), e.to_string()))?,
                );
            }
            out.push(Condition::CounterpartyCategory(v));
        }
        let call_facts =
            |list: &Vec<Spanned<String>>, name: &str| -> Result<Vec<CallFact>, PolicyError> {
                list.iter()
                    .map(|s| {
                        serde_json::from_value::<CallFact>(serde_json::Value::String(
                            s.get_ref().clone(),
                        ))
                        .map_err(|_| {
                            cx.at(
                                s,
                                &k(name),
                                format!(
                                    "{:?} is not a call kind: expected one of {}",
                                    s.get_ref(),
                                    CALL_FACTS.join(", ")
                                ),
                            )
                        })
                    })
                    .collect()
            };
        if let Some(c) = &w.call {
            out.push(Condition::Call(call_facts(c, "call")?));
        }
        if let Some(c) = &w.no_call {
            out.push(Condition::NoCall(call_facts(c, "no_call")?));
        }
        if let Some(l) = &w.delegatecall_to_unlisted {
            out.push(Condition::DelegatecallToUnlisted(self.list_ref(
                cx,
                l,
                &k("delegatecall_to_unlisted"),
            )?));
        }
        if let Some(l) = &w.approval_to_unlisted {
            out.push(Condition::ApprovalToUnlisted(self.list_ref(
                cx,
                l,
                &k("approval_to_unlisted"),
            )?));
        }
        if let Some(l) = &w.unknown_call_to_unlisted {
            out.push(Condition::UnknownCallToUnlisted(self.list_ref(
                cx,
                l,
                &k("unknown_call_to_unlisted"),
            )?));
        }
        if let Some(c) = w.critical_write {
            out.push(Condition::CriticalWrite(c));
        }
        if let Some(c) = w.hidden_critical_write {
            out.push(Condition::HiddenCriticalWrite(c));
        }
        if let Some(ss) = &w.simulation {
            let mut v = Vec::new();
            for s in ss {
                v.push(match s.get_ref().as_str() {
                    "ran" => SimFact::Ran,
                    "unavailable" => SimFact::Unavailable,
                    "failed" => SimFact::Failed,
                    "timed_out" => SimFact::TimedOut,
                    "reverted" => SimFact::Reverted,
                    "inner_failed" => SimFact::InnerFailed,
                    other => return Err(cx.at(s, &k("simulation"), format!("{other:?}: expected ran, unavailable, failed, timed_out, reverted or inner_failed"))),
                });
            }
            out.push(Condition::Simulation(v));
        }
        if let Some(fs) = &w.finding {
            let mut v = Vec::new();
            for f in fs {
                v.push(
                    serde_json::from_value::<FindingKind>(serde_json::Value::String(
                        f.get_ref().clone(),
                    ))
                    .map_err(|_| {
                        cx.at(
                            f,
                            &k("finding"),
                            format!(
                                "{:?} is not a finding: expected one of {}",
                                f.get_ref(),
                                FINDINGS.join(", ")
                            ),
                        )
                    })?,
                );
            }
            out.push(Condition::Finding(v));
        }
        if let Some(t) = &w.time_outside {
            let tk = |s: &str| format!("{key}.time_outside.{s}");
            let (from, to) = parse_hours(t.hours.get_ref()).ok_or_else(|| {
                cx.at(
                    &t.hours,
                    &tk("hours"),
                    format!(
                        "{:?}: expected \"HH:MM-HH:MM\" (24-hour clock)",
                        t.hours.get_ref()
                    ),
                )
            })?;
            let mut days = [true; 7];
            if let Some(ds) = &t.days {
                days = [false; 7];
                for d in ds {
                    let i = DAYS
                        .iter()
                        .position(|x| x.eq_ignore_ascii_case(d.get_ref()))
                        .ok_or_else(|| {
                            cx.at(
                                d,
                                &tk("days"),
                                format!(
                                    "{:?}: expected mon, tue, wed, thu, fri, sat or sun",
                                    d.get_ref()
                                ),
                            )
                        })?;
                    days[i] = true;
                }
            }
            let offset_minutes = match &t.utc_offset {
                Some(o) => parse_offset(o.get_ref()).ok_or_else(|| {
                    cx.at(
                        o,
                        &tk("utc_offset"),
                        format!("{:?}: expected \"+HH:MM\" or \"-HH:MM\"", o.get_ref()),
                    )
                })?,
                None => 0,
            };
            out.push(Condition::TimeOutside {
                from,
                to,
                days,
                offset_minutes,
            });
        }
        Ok(out)
    }

    /// How far back the policy looks at a wallet's past: the longest velocity window
    /// (`None`: no velocity rule), and whether any rule asks when a destination was first
    /// paid (`destination_new`). Callers fetch only that much history.
    pub fn history_needs(&self) -> (Option<Duration>, bool) {
        let mut window: Option<Duration> = None;
        let mut first_paid = false;
        for c in self.rules.iter().flat_map(|r| &r.when) {
            match c {
                Condition::Velocity { window: w, .. } => {
                    window = Some(window.map_or(*w, |x| x.max(*w)));
                }
                Condition::DestinationNew(_) => first_paid = true,
                _ => {}
            }
        }
        (window, first_paid)
    }

    /// What is legal but probably not meant: rules needing approvals from an empty group.
    pub fn warnings(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter_map(|r| match &r.action {
                RuleAction::RequireApprovals { group, count } if self.groups.get(group).is_none_or(Vec::is_empty) => Some(format!(
                    "rule {:?} (line {}) needs {count} approvals from group {group:?}, which has no members: such requests can never be approved",
                    r.name, r.line
                )),
                _ => None,
            })
            .collect()
    }

    pub fn decimals(&self, key: AssetKey) -> Option<u8> {
        self.asset(key).map(|a| a.decimals)
    }

    pub fn asset(&self, key: AssetKey) -> Option<&AssetDef> {
        self.assets.iter().find(|a| a.key == key)
    }

    /// The asset definition for a symbol, `native`, or a token address.
    pub fn asset_by_name(&self, name: &str) -> Option<AssetDef> {
        if let Some(a) = self
            .assets
            .iter()
            .find(|a| a.symbol.eq_ignore_ascii_case(name))
        {
            return Some(a.clone());
        }
        if name.eq_ignore_ascii_case("native") {
            return Some(AssetDef {
                symbol: "native".into(),
                key: AssetKey::Native,
                decimals: 18,
                usd: None,
            });
        }
        None
    }

    pub fn wallet(&self, address: Address) -> Option<&Wallet> {
        self.wallets.iter().find(|w| w.address == address)
    }

    pub fn wallet_by_name(&self, name: &str) -> Option<&Wallet> {
        self.wallets.iter().find(|w| w.name == name)
    }

    /// How a list reads in a message: its name and built-ins.
    pub fn list_label(&self, name: &str) -> String {
        match self.lists.get(name) {
            Some(l) if !l.builtins.is_empty() => format!("{name:?} ({})", l.builtins.join(", ")),
            _ => format!("{name:?}"),
        }
    }
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

const CALL_FACTS: [&str; 17] = [
    "delegatecall",
    "safe_config_change",
    "upgrade",
    "admin_change",
    "approval",
    "unlimited_approval",
    "set_approval_for_all",
    "permit",
    "unknown_call",
    "malformed_call",
    "contract_creation",
    "eip7702_delegation",
    "nested_safe_exec",
    "multisend",
    "native_transfer",
    "token_transfer",
    "safe_gas_refund",
];

const FINDINGS: [&str; 9] = [
    "safe_tx_hash_mismatch",
    "contract_hash_mismatch",
    "shown_method_mismatch",
    "bad_signature",
    "stale_nonce",
    "wrong_chain",
    "version_unknown",
    "code_hash_mismatch",
    "undecodable",
];

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
}

fn parse_hours(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    Some((parse_hhmm(a)?, parse_hhmm(b)?))
}

fn parse_offset(s: &str) -> Option<i32> {
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let m = i32::try_from(parse_hhmm(rest)?).ok()?;
    (m <= 14 * 60).then_some(sign * m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[policy]
name = "t"

[assets.USDC]
token = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
decimals = 6
usd = "1"

[lists]
ok = ["0x0000000000000000000000000000000000000001", "safe:multisend-call-only"]

[groups.signers]
members = ["0x00000000000000000000000000000000000000a1", "0x00000000000000000000000000000000000000a2"]

[[rule]]
name = "big"
when = { asset_in = ["USDC"], amount_above = "1000000.5" }
action = "require_approvals"
approvals = 2
group = "signers"

[[rule]]
name = "ok"
when = { destination_in = "ok" }
action = "allow"
"#;

    #[test]
    fn a_policy_parses_into_exact_conditions() {
        let p = Policy::parse("t.toml", MINIMAL).expect("parses");
        assert_eq!(p.rules.len(), 2);
        assert_eq!(
            p.rules[0].when[1],
            Condition::AmountAbove {
                asset: AssetKey::Token(alloy::primitives::address!(
                    "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
                )),
                amount: U256::from(1_000_000_500_000u64)
            }
        );
        assert_eq!(p.rules[0].line, 17);
        assert!(p.lists["ok"].addresses.len() > 2, "built-in list expanded");
        Policy::default_policy().expect("the built-in default parses");
    }

    fn error_of(text: &str) -> PolicyError {
        Policy::parse("p.toml", text).expect_err("must not parse")
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let typo = MINIMAL.replace("amount_above", "amont_above");
        let e = error_of(&typo);
        assert_eq!(e.file, "p.toml");
        assert_eq!(e.line, Some(18), "{e}");
        assert!(e.message.contains("amont_above"), "{e}");

        let e = error_of(&MINIMAL.replace("group = \"signers\"", "group = \"signer\""));
        assert_eq!(e.key.as_deref(), Some("rule[0].group"), "{e}");
        assert!(e.to_string().contains("no group named \"signer\""), "{e}");
        assert_eq!(e.line, Some(21));

        let e = error_of(&MINIMAL.replace("1000000.5", "1000000.1234567"));
        assert!(e.to_string().contains("rule[0].when.amount_above"), "{e}");

        let e = error_of(&MINIMAL.replace("approvals = 2", "approvals = 3"));
        assert!(e.to_string().contains("expected 1 to 2"), "{e}");

        let e = error_of(&MINIMAL.replace(
            "\"safe:multisend-call-only\"",
            "\"safe:multisend-callonly\"",
        ));
        assert!(e.to_string().contains("not a built-in list"), "{e}");

        let e = error_of(&MINIMAL.replace("action = \"allow\"", "action = \"permit\""));
        assert!(
            e.to_string()
                .contains("expected allow, deny, hold or require_approvals"),
            "{e}"
        );

        let e =
            error_of(&MINIMAL.replace("action = \"allow\"", "action = \"allow\"\nhold = \"1h\""));
        assert!(
            e.to_string().contains("only goes with action = \"hold\""),
            "{e}"
        );

        let e = error_of(&format!(
            "{MINIMAL}\n[[rule]]\nname = \"ok\"\naction = \"deny\"\n"
        ));
        assert!(e.to_string().contains("two rules are named"), "{e}");
    }
}
