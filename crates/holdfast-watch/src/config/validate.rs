//! Raw watch file → [`WatchConfig`]: every problem collected with its file, line and key.

use std::collections::{BTreeSet, HashSet};
use std::ops::Range;
use std::path::Path;

use alloy_primitives::Address;
use holdfast_guard::policy::AssetKey;
use holdfast_primitives::AssetKind;
use toml::Spanned;

use super::file::{RawAsset, RawChain, RawSet, RawWatch};
use super::{
    AddressSet, AssetConfig, ChainConfig, ConfigError, DEFAULT_CONFIRMATIONS, Diagnostic,
    MAX_WATCH_BYTES, Transport, Validated, WatchConfig,
};
use crate::alert::Severity;
use crate::sink::SinkSpec;

/// Parses an address: `0x` and 40 hex digits, all lower or all upper case, or mixed case that
/// is a valid EIP-55 checksum. The error says which of these failed.
pub fn parse_address(s: &str) -> Result<Address, String> {
    let t = s.trim();
    let hex = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X"));
    let Some(hex) = hex.filter(|h| h.len() == 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    else {
        return Err(format!(
            "{s:?} is not an address: expected 0x and 40 hex digits"
        ));
    };
    let lower = hex.bytes().all(|b| !b.is_ascii_uppercase());
    let upper = hex.bytes().all(|b| !b.is_ascii_lowercase());
    let parsed: Address = hex
        .parse()
        .map_err(|_| format!("{s:?} is not an address: expected 0x and 40 hex digits"))?;
    if lower || upper {
        return Ok(parsed);
    }
    if parsed.to_checksum(None)[2..] == *hex {
        Ok(parsed)
    } else {
        Err(format!(
            "{s:?} has a bad EIP-55 checksum (its mixed case does not match its digits): a \
             mistyped address? Write it in lower case only if you are sure of its digits"
        ))
    }
}

pub(super) struct Ctx<'a> {
    pub file: &'a str,
    text: &'a str,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Ctx<'_> {
    pub fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .bytes()
            .filter(|b| *b == b'\n')
            .count()
            + 1
    }

    fn diag(&self, span: Option<Range<usize>>, key: &str, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.to_owned(),
            line: span.map(|s| self.line_of(s.start)),
            key: Some(key.to_owned()),
            message,
        }
    }

    pub fn error_at(&mut self, span: Range<usize>, key: &str, message: impl Into<String>) {
        let d = self.diag(Some(span), key, message.into());
        self.errors.push(d);
    }

    pub fn error<T>(&mut self, s: &Spanned<T>, key: &str, message: impl Into<String>) {
        self.error_at(s.span(), key, message);
    }

    pub fn warn<T>(&mut self, s: &Spanned<T>, key: &str, message: impl Into<String>) {
        let d = self.diag(Some(s.span()), key, message.into());
        self.warnings.push(d);
    }

    pub fn address(&mut self, s: &Spanned<String>, key: &str) -> Option<Address> {
        match parse_address(s.get_ref()) {
            Ok(a) => Some(a),
            Err(m) => {
                self.error(s, key, m);
                None
            }
        }
    }
}

/// Validates a watch file's text; `file` names it in messages, `base` is the folder address
/// files are relative to.
pub fn validate(file: &str, text: &str, base: &Path) -> Result<Validated, ConfigError> {
    let mut cx = Ctx {
        file,
        text,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    if text.len() > MAX_WATCH_BYTES {
        cx.errors.push(Diagnostic {
            file: file.to_owned(),
            line: None,
            key: None,
            message: format!("{} bytes: the limit is {MAX_WATCH_BYTES}", text.len()),
        });
        return Err(invalid(cx));
    }
    let raw: RawWatch = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let line = e.span().map(|s| cx.line_of(s.start));
            cx.errors.push(Diagnostic {
                file: file.to_owned(),
                line,
                key: None,
                message: e.message().trim().to_owned(),
            });
            return Err(invalid(cx));
        }
    };
    let chains = chains(&mut cx, &raw.chains);
    let assets = assets(&mut cx, &raw.assets, &chains);
    let sets = sets(&mut cx, &raw.sets, base);
    let sinks = sinks(&mut cx, &raw.sinks);
    let rules = super::rules::rules(&mut cx, &raw.rules, &chains, &assets, &sets);
    let mut used = vec![false; sets.len()];
    for r in &rules {
        for t in &r.targets {
            used[*t] = true;
        }
        if let super::Params::Grant(g) = &r.params {
            for t in &g.allowlist {
                used[*t] = true;
            }
        }
    }
    for (i, s) in raw.sets.iter().enumerate() {
        if used.get(i) == Some(&false) {
            cx.warn(
                &s.name,
                &format!("set[{}]", s.name.get_ref()),
                "no rule targets this set: its addresses are not watched",
            );
        }
    }
    if !cx.errors.is_empty() {
        return Err(invalid(cx));
    }
    Ok(Validated {
        config: WatchConfig {
            source: file.to_owned(),
            chains,
            assets,
            sets,
            rules,
            sinks,
        },
        warnings: cx.warnings,
    })
}

