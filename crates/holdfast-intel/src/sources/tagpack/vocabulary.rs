//! The words a TagPack's `abuse`, `category` and `concepts` fields may carry, and the
//! [`Category`] each maps to. Every word is listed; a word not listed is an error naming it
//! (and these lists), never a quiet `other`: an unknown abuse word such as `sanctioned`
//! screening LOW is how an import loses its meaning.
//!
//! The vocabulary is GraphSense's own (graphsense-tagpack-tool `src/tagpack/db/`:
//! `abuses.yaml` 0.2.1, `concepts.yaml` 0.1.0 and the older `entities.yaml` 0.2.1), the words
//! the real TagPacks use beside it (`black_list` in the USDT blacklist pack; actor categories
//! `hacking`, `social_engineering`, `drugs`, `weapons`), Holdfast's own category names
//! (`sanctioned`, `dprk-attributed`, ..., as `intel import --category` takes them) and the
//! aliases Holdfast accepted before (`hack`, `theft`, `fraud`, `darknet_market`, ...).
//! The mapping is documented in docs/INTEL.md; keep the two in step.

use holdfast_primitives::Category;

/// What a word says about an address: a category, or nothing Holdfast scores (a kind of
/// entity such as `user` or `organization`, which says who, not what risk).
pub(super) type Meaning = Option<Category>;

/// GraphSense abuse words (and concepts under `abuse`), and what they map to. Abuse words
/// with no Holdfast category of their own map to the high-risk category nearest in meaning.
const ABUSE: &[(&str, Category)] = &[
    ("sanction", Category::Sanctioned),
    ("sanctions", Category::Sanctioned),
    ("sanctioned", Category::Sanctioned),
    ("service_hack", Category::Hack),
    ("hack", Category::Hack),
    ("hacking", Category::Hack),
    ("theft", Category::Hack),
    ("exploit", Category::Hack),
    ("heist", Category::Hack),
    ("ransomware", Category::Ransomware),
    ("phishing", Category::Phishing),
    ("social_engineering", Category::Phishing),
    ("scam", Category::Scam),
    ("fraud", Category::Scam),
    ("abuse", Category::Scam),
    ("extortion", Category::Scam),
    ("sextortion", Category::Scam),
    ("investment_fraud", Category::Scam),
    ("ponzi_scheme", Category::Scam),
    ("pyramid_scheme", Category::Scam),
    ("financial_crime", Category::Scam),
    ("payment_card_fraud", Category::Scam),
    ("money_laundering", Category::Mixer),
    ("dark_web", Category::Darknet),
    ("darkweb", Category::Darknet),
    ("darknet", Category::Darknet),
    ("darknet_market", Category::Darknet),
    ("market_darknet", Category::Darknet),
    ("drugs", Category::Darknet),
    ("weapons", Category::Darknet),
    ("extremism", Category::Darknet),
    ("terrorism", Category::Darknet),
    ("violence", Category::Darknet),
    ("torture", Category::Darknet),
    ("sexual_abuse", Category::Darknet),
    ("child_sexual_abuse", Category::Darknet),
];

