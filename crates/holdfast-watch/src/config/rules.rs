//! `[[rule]]`s: the detector, its targets and responses, and the detector's own parameters
//! (a parameter of another detector is an error, so a misplaced key does not silently do
//! nothing), with the checks that a rule can fire at all.

use std::collections::{BTreeMap, BTreeSet};

use alloy_primitives::U256;
use holdfast_guard::policy::AssetKey;
use holdfast_guard::units::{parse_duration, parse_units};
use holdfast_primitives::{AssetKind, Category};
use toml::Spanned;

use super::file::{RawDrain, RawRule, RawVelocity};
use super::validate::{Ctx, names};
use super::{
    AddressSet, AssetConfig, ChainConfig, CounterpartyParams, CriticalChange,
    DEFAULT_COUNTERPARTY_CATEGORIES, DEFAULT_LOOKALIKE, DEFAULT_TRACE_HOPS, Direction, Drain,
    GrantParams, MAX_DRAIN_BLOCKS, MAX_LOOKALIKE_CHARS, OutflowParams, Params, PoisoningParams,
    Response, Rule, StorageParams, Threshold, Velocity,
};
use crate::alert::{DetectorKind, Severity};

pub(super) fn rules(
    cx: &mut Ctx<'_>,
    raw: &[RawRule],
    chains: &[ChainConfig],
    assets: &[AssetConfig],
    sets: &[AddressSet],
) -> Vec<Rule> {
    let mut out: Vec<Rule> = Vec::new();
    for r in raw {
        let name = r.name.get_ref().trim().to_owned();
        let key = format!("rule[{name}]");
        if name.is_empty() {
            cx.error(&r.name, "rule.name", "a rule needs a name");
            continue;
        }
        if out.iter().any(|o| o.name == name) {
            cx.error(&r.name, &key, format!("rule {name:?} is defined twice"));
            continue;
        }
        let errors_before = cx.errors.len();
        let Some(detector) = DetectorKind::parse(r.detector.get_ref()) else {
            cx.error(
                &r.detector,
                &format!("{key}.detector"),
                format!(
                    "unknown detector {:?}: {}",
                    r.detector.get_ref(),
                    names(DetectorKind::ALL.iter().map(|d| d.name()))
                ),
            );
            continue;
        };
        let rule_chains = r.chains.as_ref().map(|list| {
            list.iter()
                .filter_map(|c| {
                    let n = c.get_ref().trim();
                    if chains.iter().any(|k| k.name == n) {
                        Some(n.to_owned())
                    } else {
                        cx.error(
                            c,
                            &format!("{key}.chains"),
                            format!(
                                "unknown chain {n:?}: {}",
                                names(chains.iter().map(|c| &c.name))
                            ),
                        );
                        None
                    }
                })
                .collect::<Vec<_>>()
        });
        let on_chain = |c: &str| {
            rule_chains
                .as_ref()
                .is_none_or(|l| l.iter().any(|n| n == c))
        };
        let targets = targets(cx, r, &key, detector, sets);
        let severity = match &r.severity {
            None => Severity::default(),
            Some(s) => Severity::parse(s.get_ref()).unwrap_or_else(|| {
                cx.error(
                    s,
                    &format!("{key}.severity"),
                    format!(
                        "unknown severity {:?}: {}",
                        s.get_ref(),
                        names(Severity::ALL.iter().map(|s| s.name()))
                    ),
                );
                Severity::default()
            }),
        };
        let responses = responses(cx, r, &key);
        let scope = Scope {
            key: &key,
            assets,
            on_chain: &on_chain,
        };
        let params = params(cx, r, detector, &scope, sets);
        if cx.errors.len() > errors_before {
            continue;
        }
        out.push(Rule {
            name,
            line: cx.line_of(r.name.span().start),
            description: r.description.clone(),
            detector,
            targets,
            chains: rule_chains,
            severity,
            responses,
            params,
        });
    }
    check_deposit_rules(cx, raw, &out);
    out
}

