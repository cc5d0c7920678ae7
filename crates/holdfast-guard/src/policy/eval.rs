//! Evaluation: the first rule whose conditions all hold decides; no rule, deny. Every
//! condition that held is explained in words a signer understands.
//!
//! Conditions over several things read as "every" when they widen what is allowed
//! (`destination_in`, `asset_in`: every destination is listed, every asset is one of these)
//! and "some" when they narrow it (`destination_not_in`, `counterparty_risk`, `call`: some
//! destination is not listed, some counterparty is high risk, some call is a
//! DELEGATECALL), so that a batch cannot hide one bad entry behind good ones.

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use holdfast_primitives::Asset;
use serde::Serialize;

use super::{AssetKey, Condition, Per, Policy, RuleAction, SimFact};
use crate::approval::VerifiedApproval;
use crate::decode::{Action, SafeChange};
use crate::facts::{CallFact, Facts, PastOutflow, Source};
use crate::simulate::{CriticalSlot, Outcome, SimStatus};
use crate::units::{Usd, format_duration, format_units};

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Allow,
    /// Sign once the window has passed without a cancel.
    Hold {
        hold_seconds: u64,
    },
    /// Sign once `need` distinct members of `group` have approved this exact payload.
    RequireApprovals {
        need: u32,
        group: String,
        members: Vec<Address>,
        /// Valid approvals already given for this payload.
        have: Vec<Address>,
    },
    Deny,
}

impl Decision {
    pub const fn name(&self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Hold { .. } => "hold",
            Decision::RequireApprovals { .. } => "require_approvals",
            Decision::Deny => "deny",
        }
    }
}

/// What the policy decided and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evaluation {
    #[serde(flatten)]
    pub decision: Decision,
    /// The rule that decided; `None`: no rule matched (default deny).
    pub rule: Option<String>,
    pub rule_line: Option<usize>,
    pub reasons: Vec<String>,
}

/// Evaluates `policy` on `facts`. `approvals` are verified approvals; only those for this
/// payload, by distinct members of the rule's group other than the initiator, count.
pub fn evaluate(policy: &Policy, facts: &Facts, approvals: &[VerifiedApproval]) -> Evaluation {
    for rule in &policy.rules {
        let mut reasons = Vec::with_capacity(rule.when.len());
        let matched = rule.when.iter().all(|c| match holds(policy, facts, c) {
            Some(r) => {
                reasons.push(r);
                true
            }
            None => false,
        });
        if !matched {
            continue;
        }
        if reasons.is_empty() {
            reasons.push("the rule applies to every request".into());
        }
        let decision = match &rule.action {
            RuleAction::Allow => Decision::Allow,
            RuleAction::Deny => Decision::Deny,
            RuleAction::Hold { duration } => Decision::Hold {
                hold_seconds: duration.as_secs(),
            },
            RuleAction::RequireApprovals { count, group } => {
                let members = policy.groups.get(group).cloned().unwrap_or_default();
                let have = counted_approvals(facts, approvals, group, &members);
                if have.len() >= *count as usize {
                    reasons.push(format!(
                        "approved by {} of group {group:?} ({}), {} needed: signed over payload {}",
                        have.len(),
                        have.iter().map(short).collect::<Vec<_>>().join(", "),
                        count,
                        facts.payload_hash
                    ));
                    Decision::Allow
                } else {
                    Decision::RequireApprovals {
                        need: *count,
                        group: group.clone(),
                        members,
                        have,
                    }
                }
            }
        };
        return Evaluation {
            decision,
            rule: Some(rule.name.clone()),
            rule_line: Some(rule.line),
            reasons,
        };
    }
    Evaluation {
        decision: Decision::Deny,
        rule: None,
        rule_line: None,
        reasons: vec![format!(
            "no rule of policy {:?} matches this request: denied by default",
            policy.name
        )],
    }
}

fn counted_approvals(
    facts: &Facts,
    approvals: &[VerifiedApproval],
    group: &str,
    members: &[Address],
) -> Vec<Address> {
    let quorum = crate::approval::Quorum {
        action: crate::approval::ApprovalAction::Approve,
        request_id: None,
        payload_hash: facts.payload_hash,
        chain_id: facts.chain_id,
        group,
        members,
        initiator: facts
            .initiator
            .as_deref()
            .and_then(crate::request::parse_address),
        now: facts.now,
    };
    crate::approval::counted(approvals, &quorum)
}