/// GraphSense concepts and entity types (the `category` and `concepts` vocabulary).
const CONCEPTS: &[(&str, Meaning)] = &[
    ("exchange", Some(Category::Exchange)),
    ("mixing_service", Some(Category::Mixer)),
    ("mixing", Some(Category::Mixer)),
    ("mixer", Some(Category::Mixer)),
    ("coinjoin", Some(Category::Mixer)),
    ("gray_usage", Some(Category::Mixer)),
    ("defi_bridge", Some(Category::Bridge)),
    ("bridge", Some(Category::Bridge)),
    ("defi", Some(Category::Defi)),
    ("defi_dex", Some(Category::Defi)),
    ("defi_lending", Some(Category::Defi)),
    ("defi_derivative", Some(Category::Defi)),
    ("defi_derivatives", Some(Category::Defi)),
    ("gambling", Some(Category::Gambling)),
    ("miner", Some(Category::Miner)),
    ("mining_service", Some(Category::Miner)),
    ("black_list", Some(Category::Blocked)),
    ("blacklist", Some(Category::Blocked)),
    ("service", Some(Category::Service)),
    ("wallet_service", Some(Category::Service)),
    ("escrow_wallet", Some(Category::Service)),
    ("ico_wallet", Some(Category::Service)),
    ("cold_wallet", Some(Category::Service)),
    ("hot_wallet", Some(Category::Service)),
    ("warm_wallet", Some(Category::Service)),
    ("payment_processor", Some(Category::Service)),
    ("atm", Some(Category::Service)),
    ("hosting", Some(Category::Service)),
    ("vpn", Some(Category::Service)),
    ("filesharing", Some(Category::Service)),
    ("index", Some(Category::Service)),
    ("messaging_service", Some(Category::Service)),
    ("search_engine", Some(Category::Service)),
    ("shop", Some(Category::Service)),
    ("faucet", Some(Category::Service)),
    // A marketplace of any goods (NFT markets in Etherscan's packs, darknet markets in
    // WalletExplorer's): a darknet market is tagged `dark_web` or `darknet_market`.
    ("market", Some(Category::Service)),
    // Who, not what risk: the label and the other fields decide.
    ("entity", None),
    ("organization", None),
    ("user", None),
    ("victim", None),
    ("perpetrator", None),
    ("donation", None),
    ("item", None),
    ("collectible", None),
    ("concept", None),
    ("behaviour", None),
    ("white_usage", None),
    ("source", None),
    ("mention", None),
    ("website_mention", None),
    ("forum_mention", None),
];

/// A word of a TagPack field that is in no vocabulary Holdfast knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown {field} {word:?}: expected a GraphSense abuse word ({}), a concept ({}) or a Holdfast category ({})",
    words(ABUSE.iter().map(|(w, _)| *w)),
    words(CONCEPTS.iter().map(|(w, _)| *w)),
    words(Category::ALL.iter().map(|c| c.name()))
)]
pub struct UnknownWord {
    pub field: &'static str,
    pub word: String,
}

fn words<'a>(w: impl Iterator<Item = &'a str>) -> String {
    w.collect::<Vec<_>>().join(", ")
}

/// Normalized: lowercase, `-` and spaces as `_`.
fn normal(word: &str) -> String {
    word.trim().to_ascii_lowercase().replace(['-', ' '], "_")
}

/// What `word` means in any of the vocabularies (abuse words first: an abuse field or
/// concept says more about risk than an entity type).
pub(super) fn meaning(field: &'static str, word: &str) -> Result<Meaning, UnknownWord> {
    let w = normal(word);
    if let Some((_, c)) = ABUSE.iter().find(|(a, _)| *a == w) {
        return Ok(Some(*c));
    }
    if let Some((_, m)) = CONCEPTS.iter().find(|(a, _)| *a == w) {
        return Ok(*m);
    }
    // Holdfast's own names (`dprk-attributed`, `tainted`, `other`, ...).
    w.replace('_', "-")
        .parse::<Category>()
        .map(Some)
        .map_err(|_| UnknownWord {
            field,
            word: word.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_is_listed_once() {
        let mut all: Vec<&str> = ABUSE
            .iter()
            .map(|(w, _)| *w)
            .chain(CONCEPTS.iter().map(|(w, _)| *w))
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a word in two lists");
    }

    #[test]
    fn sanctioned_and_holdfast_names_map_and_unknown_words_fail() {
        assert_eq!(
            meaning("abuse", "sanctioned"),
            Ok(Some(Category::Sanctioned))
        );
        assert_eq!(meaning("abuse", "Sanction"), Ok(Some(Category::Sanctioned)));
        assert_eq!(
            meaning("category", "dprk-attributed"),
            Ok(Some(Category::DprkAttributed))
        );
        assert_eq!(meaning("category", "defi-dex"), Ok(Some(Category::Defi)));
        assert_eq!(meaning("category", "user"), Ok(None));
        let err = meaning("abuse", "sanctionned").expect_err("typo");
        let text = err.to_string();
        assert!(
            text.contains("abuse") && text.contains("sanctionned") && text.contains("service_hack"),
            "{text}"
        );
    }

    #[test]
    fn every_abuse_word_is_high_risk_or_more() {
        for (w, c) in ABUSE {
            assert!(
                c.base_risk() >= holdfast_primitives::RiskLevel::High,
                "{w} → {c} is {:?}",
                c.base_risk()
            );
        }
    }
}