fn invalid(cx: Ctx<'_>) -> ConfigError {
    ConfigError::Invalid {
        errors: cx.errors,
        warnings: cx.warnings,
    }
}

fn chains(cx: &mut Ctx<'_>, raw: &[RawChain]) -> Vec<ChainConfig> {
    let mut out: Vec<ChainConfig> = Vec::new();
    if raw.is_empty() {
        cx.errors.push(Diagnostic {
            file: cx.file.to_owned(),
            line: None,
            key: Some("chain".into()),
            message: "no [[chain]]: the watch needs at least one chain to follow".into(),
        });
    }
    for c in raw {
        let name = c.name.get_ref().trim().to_owned();
        let key = format!("chain[{name}]");
        if name.is_empty() {
            cx.error(&c.name, "chain.name", "a chain needs a name");
            continue;
        }
        if out.iter().any(|o| o.name == name) {
            cx.error(&c.name, &key, format!("chain {name:?} is defined twice"));
            continue;
        }
        let url = c.rpc.get_ref().trim();
        let transport = match url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()) {
            Some(s) if s == "http" || s == "https" => Transport::Http,
            Some(s) if s == "ws" || s == "wss" => Transport::WebSocket,
            _ => {
                cx.error(
                    &c.rpc,
                    &format!("{key}.rpc"),
                    format!(
                        "{:?} is not a node URL: expected http://, https://, ws:// or wss://",
                        holdfast_chain::source::redact(url)
                    ),
                );
                Transport::Http
            }
        };
        let explorer = c.explorer.as_ref().and_then(|e| {
            let v = e.get_ref().trim().trim_end_matches('/');
            if v.starts_with("https://") || v.starts_with("http://") {
                Some(v.to_owned())
            } else {
                cx.error(
                    e,
                    &format!("{key}.explorer"),
                    format!("{v:?} is not an explorer base URL: expected http:// or https://"),
                );
                None
            }
        });
        let confirmations = c
            .confirmations
            .as_ref()
            .map_or(DEFAULT_CONFIRMATIONS, |s| *s.get_ref());
        if let Some(s) = &c.confirmations
            && *s.get_ref() > 1_000
        {
            cx.error(
                s,
                &format!("{key}.confirmations"),
                format!("{confirmations} confirmations: at most 1000"),
            );
        }
        out.push(ChainConfig {
            name,
            rpc: url.to_owned(),
            transport,
            chain_id: c.chain_id,
            confirmations,
            start_block: c.start_block,
            explorer,
            first_look: c.first_look.unwrap_or(true),
        });
    }
    out
}

fn assets(cx: &mut Ctx<'_>, raw: &[RawAsset], chains: &[ChainConfig]) -> Vec<AssetConfig> {
    let mut out: Vec<AssetConfig> = Vec::new();
    for a in raw {
        let symbol = a.symbol.get_ref().trim().to_owned();
        let chain = a.chain.get_ref().trim().to_owned();
        let key = format!("asset[{symbol}]");
        if symbol.is_empty() {
            cx.error(&a.symbol, "asset.symbol", "an asset needs a symbol");
            continue;
        }
        if !chains.iter().any(|c| c.name == chain) {
            cx.error(
                &a.chain,
                &format!("{key}.chain"),
                format!(
                    "unknown chain {chain:?}: {}",
                    names(chains.iter().map(|c| &c.name))
                ),
            );
            continue;
        }
        let kind = match a.kind.as_ref().map(|k| k.get_ref().as_str()) {
            None if a.token.is_none() => AssetKind::Native,
            None | Some("erc20") => AssetKind::Erc20,
            Some("native") => AssetKind::Native,
            Some("erc721") => AssetKind::Erc721,
            Some("erc1155") => AssetKind::Erc1155,
            Some(other) => {
                if let Some(k) = &a.kind {
                    cx.error(
                        k,
                        &format!("{key}.kind"),
                        format!("unknown asset kind {other:?}: expected native, erc20, erc721 or erc1155"),
                    );
                }
                continue;
            }
        };
        let asset_key = match (&a.token, kind) {
            (None, AssetKind::Native) => AssetKey::Native,
            (Some(t), AssetKind::Native) => {
                cx.error(
                    t,
                    &format!("{key}.token"),
                    "the native coin has no token address",
                );
                continue;
            }
            (Some(t), _) => match cx.address(t, &format!("{key}.token")) {
                Some(addr) => AssetKey::Token(addr),
                None => continue,
            },
            (None, _) => {
                cx.error(
                    &a.symbol,
                    &format!("{key}.token"),
                    "a token asset needs its `token` address",
                );
                continue;
            }
        };
        let decimals = match (&a.decimals, kind) {
            (Some(d), _) if *d.get_ref() > 77 => {
                cx.error(
                    d,
                    &format!("{key}.decimals"),
                    format!("{} decimals: at most 77", d.get_ref()),
                );
                continue;
            }
            (Some(d), _) => *d.get_ref(),
            (None, AssetKind::Native) => 18,
            (None, AssetKind::Erc721 | AssetKind::Erc1155) => 0,
            (None, AssetKind::Erc20) => {
                cx.error(
                    &a.symbol,
                    &format!("{key}.decimals"),
                    "an ERC-20 asset needs its `decimals`",
                );
                continue;
            }
        };
        if out.iter().any(|o| o.chain == chain && o.symbol == symbol) {
            cx.error(
                &a.symbol,
                &key,
                format!("asset {symbol:?} is defined twice on chain {chain:?}"),
            );
            continue;
        }
        if out.iter().any(|o| o.chain == chain && o.key == asset_key) {
            cx.error(
                &a.symbol,
                &key,
                format!("chain {chain:?} already has an asset for this token"),
            );
            continue;
        }
        out.push(AssetConfig {
            symbol,
            chain,
            kind,
            key: asset_key,
            decimals,
        });
    }
    out
}