fn targets(
    cx: &mut Ctx<'_>,
    r: &RawRule,
    key: &str,
    detector: DetectorKind,
    sets: &[AddressSet],
) -> Vec<usize> {
    let key = format!("{key}.targets");
    let Some(list) = &r.targets else {
        if detector != DetectorKind::TaintedDeposit {
            cx.error(
                &r.name,
                &key,
                "a rule needs `targets` (set names): without them it can never fire",
            );
        }
        return Vec::new();
    };
    if list.get_ref().is_empty() && detector != DetectorKind::TaintedDeposit {
        cx.error(list, &key, "no targets: the rule can never fire");
    }
    let mut out = Vec::new();
    for t in list.get_ref() {
        match sets.iter().position(|s| s.name == *t.get_ref()) {
            Some(i) => {
                let s = &sets[i];
                if s.addresses.is_empty() && s.safes_owned_by.is_empty() {
                    cx.error(
                        t,
                        &key,
                        format!("set {:?} is empty: the rule can never fire on it", s.name),
                    );
                }
                if !out.contains(&i) {
                    out.push(i);
                }
            }
            None => cx.error(
                t,
                &key,
                format!(
                    "unknown set {:?}: {}",
                    t.get_ref(),
                    names(sets.iter().map(|s| &s.name))
                ),
            ),
        }
    }
    out
}

fn responses(cx: &mut Ctx<'_>, r: &RawRule, key: &str) -> Vec<Response> {
    let mut out: Vec<Response> = Vec::new();
    for s in &r.responses {
        let resp = match s.get_ref().as_str() {
            "freeze" => Response::Freeze,
            "label" => Response::Label,
            "notify" => Response::Notify,
            "trace" => trace(cx, r, key),
            other => {
                cx.error(
                    s,
                    &format!("{key}.responses"),
                    format!("unknown response {other:?}: {}", names(Response::NAMES)),
                );
                continue;
            }
        };
        if out.iter().any(|o| o.name() == resp.name()) {
            cx.error(
                s,
                &format!("{key}.responses"),
                format!("response {:?} listed twice", resp.name()),
            );
            continue;
        }
        out.push(resp);
    }
    if let Some(t) = &r.trace
        && !out.iter().any(|o| matches!(o, Response::Trace { .. }))
    {
        cx.error(
            t,
            &format!("{key}.trace"),
            "`trace` parameters without \"trace\" in `responses`",
        );
    }
    out
}

fn trace(cx: &mut Ctx<'_>, r: &RawRule, key: &str) -> Response {
    let (mut policies, mut hops, mut deposit_rule) = (Vec::new(), DEFAULT_TRACE_HOPS, None);
    if let Some(t) = &r.trace {
        let t = t.get_ref();
        if t.policy.is_some() && t.policies.is_some() {
            cx.error_at(
                r.trace.as_ref().map_or(r.name.span(), |t| t.span()),
                &format!("{key}.trace"),
                "`policy` and `policies` both given: name one policy or a list",
            );
        }
        for p in t.policy.iter().chain(t.policies.iter().flatten()) {
            match p.get_ref().parse::<holdfast_trace::Policy>() {
                Ok(v) if !policies.contains(&v) => policies.push(v),
                Ok(_) => {}
                Err(_) => cx.error(
                    p,
                    &format!("{key}.trace.policy"),
                    format!(
                        "unknown taint policy {:?}: {}",
                        p.get_ref(),
                        names(holdfast_trace::Policy::ALL.iter().map(|p| p.name()))
                    ),
                ),
            }
        }
        if let Some(h) = &t.hops {
            hops = *h.get_ref();
            if hops == 0 || hops > holdfast_trace::policy::MAX_HOPS {
                cx.error(
                    h,
                    &format!("{key}.trace.hops"),
                    format!(
                        "{hops} hops: expected 1 to {}",
                        holdfast_trace::policy::MAX_HOPS
                    ),
                );
            }
        }
        deposit_rule = t
            .deposit_rule
            .as_ref()
            .map(|d| d.get_ref().trim().to_owned());
    }
    if policies.is_empty() {
        policies.push(holdfast_trace::Policy::Haircut);
    }
    Response::Trace {
        policies,
        hops,
        deposit_rule,
    }
}