pub(crate) fn short(a: &Address) -> String {
    let s = a.to_checksum(None);
    format!("{}…{}", &s[..6], &s[s.len() - 4..])
}

/// An amount with its symbol when the policy knows the asset.
pub fn describe_amount(policy: &Policy, asset: &Asset, amount: U256) -> String {
    match (policy.asset(AssetKey::of(asset)), asset) {
        (Some(def), Asset::Native | Asset::Erc20 { .. }) => {
            format!("{} {}", format_units(amount, def.decimals), def.symbol)
        }
        (_, Asset::Native) => format!("{} wei", amount),
        (_, Asset::Erc20 { token }) => format!("{amount} units of token {}", short(token)),
        (_, Asset::Erc721 { token, id }) => format!("NFT {} #{id}", short(token)),
        (_, Asset::Erc1155 { token, id }) => format!("{amount} of ERC-1155 {} #{id}", short(token)),
    }
}

/// The USD value of outflows; `Err` lists the assets without a price.
fn usd_of(policy: &Policy, outflows: &BTreeMap<Asset, U256>) -> Result<Usd, Vec<String>> {
    let mut total = Usd::default();
    let mut unpriced = Vec::new();
    for (asset, amount) in outflows {
        match policy.asset(AssetKey::of(asset)) {
            Some(def)
                if def.usd.is_some() && matches!(asset, Asset::Native | Asset::Erc20 { .. }) =>
            {
                total = total.saturating_add(Usd::value_of(
                    *amount,
                    def.decimals,
                    def.usd.unwrap_or_default(),
                ));
            }
            _ => unpriced.push(describe_amount(policy, asset, *amount)),
        }
    }
    if unpriced.is_empty() {
        Ok(total)
    } else {
        Err(unpriced)
    }
}

fn in_window(o: &PastOutflow, now: u64, window: Duration) -> bool {
    now.saturating_sub(o.at) < window.as_secs()
}

