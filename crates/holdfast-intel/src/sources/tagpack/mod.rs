//! GraphSense TagPacks (YAML): a header whose fields every tag inherits, then `tags:`.
//! Schema: graphsense-tagpack-tool `tagpack_schema.yaml`; confidence scale `confidence.csv`;
//! the words of `abuse`, `category` and `concepts` in [`vocabulary`] (an unknown word is an
//! error naming the tag and the word).

mod vocabulary;

use std::collections::BTreeMap;

use holdfast_primitives::{Category, Chain, Confidence, Date};

use crate::record::LabelRecord;

use super::SourceError;

/// Fields a TagPack header and a tag may both carry (the tag's value wins).
#[derive(Debug, Default, Clone, serde::Deserialize)]
struct Common {
    label: Option<String>,
    source: Option<String>,
    currency: Option<String>,
    network: Option<String>,
    category: Option<String>,
    abuse: Option<String>,
    actor: Option<String>,
    confidence: Option<String>,
    lastmod: Option<serde_yaml::Value>,
    concepts: Option<Vec<String>>,
}

#[derive(Debug, serde::Deserialize)]
struct Pack {
    title: Option<String>,
    #[serde(flatten)]
    common: Common,
    #[serde(default)]
    tags: Vec<Tag>,
    // Known header fields that carry no label information.
    #[serde(flatten)]
    _rest: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Debug, serde::Deserialize)]
struct Tag {
    address: Option<serde_yaml::Value>,
    #[serde(flatten)]
    common: Common,
    #[serde(flatten)]
    _rest: BTreeMap<String, serde_yaml::Value>,
}

/// What a TagPack yielded: labels, and tags that were skipped with the reason.
#[derive(Debug, Default)]
pub struct TagPackLabels {
    pub records: Vec<LabelRecord>,
    /// The tag each record came from (1-based, in the pack's `tags:` order).
    pub tags: Vec<usize>,
    /// Tags on chains Holdfast has no address format for (currency → count).
    pub unsupported: BTreeMap<String, usize>,
}