fn sets(cx: &mut Ctx<'_>, raw: &[RawSet], base: &Path) -> Vec<AddressSet> {
    let mut out: Vec<AddressSet> = Vec::new();
    for s in raw {
        let name = s.name.get_ref().trim().to_owned();
        let key = format!("set[{name}]");
        if name.is_empty() {
            cx.error(&s.name, "set.name", "a set needs a name");
        } else if out.iter().any(|o| o.name == name) {
            cx.error(&s.name, &key, format!("set {name:?} is defined twice"));
        }
        let mut addresses = BTreeSet::new();
        for a in &s.addresses {
            if let Some(addr) = cx.address(a, &format!("{key}.addresses")) {
                addresses.insert(addr);
            }
        }
        for f in &s.files {
            read_address_file(cx, f, &format!("{key}.files"), base, &mut addresses);
        }
        let mut safes_owned_by = BTreeSet::new();
        for a in &s.safes_owned_by {
            if let Some(addr) = cx.address(a, &format!("{key}.safes_owned_by")) {
                safes_owned_by.insert(addr);
            }
        }
        let safes_from_block = s.safes_from_block.as_ref().map(|b| {
            if s.safes_owned_by.is_empty() {
                cx.error(
                    b,
                    &format!("{key}.safes_from_block"),
                    "safes_from_block finds the Safes of `safes_owned_by`, which this set does not have",
                );
            }
            *b.get_ref()
        });
        out.push(AddressSet {
            name,
            line: cx.line_of(s.name.span().start),
            addresses,
            safes_owned_by,
            safes_from_block,
        });
    }
    out
}

fn read_address_file(
    cx: &mut Ctx<'_>,
    f: &Spanned<String>,
    key: &str,
    base: &Path,
    into: &mut BTreeSet<Address>,
) {
    let path = base.join(f.get_ref());
    let text = match super::read_bounded(&path) {
        Ok(t) => t,
        Err(e) => {
            cx.error(f, key, e.to_string());
            return;
        }
    };
    for (i, line) in text.lines().enumerate() {
        let l = line.split('#').next().unwrap_or("").trim();
        if l.is_empty() {
            continue;
        }
        match parse_address(l) {
            Ok(a) => {
                into.insert(a);
            }
            Err(m) => cx.error(f, key, format!("{}:{}: {m}", f.get_ref(), i + 1)),
        }
    }
}

fn sinks(cx: &mut Ctx<'_>, raw: &[Spanned<SinkSpec>]) -> Vec<SinkSpec> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for s in raw {
        let spec = s.get_ref();
        let key = format!("sink[{}]", spec.name());
        if !seen.insert(spec.name().to_owned()) {
            cx.error(s, &key, format!("sink {:?} is defined twice", spec.name()));
        }
        if !crate::sink::keys_a_cursor(spec.name()) {
            cx.error(
                s,
                &format!("{key}.name"),
                format!(
                    "bad sink name {:?}: expected {}",
                    spec.name(),
                    crate::sink::SINK_NAME_EXPECTED
                ),
            );
        }
        let min = match spec {
            SinkSpec::Webhook { min_severity, .. }
            | SinkSpec::Slack { min_severity, .. }
            | SinkSpec::Email { min_severity, .. }
            | SinkSpec::Stdout { min_severity, .. } => min_severity,
        };
        if let Some(m) = min
            && Severity::parse(m).is_none()
        {
            cx.error(
                s,
                &format!("{key}.min_severity"),
                format!(
                    "unknown severity {m:?}: {}",
                    names(Severity::ALL.iter().map(|s| s.name()))
                ),
            );
        }
        out.push(spec.clone());
    }
    out
}

/// `expected one of a, b, c`.
pub(super) fn names<S: AsRef<str>>(it: impl IntoIterator<Item = S>) -> String {
    let v: Vec<String> = it.into_iter().map(|s| s.as_ref().to_owned()).collect();
    if v.is_empty() {
        "none is defined".into()
    } else {
        format!("expected one of {}", v.join(", "))
    }
}