fn holds(policy: &Policy, facts: &Facts, c: &Condition) -> Option<String> {
    let wallet = facts
        .wallet_name
        .clone()
        .unwrap_or_else(|| short(&facts.wallet));
    match c {
        Condition::Wallet(ws) => ws
            .contains(&facts.wallet)
            .then(|| format!("the wallet is {wallet}")),
        Condition::ChainId(ids) => facts
            .chain_id
            .filter(|c| ids.contains(c))
            .map(|c| format!("the request is for chain {c}")),
        Condition::Initiator(is) => facts
            .initiator
            .as_ref()
            .filter(|i| is.contains(i))
            .map(|i| format!("requested by {i}")),
        Condition::Kind(ks) => ks
            .contains(&facts.kind)
            .then(|| format!("a {} request", facts.kind.name())),
        Condition::DestinationIn(list) => {
            let dests = facts.destinations();
            let l = &policy.lists[list];
            // A refund to whoever executes goes to no listed address.
            let unknown = facts.movements.iter().any(|m| m.to_unknown());
            (!unknown && !dests.is_empty() && dests.iter().all(|d| l.addresses.contains(d))).then(
                || {
                    format!(
                        "every destination ({}) is in list {}",
                        dests.iter().map(short).collect::<Vec<_>>().join(", "),
                        policy.list_label(list)
                    )
                },
            )
        }
        Condition::DestinationNotIn(list) => {
            let l = &policy.lists[list];
            let out: Vec<String> = facts
                .movements
                .iter()
                .filter(|m| m.to_unknown() || !l.addresses.contains(&m.to))
                .map(|m| {
                    format!(
                        "{}{} to {} ({})",
                        if m.gas_refund {
                            "a gas refund of at most "
                        } else {
                            ""
                        },
                        describe_amount(policy, &m.asset, m.amount),
                        m.receiver(),
                        match m.source {
                            Source::Decoded => "in the payload",
                            Source::Simulated => "shown by the simulation",
                        }
                    )
                })
                .collect();
            (!out.is_empty()).then(|| {
                format!(
                    "{} not in list {}",
                    join_unique(out),
                    policy.list_label(list)
                )
            })
        }
        Condition::DestinationNew(cooling) => {
            let mut new = Vec::new();
            for d in facts.destinations() {
                let first = facts
                    .history
                    .outflows
                    .iter()
                    .filter(|o| o.to == d)
                    .map(|o| o.at)
                    .chain(
                        facts
                            .history
                            .first_paid
                            .iter()
                            .filter(|(a, _)| *a == d)
                            .map(|(_, at)| *at),
                    )
                    .min();
                match (facts.history.known, first) {
                    (false, _) => new.push(format!(
                        "{d} (no history of this wallet is known: counted as new)"
                    )),
                    (true, None) => new.push(format!("{d} (never paid by {wallet} before)")),
                    (true, Some(at)) if facts.now.saturating_sub(at) < cooling.as_secs() => new
                        .push(format!(
                            "{d} (first paid {} ago, less than the {} cooling period)",
                            format_duration(Duration::from_secs(facts.now.saturating_sub(at))),
                            format_duration(*cooling)
                        )),
                    _ => {}
                }
            }
            (!new.is_empty()).then(|| format!("new destination: {}", new.join("; ")))
        }
        Condition::AssetIn(keys) => {
            let out = facts.outflow_by_asset();
            (!out.is_empty() && out.keys().all(|a| keys.contains(&AssetKey::of(a)))).then(|| {
                format!(
                    "moves only {}",
                    out.iter()
                        .map(|(a, v)| describe_amount(policy, a, *v))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        }
        Condition::AssetNotIn(keys) => {
            let out: Vec<String> = facts
                .outflow_by_asset()
                .iter()
                .filter(|(a, _)| !keys.contains(&AssetKey::of(a)))
                .map(|(a, v)| describe_amount(policy, a, *v))
                .collect();
            (!out.is_empty())
                .then(|| format!("moves {} (not among the listed assets)", out.join(", ")))
        }
        Condition::AmountAbove { asset, amount } => {
            let total = facts
                .outflow_by_asset()
                .iter()
                .filter(|(a, _)| AssetKey::of(a) == *asset)
                .fold(U256::ZERO, |s, (_, v)| s.saturating_add(*v));
            let shown = match asset {
                AssetKey::Native => Asset::Native,
                AssetKey::Token(token) => Asset::Erc20 { token: *token },
            };
            (total > *amount).then(|| {
                format!(
                    "{} leaves {wallet}, above the limit of {}",
                    describe_amount(policy, &shown, total),
                    describe_amount(policy, &shown, *amount)
                )
            })
        }
        Condition::UsdAbove(limit) => {
            let out = facts.outflow_by_asset();
            match usd_of(policy, &out) {
                Ok(v) if v > *limit => {
                    Some(format!("{v} leaves {wallet}, above the limit of {limit}"))
                }
                Ok(_) => None,
                Err(unpriced) => Some(format!(
                    "{} has no price in the policy: counted as above the {limit} limit",
                    unpriced.join(", ")
                )),
            }
        }
        Condition::Velocity {
            window,
            per,
            asset,
            amount_above,
            usd_above,
            count_above,
        } => velocity(
            policy,
            facts,
            *window,
            *per,
            *asset,
            *amount_above,
            *usd_above,
            *count_above,
        ),
        Condition::CounterpartyRisk(level) => {
            let hits: Vec<String> = facts
                .counterparties
                .iter()
                .filter(|c| c.risk >= *level)
                .map(|c| {
                    format!(
                        "{} ({}) is {} risk: {}",
                        c.address,
                        c.roles.join(", "),
                        c.risk,
                        c.reasons
                            .iter()
                            .take(3)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join("; ")
                    )
                })
                .collect();
            (!hits.is_empty()).then(|| hits.join(" | "))
        }
        Condition::CounterpartyCategory(cats) => {
            let hits: Vec<String> = facts
                .counterparties
                .iter()
                .filter(|c| c.categories.iter().any(|k| cats.contains(k)))
                .map(|c| {
                    format!(
                        "{} ({}) is labelled {}",
                        c.address,
                        c.roles.join(", "),
                        c.categories
                            .iter()
                            .filter(|k| cats.contains(k))
                            .map(|k| k.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })
                .collect();
            (!hits.is_empty()).then(|| hits.join(" | "))
        }
        Condition::Call(kinds) => {
            let mut hits: Vec<String> = facts
                .call_facts
                .iter()
                .filter(|(f, _)| kinds.contains(f) && *f != CallFact::SafeGasRefund)
                .map(|(f, i)| describe_call(facts, *i, f.describe()))
                .collect();
            if kinds.contains(&CallFact::SafeGasRefund) {
                hits.extend(facts.refunds.iter().map(|r| r.reason(policy)));
            }
            (!hits.is_empty()).then(|| join_unique(hits))
        }
        Condition::NoCall(kinds) => (!facts.call_facts.iter().any(|(f, _)| kinds.contains(f)))
            .then(|| {
                format!(
                    "makes no {}",
                    kinds
                        .iter()
                        .map(|k| k.describe())
                        .collect::<Vec<_>>()
                        .join(", no ")
                )
            }),
        Condition::DelegatecallToUnlisted(list) => {
            let l = &policy.lists[list];
            let hits: Vec<String> = facts
                .delegatecall_targets()
                .into_iter()
                .filter(|(a, _)| !l.addresses.contains(a))
                .map(|(a, src)| {
                    format!(
                        "DELEGATECALL to {a}{}, which is not in list {}: its code would run with {wallet}'s storage and funds",
                        match src {
                            Source::Decoded => "",
                            Source::Simulated => " (seen in the simulation)",
                        },
                        policy.list_label(list)
                    )
                })
                .collect();
            (!hits.is_empty()).then(|| hits.join("; "))
        }
        Condition::ApprovalToUnlisted(list) => {
            let l = &policy.lists[list];
            let hits: Vec<String> = facts
                .grants
                .iter()
                .filter(|g| !l.addresses.contains(&g.spender))
                .map(|g| {
                    format!(
                        "{} lets {} spend {} of token {}, and {} is not in list {}",
                        g.how,
                        g.spender,
                        if g.unlimited {
                            "an unlimited amount".to_owned()
                        } else {
                            g.amount.to_string()
                        },
                        short(&g.token),
                        short(&g.spender),
                        policy.list_label(list)
                    )
                })
                .collect();
            (!hits.is_empty()).then(|| hits.join("; "))
        }
        Condition::UnknownCallToUnlisted(list) => {
            let l = &policy.lists[list];
            let hits: Vec<String> = facts
                .calls
                .iter()
                .filter(|c| c.action == Action::Unknown && !l.addresses.contains(&c.to))
                .map(|c| {
                    format!(
                        "a call Holdfast cannot decode (selector {}) to {}, which is not in list {}",
                        c.selector.map(|s| s.to_string()).unwrap_or_default(),
                        c.to,
                        policy.list_label(list)
                    )
                })
                .collect();
            (!hits.is_empty()).then(|| join_unique(hits))
        }
        Condition::CriticalWrite(want) => {
            let sim = facts.simulation.simulation()?;
            let writes: Vec<String> = sim
                .critical_writes
                .iter()
                .map(|w| {
                    format!(
                        "the simulation writes {} of {}: {} -> {}",
                        w.what.describe(),
                        w.account,
                        word(w.before),
                        word(w.after)
                    )
                })
                .collect();
            match (want, writes.is_empty()) {
                (true, false) => Some(writes.join("; ")),
                (false, true) => Some("the simulation writes no critical storage slot".into()),
                _ => None,
            }
        }
        Condition::HiddenCriticalWrite(want) => {
            let sim = facts.simulation.simulation()?;
            let announced = announced_slots(policy, facts);
            let hidden: Vec<String> = sim
                .critical_writes
                .iter()
                .filter(|w| !announced.contains(&w.what))
                .map(|w| {
                    format!(
                        "the simulation writes {} of {} ({} -> {}) and no call of the request says so",
                        w.what.describe(),
                        w.account,
                        word(w.before),
                        word(w.after)
                    )
                })
                .collect();
            match (want, hidden.is_empty()) {
                (true, false) => Some(hidden.join("; ")),
                (false, true) => {
                    Some("every critical write is announced by a call of the request".into())
                }
                _ => None,
            }
        }
        Condition::Simulation(states) => {
            let (fact, text) = match &facts.simulation {
                SimStatus::Unavailable => (
                    SimFact::Unavailable,
                    "it was not simulated (no node)".to_owned(),
                ),
                SimStatus::Failed { error } => {
                    (SimFact::Failed, format!("the simulation failed: {error}"))
                }
                SimStatus::TimedOut { budget_ms } => (
                    SimFact::TimedOut,
                    format!("the simulation ran past its {budget_ms} ms budget"),
                ),
                SimStatus::Ran(sim) => match &sim.outcome {
                    Outcome::Reverted { reason } if states.contains(&SimFact::Reverted) => (
                        SimFact::Reverted,
                        format!("the simulation reverts: {reason}"),
                    ),
                    Outcome::Halted { reason } if states.contains(&SimFact::Reverted) => {
                        (SimFact::Reverted, format!("the simulation halts: {reason}"))
                    }
                    _ if sim.safe.as_ref().is_some_and(|s| s.inner_failed)
                        && states.contains(&SimFact::InnerFailed) =>
                    {
                        (
                            SimFact::InnerFailed,
                            "the Safe's inner call fails in the simulation (ExecutionFailure)"
                                .to_owned(),
                        )
                    }
                    _ => (SimFact::Ran, format!("simulated on block {}", sim.block)),
                },
            };
            states.contains(&fact).then_some(text)
        }
        Condition::Finding(kinds) => {
            let hits: Vec<String> = facts
                .findings
                .iter()
                .filter(|f| kinds.contains(&f.kind))
                .map(|f| f.message.clone())
                .collect();
            (!hits.is_empty()).then(|| hits.join("; "))
        }
        Condition::TimeOutside {
            from,
            to,
            days,
            offset_minutes,
        } => {
            let local =
                i64::try_from(facts.now).unwrap_or(i64::MAX) + i64::from(*offset_minutes) * 60;
            let day = local.div_euclid(86_400);
            // 1970-01-01 was a Thursday (index 3, Monday first).
            let weekday = usize::try_from((day + 3).rem_euclid(7)).unwrap_or(0);
            let minute = u32::try_from(local.rem_euclid(86_400) / 60).unwrap_or(0);
            let in_hours = if from <= to {
                (*from..*to).contains(&minute)
            } else {
                minute >= *from || minute < *to
            };
            let inside = days[weekday] && in_hours;
            (!inside).then(|| {
                format!(
                    "requested at {:02}:{:02} on a {} (UTC{}{:02}:{:02}), outside business hours {:02}:{:02}-{:02}:{:02}",
                    minute / 60,
                    minute % 60,
                    ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"][weekday],
                    if *offset_minutes < 0 { '-' } else { '+' },
                    offset_minutes.abs() / 60,
                    offset_minutes.abs() % 60,
                    from / 60,
                    from % 60,
                    to / 60,
                    to % 60
                )
            })
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn velocity(
    policy: &Policy,
    facts: &Facts,
    window: Duration,
    per: Per,
    asset: Option<AssetKey>,
    amount_above: Option<U256>,
    usd_above: Option<Usd>,
    count_above: Option<u32>,
) -> Option<String> {
    if facts.history.truncated {
        return Some(format!(
            "the wallet has more outflows within {} than Holdfast reads for one decision: they cannot be summed, so this counts as above every velocity limit",
            format_duration(window)
        ));
    }
    let wanted = |a: &Asset| asset.is_none_or(|k| AssetKey::of(a) == k);
    let past: Vec<&PastOutflow> = facts
        .history
        .outflows
        .iter()
        .filter(|o| in_window(o, facts.now, window) && wanted(&o.asset))
        .collect();
    let groups: Vec<(Option<Address>, BTreeMap<Asset, U256>, usize)> = match per {
        Per::Wallet => {
            let mut sums: BTreeMap<Asset, U256> = BTreeMap::new();
            for o in &past {
                let e = sums.entry(o.asset).or_default();
                *e = e.saturating_add(o.amount);
            }
            let now: BTreeMap<Asset, U256> = facts
                .outflow_by_asset()
                .into_iter()
                .filter(|(a, _)| wanted(a))
                .collect();
            let moves_now = !now.is_empty();
            for (a, v) in now {
                let e = sums.entry(a).or_default();
                *e = e.saturating_add(v);
            }
            vec![(None, sums, past.len() + usize::from(moves_now))]
        }
        Per::Destination => facts
            .destinations()
            .into_iter()
            .map(|d| {
                let mut sums: BTreeMap<Asset, U256> = BTreeMap::new();
                let mut n = 0;
                for o in past.iter().filter(|o| o.to == d) {
                    let e = sums.entry(o.asset).or_default();
                    *e = e.saturating_add(o.amount);
                    n += 1;
                }
                let mut moves_now = false;
                for m in facts
                    .movements
                    .iter()
                    .filter(|m| m.to == d && wanted(&m.asset) && m.source == Source::Decoded)
                {
                    let e = sums.entry(m.asset).or_default();
                    *e = e.saturating_add(m.amount);
                    moves_now = true;
                }
                (Some(d), sums, n + usize::from(moves_now))
            })
            .collect(),
    };
    let span = format_duration(window);
    let history_note = if facts.history.known {
        ""
    } else {
        " (no history known: this request alone)"
    };
    for (dest, sums, count) in groups {
        let whom = dest.map_or_else(|| "by the wallet".to_owned(), |d| format!("to {d}"));
        if let Some(n) = count_above
            && count > n as usize
        {
            return Some(format!(
                "{count} transfers {whom} within {span}, above the limit of {n}{history_note}"
            ));
        }
        if let (Some(limit), Some(k)) = (amount_above, asset) {
            let total = sums
                .iter()
                .filter(|(a, _)| AssetKey::of(a) == k)
                .fold(U256::ZERO, |s, (_, v)| s.saturating_add(*v));
            if total > limit {
                let shown = match k {
                    AssetKey::Native => Asset::Native,
                    AssetKey::Token(token) => Asset::Erc20 { token },
                };
                return Some(format!(
                    "{} sent {whom} within {span} with this request, above the limit of {}{history_note}",
                    describe_amount(policy, &shown, total),
                    describe_amount(policy, &shown, limit)
                ));
            }
        }
        if let Some(limit) = usd_above {
            match usd_of(policy, &sums) {
                Ok(v) if v > limit => {
                    return Some(format!(
                        "{v} sent {whom} within {span} with this request, above the limit of {limit}{history_note}"
                    ));
                }
                Ok(_) => {}
                Err(unpriced) => {
                    return Some(format!(
                        "{} has no price in the policy: counted as above the {limit} velocity limit",
                        unpriced.join(", ")
                    ));
                }
            }
        }
    }
    None
}

/// The critical slots the decoded calls say they change.
fn announced_slots(policy: &Policy, facts: &Facts) -> Vec<CriticalSlot> {
    use CriticalSlot as S;
    let migrations = policy_list_or_builtin(policy, "safe:safe-migration");
    let mut out = Vec::new();
    for c in &facts.calls {
        match &c.action {
            Action::SafeConfig(change) => out.extend_from_slice(match change {
                SafeChange::AddOwner { .. }
                | SafeChange::RemoveOwner { .. }
                | SafeChange::SwapOwner { .. } => {
                    &[S::SafeOwners, S::SafeOwnerCount, S::SafeThreshold][..]
                }
                SafeChange::ChangeThreshold { .. } => &[S::SafeThreshold][..],
                SafeChange::EnableModule { .. } | SafeChange::DisableModule { .. } => {
                    &[S::SafeModules][..]
                }
                SafeChange::SetGuard { .. } => &[S::SafeGuard][..],
                SafeChange::SetModuleGuard { .. } => &[S::SafeModuleGuard][..],
                SafeChange::SetFallbackHandler { .. } => &[S::SafeFallbackHandler][..],
                SafeChange::ChangeMasterCopy { .. } => &[S::SafeSingleton][..],
            }),
            Action::Upgrade { .. } => {
                out.extend([S::Eip1967Implementation, S::Eip1967Beacon, S::SafeSingleton])
            }
            Action::ChangeAdmin { .. } => out.push(S::Eip1967Admin),
            _ => {}
        }
        if c.kind == crate::decode::CallKind::DelegateCall && migrations.contains(&c.to) {
            out.extend([S::SafeSingleton, S::SafeFallbackHandler]);
        }
    }
    out
}

fn policy_list_or_builtin(policy: &Policy, name: &str) -> Vec<Address> {
    match policy.lists.get(name) {
        Some(l) => l.addresses.iter().copied().collect(),
        None => crate::known::list(name)
            .map(<[Address]>::to_vec)
            .unwrap_or_default(),
    }
}

fn describe_call(facts: &Facts, i: usize, what: &str) -> String {
    match facts.calls.get(i) {
        Some(c) => format!(
            "{what}: {}{} from {} to {}",
            c.function.unwrap_or(if c.data.is_empty() {
                "transfer of value"
            } else {
                "unknown function"
            }),
            c.selector.map(|s| format!(" ({s})")).unwrap_or_default(),
            short(&c.from),
            c.to
        ),
        None => what.to_owned(),
    }
}

fn word(w: B256) -> String {
    if w[..12].iter().all(|b| *b == 0) && !w.is_zero() {
        Address::from_word(w).to_string()
    } else {
        let n = U256::from_be_bytes(w.0);
        if n < U256::from(1u64 << 53) {
            n.to_string()
        } else {
            w.to_string()
        }
    }
}

fn join_unique(mut v: Vec<String>) -> String {
    v.dedup();
    v.join("; ")
}