/// Reads a TagPack. `source` names it in every label (e.g. `graphsense:lazarus2`).
pub fn parse(text: &str, source: &str) -> Result<TagPackLabels, SourceError> {
    let pack: Pack = serde_yaml::from_str(text).map_err(|e| SourceError::Yaml {
        source_name: source.to_owned(),
        message: e.to_string(),
    })?;
    let mut out = TagPackLabels::default();
    for (i, tag) in pack.tags.iter().enumerate() {
        let address = match &tag.address {
            Some(serde_yaml::Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
            Some(serde_yaml::Value::Number(n)) => n.to_string(),
            _ => {
                return Err(SourceError::Tag {
                    source_name: source.to_owned(),
                    tag: i + 1,
                    field: "address",
                    message: "every tag needs an address".into(),
                });
            }
        };
        let h = &pack.common;
        let t = &tag.common;
        let pick = |a: &Option<String>, b: &Option<String>| {
            a.clone()
                .or_else(|| b.clone())
                .filter(|s| !s.trim().is_empty())
        };
        let currency = pick(&t.network, &h.network).or_else(|| pick(&t.currency, &h.currency));
        let chain = match currency.as_deref().map(currency_chain) {
            Some(CurrencyChain::Chain(c)) => Some(c),
            Some(CurrencyChain::ByFormat) | None => None,
            Some(CurrencyChain::Unsupported) => {
                // An EVM-format address on an EVM chain we do not name is still an EVM address.
                if !is_evm_shape(&address) {
                    *out.unsupported
                        .entry(currency.unwrap_or_default())
                        .or_default() += 1;
                    continue;
                }
                None
            }
        };
        let actor = pick(&t.actor, &h.actor);
        let abuse = pick(&t.abuse, &h.abuse);
        let category_word = pick(&t.category, &h.category);
        let label = pick(&t.label, &h.label).or_else(|| pack.title.clone());
        let concepts = tag
            .common
            .concepts
            .as_ref()
            .or(pack.common.concepts.as_ref())
            .map_or(&[][..], Vec::as_slice);
        let category = category_of(
            Words {
                abuse: abuse.as_deref(),
                category: category_word.as_deref(),
                concepts,
            },
            actor.as_deref(),
            label.as_deref(),
            pack.title.as_deref(),
        )
        .map_err(|e| SourceError::Tag {
            source_name: source.to_owned(),
            tag: i + 1,
            field: e.field,
            message: e.to_string(),
        })?;
        let confidence = match pick(&t.confidence, &h.confidence) {
            Some(c) => c.parse::<Confidence>().map_err(|e| SourceError::Tag {
                source_name: source.to_owned(),
                tag: i + 1,
                field: "confidence",
                message: e.to_string(),
            })?,
            None => Confidence::UNKNOWN,
        };
        // A date, optionally with a time after it (`2023-08-16 12:18:52.619444` in a real
        // pack); anything else is an error rather than a listing date quietly lost.
        let lastmod = match t.lastmod.as_ref().or(h.lastmod.as_ref()) {
            None => None,
            Some(v) => Some(
                match v {
                    serde_yaml::Value::String(s) => s
                        .get(..10)
                        .filter(|_| {
                            s.len() == 10 || s.as_bytes()[10] == b' ' || s.as_bytes()[10] == b'T'
                        })
                        .and_then(|d| d.parse::<Date>().ok()),
                    _ => None,
                }
                .ok_or_else(|| SourceError::Tag {
                    source_name: source.to_owned(),
                    tag: i + 1,
                    field: "lastmod",
                    message: format!(
                        "{} is not a date (YYYY-MM-DD, optionally followed by a time)",
                        serde_yaml::to_string(v).unwrap_or_default().trim()
                    ),
                })?,
            ),
        };
        let mut r = LabelRecord::new(address, source, category, confidence);
        r.chain = chain;
        r.actor = actor;
        r.name = label;
        r.reference = pick(&t.source, &h.source);
        r.listed_on = lastmod.filter(|_| category == Category::Sanctioned);
        out.records.push(r);
        out.tags.push(i + 1);
    }
    Ok(out)
}

enum CurrencyChain {
    Chain(Chain),
    /// A token that lives on several chains (USDT, USDC): the address format decides.
    ByFormat,
    Unsupported,
}

fn currency_chain(currency: &str) -> CurrencyChain {
    match currency.trim().to_ascii_uppercase().as_str() {
        "USDT" | "USDC" | "DAI" => CurrencyChain::ByFormat,
        "BEP20" => CurrencyChain::Chain(Chain::Bsc),
        "BEP2" => CurrencyChain::Chain(Chain::BnbBeacon),
        other => other
            .parse::<Chain>()
            .map_or(CurrencyChain::Unsupported, CurrencyChain::Chain),
    }
}

fn is_evm_shape(s: &str) -> bool {
    s.len() == 42 && s.starts_with("0x") && s.bytes().skip(2).all(|b| b.is_ascii_hexdigit())
}

/// A tag's vocabulary fields (its own, or inherited from the header).
struct Words<'a> {
    abuse: Option<&'a str>,
    category: Option<&'a str>,
    concepts: &'a [String],
}