/// A `trace` response's `deposit_rule` must name a `tainted_deposit` rule.
fn check_deposit_rules(cx: &mut Ctx<'_>, raw: &[RawRule], rules: &[Rule]) {
    for r in raw {
        let Some(d) = r
            .trace
            .as_ref()
            .and_then(|t| t.get_ref().deposit_rule.as_ref())
        else {
            continue;
        };
        let name = d.get_ref().trim();
        match rules.iter().find(|x| x.name == name) {
            Some(x) if x.detector == DetectorKind::TaintedDeposit => {}
            Some(x) => cx.error(
                d,
                &format!("rule[{}].trace.deposit_rule", r.name.get_ref().trim()),
                format!(
                    "rule {name:?} has detector {}: expected a tainted_deposit rule",
                    x.detector.name()
                ),
            ),
            None => cx.error(
                d,
                &format!("rule[{}].trace.deposit_rule", r.name.get_ref().trim()),
                format!(
                    "unknown rule {name:?}: {}",
                    names(
                        rules
                            .iter()
                            .filter(|x| x.detector == DetectorKind::TaintedDeposit)
                            .map(|x| &x.name)
                    )
                ),
            ),
        }
    }
}

struct Scope<'a> {
    key: &'a str,
    assets: &'a [AssetConfig],
    on_chain: &'a dyn Fn(&str) -> bool,
}

/// The parameter keys each detector accepts (beyond the common ones).
fn allowed(detector: DetectorKind) -> &'static [&'static str] {
    match detector {
        DetectorKind::CriticalStorage => &["changes"],
        DetectorKind::Outflow => &[
            "amount_above",
            "any_nft",
            "velocity",
            "drain",
            "new_destination",
            "whole_balance",
        ],
        DetectorKind::Grant => &["allowlist", "unlimited_only"],
        DetectorKind::Counterparty => &["categories", "direction"],
        DetectorKind::Poisoning => &["prefix", "suffix", "zero_value", "fake_tokens", "lookalike"],
        DetectorKind::TaintedDeposit => &[],
    }
}

/// Every detector parameter present in the rule, with its span.
fn present(r: &RawRule) -> Vec<(&'static str, std::ops::Range<usize>)> {
    fn s<T>(
        name: &'static str,
        v: &Option<Spanned<T>>,
    ) -> Option<(&'static str, std::ops::Range<usize>)> {
        v.as_ref().map(|v| (name, v.span()))
    }
    fn l<T>(
        name: &'static str,
        v: &Option<Vec<Spanned<T>>>,
        fallback: std::ops::Range<usize>,
    ) -> Option<(&'static str, std::ops::Range<usize>)> {
        v.as_ref()
            .map(|v| (name, v.first().map_or(fallback, |f| f.span())))
    }
    let fb = r.name.span();
    [
        l("changes", &r.changes, fb.clone()),
        s("amount_above", &r.amount_above),
        s("any_nft", &r.any_nft),
        s("velocity", &r.velocity),
        s("drain", &r.drain),
        s("new_destination", &r.new_destination),
        s("whole_balance", &r.whole_balance),
        l("allowlist", &r.allowlist, fb.clone()),
        s("unlimited_only", &r.unlimited_only),
        l("categories", &r.categories, fb.clone()),
        s("direction", &r.direction),
        s("prefix", &r.prefix),
        s("suffix", &r.suffix),
        s("zero_value", &r.zero_value),
        s("fake_tokens", &r.fake_tokens),
        s("lookalike", &r.lookalike),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn params(
    cx: &mut Ctx<'_>,
    r: &RawRule,
    detector: DetectorKind,
    scope: &Scope<'_>,
    sets: &[AddressSet],
) -> Params {
    let key = scope.key;
    for (name, span) in present(r) {
        if !allowed(detector).contains(&name) {
            let owner = DetectorKind::ALL
                .into_iter()
                .find(|d| allowed(*d).contains(&name))
                .map_or("another detector", |d| d.name());
            cx.error_at(
                span,
                &format!("{key}.{name}"),
                format!(
                    "`{name}` is a parameter of detector {owner}, not of {}",
                    detector.name()
                ),
            );
        }
    }
    let flag =
        |v: &Option<Spanned<bool>>, default: bool| v.as_ref().map_or(default, |b| *b.get_ref());
    match detector {
        DetectorKind::CriticalStorage => {
            let changes = match &r.changes {
                None => CriticalChange::ALL.into_iter().collect(),
                Some(list) => {
                    let mut set = BTreeSet::new();
                    for c in list {
                        match CriticalChange::parse(c.get_ref()) {
                            Some(v) => {
                                set.insert(v);
                            }
                            None => cx.error(
                                c,
                                &format!("{key}.changes"),
                                format!(
                                    "unknown change {:?}: {}",
                                    c.get_ref(),
                                    names(CriticalChange::ALL.iter().map(|c| c.name()))
                                ),
                            ),
                        }
                    }
                    if set.is_empty() {
                        cx.error_at(
                            r.name.span(),
                            &format!("{key}.changes"),
                            "no changes listed: the rule can never fire",
                        );
                    }
                    set
                }
            };
            Params::CriticalStorage(StorageParams { changes })
        }
        DetectorKind::Outflow => {
            let amount_above = r
                .amount_above
                .as_ref()
                .map(|m| thresholds(cx, m, &format!("{key}.amount_above"), scope))
                .unwrap_or_default();
            let velocity = r.velocity.as_ref().map(|v| velocity(cx, v, scope));
            let drain = r.drain.as_ref().map(|d| drain(cx, d, scope));
            let p = OutflowParams {
                amount_above,
                any_nft: flag(&r.any_nft, false),
                velocity: velocity.flatten(),
                drain: drain.flatten(),
                new_destination: flag(&r.new_destination, false),
                whole_balance: flag(&r.whole_balance, false),
            };
            if r.amount_above.is_none()
                && r.velocity.is_none()
                && r.drain.is_none()
                && !p.any_nft
                && !p.new_destination
                && !p.whole_balance
            {
                cx.error_at(
                    r.name.span(),
                    key,
                    "an outflow rule with none of amount_above, any_nft, velocity, drain, \
                     new_destination, whole_balance can never fire",
                );
            }
            Params::Outflow(p)
        }
        DetectorKind::Grant => {
            let mut allowlist = Vec::new();
            for s in r.allowlist.iter().flatten() {
                match sets.iter().position(|x| x.name == *s.get_ref()) {
                    Some(i) => allowlist.push(i),
                    None => cx.error(
                        s,
                        &format!("{key}.allowlist"),
                        format!(
                            "unknown set {:?}: {}",
                            s.get_ref(),
                            names(sets.iter().map(|s| &s.name))
                        ),
                    ),
                }
            }
            Params::Grant(GrantParams {
                allowlist,
                unlimited_only: flag(&r.unlimited_only, false),
            })
        }
        DetectorKind::Counterparty => {
            let categories = match &r.categories {
                None => DEFAULT_COUNTERPARTY_CATEGORIES.to_vec(),
                Some(list) => {
                    let mut v = Vec::new();
                    for c in list {
                        match c.get_ref().parse::<Category>() {
                            Ok(cat) if !v.contains(&cat) => v.push(cat),
                            Ok(_) => {}
                            Err(e) => cx.error(c, &format!("{key}.categories"), e.to_string()),
                        }
                    }
                    if list.is_empty() {
                        cx.error_at(
                            r.name.span(),
                            &format!("{key}.categories"),
                            "no categories: the rule can never fire",
                        );
                    }
                    v
                }
            };
            let direction = match r.direction.as_ref().map(|d| (d, d.get_ref().as_str())) {
                None => Direction::Both,
                Some((_, "in")) => Direction::In,
                Some((_, "out")) => Direction::Out,
                Some((_, "both")) => Direction::Both,
                Some((d, other)) => {
                    cx.error(
                        d,
                        &format!("{key}.direction"),
                        format!("unknown direction {other:?}: expected in, out or both"),
                    );
                    Direction::Both
                }
            };
            Params::Counterparty(CounterpartyParams {
                categories,
                direction,
            })
        }
        DetectorKind::Poisoning => {
            let prefix = r
                .prefix
                .as_ref()
                .map_or(DEFAULT_LOOKALIKE.0, |p| *p.get_ref());
            let suffix = r
                .suffix
                .as_ref()
                .map_or(DEFAULT_LOOKALIKE.1, |p| *p.get_ref());
            let p = PoisoningParams {
                prefix,
                suffix,
                zero_value: flag(&r.zero_value, true),
                fake_tokens: flag(&r.fake_tokens, true),
                lookalike: flag(&r.lookalike, true),
            };
            if !p.zero_value && !p.fake_tokens && !p.lookalike {
                cx.error_at(
                    r.name.span(),
                    key,
                    "zero_value, fake_tokens and lookalike all off: the rule can never fire",
                );
            }
            if p.lookalike {
                let span = r
                    .prefix
                    .as_ref()
                    .or(r.suffix.as_ref())
                    .map_or(r.name.span(), |s| s.span());
                if prefix + suffix == 0 {
                    cx.error_at(
                        span,
                        &format!("{key}.prefix"),
                        "prefix and suffix are both 0: every address would look alike",
                    );
                } else if prefix + suffix > MAX_LOOKALIKE_CHARS {
                    cx.error_at(
                        span,
                        &format!("{key}.prefix"),
                        format!(
                            "prefix + suffix = {}: at most {MAX_LOOKALIKE_CHARS} characters",
                            prefix + suffix
                        ),
                    );
                } else if prefix + suffix < 6 {
                    let d = super::Diagnostic {
                        file: cx.file.to_owned(),
                        line: Some(cx.line_of(span.start)),
                        key: Some(format!("{key}.prefix")),
                        message: format!(
                            "prefix + suffix = {}: fewer than 6 characters match many unrelated addresses (false alerts)",
                            prefix + suffix
                        ),
                    };
                    cx.warnings.push(d);
                }
            }
            Params::Poisoning(p)
        }
        DetectorKind::TaintedDeposit => Params::TaintedDeposit,
    }
}

/// `{ SYMBOL = "amount" }` → thresholds on every chain of the rule that has the symbol.
fn thresholds(
    cx: &mut Ctx<'_>,
    map: &Spanned<BTreeMap<String, Spanned<String>>>,
    key: &str,
    scope: &Scope<'_>,
) -> Vec<Threshold> {
    let mut out = Vec::new();
    if map.get_ref().is_empty() {
        cx.error(map, key, "no assets: the threshold can never be crossed");
    }
    for (symbol, amount) in map.get_ref() {
        let matching: Vec<&AssetConfig> = scope
            .assets
            .iter()
            .filter(|a| a.symbol == *symbol && (scope.on_chain)(&a.chain))
            .collect();
        if matching.is_empty() {
            cx.error(
                amount,
                &format!("{key}.{symbol}"),
                format!(
                    "unknown asset {symbol:?} on the rule's chains: {}",
                    names(
                        scope
                            .assets
                            .iter()
                            .filter(|a| (scope.on_chain)(&a.chain))
                            .map(|a| &a.symbol)
                    )
                ),
            );
            continue;
        }
        for a in matching {
            match parse_units(amount.get_ref(), a.decimals) {
                Ok(v) if v == U256::MAX => cx.error(
                    amount,
                    &format!("{key}.{symbol}"),
                    "no amount can exceed this threshold: the rule can never fire",
                ),
                Ok(v) => out.push(Threshold {
                    chain: a.chain.clone(),
                    asset: a.key,
                    symbol: a.symbol.clone(),
                    amount: v,
                }),
                Err(e) => cx.error(
                    amount,
                    &format!("{key}.{symbol}"),
                    format!(
                        "{:?} is not an amount of {symbol} ({} decimals): expected {}",
                        e.value, a.decimals, e.expected
                    ),
                ),
            }
        }
    }
    out
}

fn velocity(cx: &mut Ctx<'_>, v: &Spanned<RawVelocity>, scope: &Scope<'_>) -> Option<Velocity> {
    let key = format!("{}.velocity", scope.key);
    let raw = v.get_ref();
    let window = match parse_duration(raw.window.get_ref()) {
        Ok(d) if d.as_secs() == 0 => {
            cx.error(
                &raw.window,
                &format!("{key}.window"),
                "a window of 0: the rule can never fire",
            );
            return None;
        }
        Ok(d) => d.as_secs(),
        Err(e) => {
            cx.error(
                &raw.window,
                &format!("{key}.window"),
                format!("{:?}: expected {}", e.value, e.expected),
            );
            return None;
        }
    };
    let amount_above = raw
        .amount_above
        .as_ref()
        .map(|m| thresholds(cx, m, &format!("{key}.amount_above"), scope))
        .unwrap_or_default();
    let count_above = raw.count_above.as_ref().map(|c| *c.get_ref());
    if raw.amount_above.is_none() && count_above.is_none() {
        cx.error(
            v,
            &key,
            "a velocity needs `amount_above` or `count_above`: it can never fire",
        );
    }
    if let Some(c) = &raw.count_above
        && *c.get_ref() >= super::super::detect::MAX_WINDOW_ENTRIES as u32
    {
        cx.error(
            c,
            &format!("{key}.count_above"),
            format!(
                "the state keeps at most {} outflows per window",
                super::super::detect::MAX_WINDOW_ENTRIES
            ),
        );
    }
    Some(Velocity {
        window_secs: window,
        amount_above,
        count_above,
    })
}

fn drain(cx: &mut Ctx<'_>, d: &Spanned<RawDrain>, scope: &Scope<'_>) -> Option<Drain> {
    let key = format!("{}.drain", scope.key);
    let raw = d.get_ref();
    let pct = *raw.percent.get_ref();
    if !(pct > 0.0 && pct < 100.0) {
        cx.error(
            &raw.percent,
            &format!("{key}.percent"),
            format!("{pct}: expected more than 0 and less than 100 (a loss of more than 100 % can never happen)"),
        );
        return None;
    }
    let blocks = *raw.blocks.get_ref();
    if blocks == 0 || blocks > MAX_DRAIN_BLOCKS {
        cx.error(
            &raw.blocks,
            &format!("{key}.blocks"),
            format!(
                "{blocks} blocks: expected 1 to {MAX_DRAIN_BLOCKS} (a window of 0 can never fire)"
            ),
        );
        return None;
    }
    let (mut native, mut tokens) = (raw.assets.is_none(), Vec::new());
    for s in raw.assets.iter().flatten() {
        let matching: Vec<&AssetConfig> = scope
            .assets
            .iter()
            .filter(|a| a.symbol == *s.get_ref() && (scope.on_chain)(&a.chain))
            .collect();
        if matching.is_empty() {
            cx.error(
                s,
                &format!("{key}.assets"),
                format!("unknown asset {:?} on the rule's chains", s.get_ref()),
            );
        }
        for a in matching {
            match (a.kind, a.key) {
                (AssetKind::Native, _) => native = true,
                (AssetKind::Erc20, AssetKey::Token(t)) => tokens.push((a.chain.clone(), t)),
                _ => cx.error(
                    s,
                    &format!("{key}.assets"),
                    format!(
                        "{:?} is an NFT: a drain is measured on fungible balances",
                        a.symbol
                    ),
                ),
            }
        }
    }
    Some(Drain {
        basis_points: (pct * 100.0).round() as u32,
        blocks,
        native,
        tokens,
    })
}