/// Maps TagPack vocabulary onto [`Category`]: a DPRK actor, then `abuse`, then `category`,
/// then `concepts` (an abuse concept before an entity type), then the label and title
/// naming OFAC. Every word must be known ([`vocabulary`]), used or not.
fn category_of(
    words: Words<'_>,
    actor: Option<&str>,
    label: Option<&str>,
    title: Option<&str>,
) -> Result<Category, vocabulary::UnknownWord> {
    let abuse = words
        .abuse
        .map(|w| vocabulary::meaning("abuse", w))
        .transpose()?
        .flatten();
    let category = words
        .category
        .map(|w| vocabulary::meaning("category", w))
        .transpose()?
        .flatten();
    let mut concepts = Vec::with_capacity(words.concepts.len());
    for w in words.concepts {
        if let Some(c) = vocabulary::meaning("concepts", w)? {
            concepts.push(c);
        }
    }
    // Among concepts, the one of highest risk speaks (`[exchange, service_hack]` is a hack).
    let concept = concepts.into_iter().max_by_key(|c| c.base_risk());
    if actor.is_some_and(|a| super::DPRK_ACTORS.contains(&a)) {
        return Ok(Category::DprkAttributed);
    }
    if let Some(c) = abuse.or(category).or(concept) {
        return Ok(c);
    }
    let words = format!("{} {}", label.unwrap_or(""), title.unwrap_or("")).to_ascii_lowercase();
    Ok(
        if words.contains("ofac") || words.contains("sanctions list") {
            Category::Sanctioned
        } else {
            Category::Other
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACK: &str = r#"
title: FBI Identifies Cryptocurrency Funds Stolen by DPRK
creator: GraphSense Core Team
confidence: authority_data
category: user
lastmod: 2023-08-28
source: https://www.fbi.gov/news/press-releases/fbi-identifies-cryptocurrency-funds-stolen-by-dprk
label: Lazarus group
abuse: sanction
actor: lazarusgroup
tags:
- address: 3LU8wRu4ZnXP4UM8Yo6kkTiGHM9BubgyiG
  currency: BTC
- address: '0x098B716B8Aaf21512996dC57EB0615e2383E2f96'
  currency: ETH
  label: Ronin bridge exploiter
  source: https://example.org/ronin
- address: addr1qxy
  currency: ADA
"#;

    #[test]
    fn header_fields_are_inherited_and_tag_fields_win() {
        let out = parse(PACK, "graphsense:test").expect("parses");
        assert_eq!(out.records.len(), 2);
        let btc = &out.records[0];
        assert_eq!(btc.chain, Some(Chain::Bitcoin));
        assert_eq!(btc.category, Category::DprkAttributed);
        assert_eq!(btc.confidence, Confidence::AUTHORITY_DATA);
        assert_eq!(btc.actor.as_deref(), Some("lazarusgroup"));
        assert_eq!(btc.name.as_deref(), Some("Lazarus group"));
        assert!(
            btc.reference
                .as_deref()
                .is_some_and(|r| r.contains("fbi.gov"))
        );
        let eth = &out.records[1];
        assert_eq!(eth.name.as_deref(), Some("Ronin bridge exploiter"));
        assert_eq!(eth.reference.as_deref(), Some("https://example.org/ronin"));
        assert_eq!(out.unsupported.get("ADA"), Some(&1));
    }

    #[test]
    fn yaml_errors_name_the_pack_and_line() {
        let err =
            parse("title: x\ntags:\n  - address: [unclosed\n", "mine.yaml").expect_err("bad yaml");
        let msg = err.to_string();
        assert!(msg.contains("mine.yaml"), "{msg}");
        assert!(msg.contains("line"), "{msg}");
    }

    #[test]
    fn a_lastmod_that_is_not_a_date_is_an_error_naming_the_tag() {
        for bad in ["yesterday", "2023-13-01", "20230828", "[2023]"] {
            let text = format!(
                "lastmod: {bad}\nabuse: sanction\ntags:\n- address: '0x098B716B8Aaf21512996dC57EB0615e2383E2f96'\n"
            );
            let err = parse(&text, "p").expect_err(bad).to_string();
            assert!(err.contains("tag 1") && err.contains("lastmod"), "{err}");
        }
        let text = "lastmod: 2023-08-16 12:18:52.619444\nabuse: sanction\ntags:\n- address: '0x098B716B8Aaf21512996dC57EB0615e2383E2f96'\n";
        let out = parse(text, "p").expect("a date and a time");
        assert_eq!(out.records[0].listed_on, "2023-08-16".parse().ok());
    }

    #[test]
    fn bad_confidence_is_an_error_naming_the_field() {
        let err = parse("confidence: pretty_sure\ntags:\n- address: '0x098B716B8Aaf21512996dC57EB0615e2383E2f96'\n", "p").expect_err("bad confidence");
        assert!(err.to_string().contains("confidence"), "{err}");
    }
}
