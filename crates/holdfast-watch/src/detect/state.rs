//! [`DetectorState`]: what the detectors remember between blocks, carried by the engine in
//! its checkpoint (serde JSON). Every entry records the block it came from, so a reorg
//! unwinds it exactly ([`DetectorState::unwind_above`]), and every part is bounded.

use std::collections::{BTreeMap, VecDeque};

use alloy_primitives::{Address, U256};
use serde::{Deserialize, Serialize};

/// The state's format (a checkpoint of another format is refused by the engine).
pub const STATE_FORMAT: u32 = 1;
/// Most outflows one wallet's velocity window keeps (older ones are dropped: a wallet making
/// more outflows than this within a window is alerted long before).
pub const MAX_WINDOW_ENTRIES: usize = 4096;
/// Most Safes a `safes_owned_by` set gains while watching.
pub const MAX_DYNAMIC_MEMBERS: usize = 100_000;
/// Blocks a removal or an ended episode is remembered, so a reorg that deep restores it.
pub const REORG_HORIZON: u64 = 256;
/// Every this many blocks the whole state is swept of what no window needs; in between only
/// what a block touched is.
pub const SWEEP_EVERY: u64 = 64;

/// One episode of a condition (a velocity above its limit, a drain): alerted once when it
/// opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    pub since: u64,
    /// The block whose check found the condition cleared (kept [`REORG_HORIZON`] blocks).
    pub closed_at: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectorState {
    pub format: u32,
    /// Per chain (its name in the watch file).
    pub chains: BTreeMap<String, ChainState>,
}

impl Default for DetectorState {
    fn default() -> Self {
        DetectorState {
            format: STATE_FORMAT,
            chains: BTreeMap::new(),
        }
    }
}

impl DetectorState {
    /// Forgets everything chain `chain` learned from blocks above `block` (a reorg unwound
    /// them).
    pub fn unwind_above(&mut self, chain: &str, block: u64) {
        if let Some(cs) = self.chains.get_mut(chain) {
            cs.unwind_above(block);
        }
    }
}

/// A Safe that joined a `safes_owned_by` set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The owner that made it join.
    pub owner: Address,
    pub since: u64,
    /// The block that removed that owner (kept [`REORG_HORIZON`] blocks, then dropped).
    pub removed_at: Option<u64>,
}

/// One outflow in a velocity window.
/// (Short field names: the engine writes the state with every checkpoint, and windows are
/// its largest part.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outflow {
    #[serde(rename = "b")]
    pub block: u64,
    #[serde(rename = "t")]
    pub timestamp: u64,
    /// The token, `None` for the native coin (NFTs are counted with amount 1).
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Address>,
    #[serde(rename = "a")]
    pub amount: U256,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChainState {
    pub last_block: Option<u64>,
    /// Set name → Safe → why it is a member.
    #[serde(default)]
    pub dynamic: BTreeMap<String, BTreeMap<Address, Membership>>,
    /// Wallet → its recent outflows (one record per transfer, shared by the wallet's velocity
    /// rules, kept for the longest window).
    /// (Keys are watched wallets: a fast hash; written out in address order.)
    #[serde(default, serialize_with = "sorted")]
    pub velocity: rustc_hash::FxHashMap<Address, VecDeque<Outflow>>,
    /// Wallet → native balance at the end of blocks that changed it (oldest first).
    #[serde(default)]
    pub balances: BTreeMap<Address, VecDeque<(u64, U256)>>,
    /// Rule → episode key → its episodes, oldest first (one alert per episode of a velocity
    /// or drain condition; closed ones are kept [`REORG_HORIZON`] blocks, so a reorg that
    /// unwinds a reopening finds the episode it continued).
    #[serde(default)]
    pub episodes: BTreeMap<String, BTreeMap<String, Vec<Episode>>>,
}

impl ChainState {
    pub fn is_dynamic_member(&self, set: &str, address: Address) -> bool {
        self.dynamic
            .get(set)
            .and_then(|m| m.get(&address))
            .is_some_and(|m| m.removed_at.is_none())
    }

    pub fn unwind_above(&mut self, block: u64) {
        for members in self.dynamic.values_mut() {
            members.retain(|_, m| m.since <= block);
            for m in members.values_mut() {
                if m.removed_at.is_some_and(|r| r > block) {
                    m.removed_at = None;
                }
            }
        }
        for w in self.velocity.values_mut() {
            w.retain(|o| o.block <= block);
        }
        self.velocity.retain(|_, w| !w.is_empty());
        for samples in self.balances.values_mut() {
            samples.retain(|(b, _)| *b <= block);
        }
        self.balances.retain(|_, s| !s.is_empty());
        for eps in self.episodes.values_mut() {
            for list in eps.values_mut() {
                list.retain(|e| e.since <= block);
                for e in list.iter_mut() {
                    if e.closed_at.is_some_and(|c| c > block) {
                        e.closed_at = None;
                    }
                }
            }
            eps.retain(|_, l| !l.is_empty());
        }
        self.episodes.retain(|_, e| !e.is_empty());
        if self.last_block.is_some_and(|l| l > block) {
            self.last_block = Some(block);
        }
    }

    /// Drops what no window needs any more, from the whole state (every [`SWEEP_EVERY`]
    /// blocks; the detectors trim what they touch as they go).
    pub(crate) fn sweep(
        &mut self,
        block: u64,
        timestamp: u64,
        drain_blocks: u64,
        window_secs: u64,
    ) {
        if !block.is_multiple_of(SWEEP_EVERY) {
            return;
        }
        let horizon = block.saturating_sub(REORG_HORIZON);
        for members in self.dynamic.values_mut() {
            members.retain(|_, m| m.removed_at.is_none_or(|r| r > horizon));
        }
        for w in self.velocity.values_mut() {
            trim_window(w, block, timestamp, window_secs);
        }
        self.velocity.retain(|_, w| !w.is_empty());
        for samples in self.balances.values_mut() {
            trim_samples(samples, block, drain_blocks);
        }
        for eps in self.episodes.values_mut() {
            for list in eps.values_mut() {
                list.retain(|e| e.closed_at.is_none_or(|c| c > horizon));
            }
            eps.retain(|_, l| !l.is_empty());
        }
        self.episodes.retain(|_, e| !e.is_empty());
    }

    /// Records a velocity outflow (bounded).
    pub(crate) fn push_outflow(&mut self, wallet: Address, o: Outflow) {
        let w = self.velocity.entry(wallet).or_default();
        w.push_back(o);
        while w.len() > MAX_WINDOW_ENTRIES {
            w.pop_front();
        }
    }

    /// Opens an episode; `false` when it is already open (no new alert).
    pub(crate) fn open_episode(&mut self, rule: &str, key: String, block: u64) -> bool {
        let list = self
            .episodes
            .entry(rule.to_owned())
            .or_default()
            .entry(key)
            .or_default();
        if list.last().is_some_and(|e| e.closed_at.is_none()) {
            return false;
        }
        list.push(Episode {
            since: block,
            closed_at: None,
        });
        true
    }

    /// The block an open episode began.
    pub fn episode(&self, rule: &str, key: &str) -> Option<u64> {
        self.episodes
            .get(rule)
            .and_then(|e| e.get(key))
            .and_then(|l| l.last())
            .filter(|e| e.closed_at.is_none())
            .map(|e| e.since)
    }

    /// Whether rule `rule` has any episode (open or closed) in the state: when it has none,
    /// there is nothing to close and its keys need not be built.
    pub(crate) fn has_episodes(&self, rule: &str) -> bool {
        self.episodes.get(rule).is_some_and(|e| !e.is_empty())
    }

    pub(crate) fn close_episode(&mut self, rule: &str, key: &str, block: u64) {
        if let Some(e) = self
            .episodes
            .get_mut(rule)
            .and_then(|e| e.get_mut(key))
            .and_then(|l| l.last_mut())
            && e.closed_at.is_none()
        {
            e.closed_at = Some(block);
        }
    }
}

/// Drops outflows older than the window (and past the bound). Those of the last
/// [`REORG_HORIZON`] blocks stay even when the window has passed them: after a reorg the
/// window is back at an earlier block and needs them.
pub(crate) fn trim_window(w: &mut VecDeque<Outflow>, block: u64, timestamp: u64, window_secs: u64) {
    while w.front().is_some_and(|o| {
        o.timestamp.saturating_add(window_secs) < timestamp
            && o.block.saturating_add(REORG_HORIZON) < block
    }) || w.len() > MAX_WINDOW_ENTRIES
    {
        w.pop_front();
    }
}

/// Drops balance samples older than the drain window, keeping the newest one before it (the
/// balance at the window's start), and every one a reorg of up to [`REORG_HORIZON`] blocks
/// would need again.
pub(crate) fn trim_samples(samples: &mut VecDeque<(u64, U256)>, block: u64, drain_blocks: u64) {
    let keep_from = block.saturating_sub(drain_blocks.saturating_add(REORG_HORIZON));
    while samples.len() > 1 && samples.get(1).is_some_and(|(b, _)| *b < keep_from) {
        samples.pop_front();
    }
}

/// A hash map written in key order (the state's JSON is the same for the same state).
fn sorted<S, K, V>(map: &rustc_hash::FxHashMap<K, V>, s: S) -> Result<S::Ok, S::Error>
where
    S: serde::Serializer,
    K: Ord + Serialize,
    V: Serialize,
{
    let ordered: BTreeMap<&K, &V> = map.iter().collect();
    ordered.serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_velocity_map_is_written_in_address_order() {
        let mut cs = ChainState::default();
        let o = Outflow {
            block: 1,
            timestamp: 1,
            token: None,
            amount: U256::from(1),
        };
        for b in [0x90u8, 0x10, 0x50, 0xf0, 0x01] {
            cs.push_outflow(Address::repeat_byte(b), o.clone());
        }
        let json = serde_json::to_string(&cs).unwrap();
        let lower = json.to_lowercase();
        let at = |b: u8| {
            lower
                .find(&format!("{}", Address::repeat_byte(b)).to_lowercase())
                .unwrap()
        };
        assert!(at(0x01) < at(0x10) && at(0x10) < at(0x50) && at(0x50) < at(0x90));
        assert!(at(0x90) < at(0xf0));
        let back: ChainState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cs);
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn state_round_trips_through_json_and_unwinds_by_block() {
        let mut s = DetectorState::default();
        let cs = s.chains.entry("eth".into()).or_default();
        let (a, b) = (Address::repeat_byte(1), Address::repeat_byte(2));
        cs.last_block = Some(12);
        cs.dynamic.entry("safes".into()).or_default().insert(
            a,
            Membership {
                owner: b,
                since: 11,
                removed_at: Some(12),
            },
        );
        cs.push_outflow(
            a,
            Outflow {
                block: 12,
                timestamp: 100,
                token: None,
                amount: U256::from(5),
            },
        );
        cs.balances
            .entry(a)
            .or_default()
            .push_back((10, U256::from(9)));
        cs.balances
            .entry(a)
            .or_default()
            .push_back((12, U256::from(1)));
        assert!(cs.open_episode("r", "k".into(), 12));
        assert!(!cs.open_episode("r", "k".into(), 12));
        let json = serde_json::to_string(&s).unwrap();
        let back: DetectorState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);

        s.unwind_above("eth", 11);
        let cs = &s.chains["eth"];
        assert_eq!(cs.last_block, Some(11));
        assert!(
            cs.is_dynamic_member("safes", a),
            "the removal at 12 is undone"
        );
        assert!(cs.velocity.is_empty());
        assert_eq!(cs.balances[&a].len(), 1);
        assert_eq!(cs.episode("r", "k"), None);
        s.unwind_above("eth", 10);
        assert!(
            !s.chains["eth"].is_dynamic_member("safes", a),
            "joined at 11"
        );
    }

    #[test]
    fn windows_stay_bounded() {
        let mut cs = ChainState::default();
        let a = Address::repeat_byte(1);
        for i in 0..(MAX_WINDOW_ENTRIES as u64 + 10) {
            cs.push_outflow(
                a,
                Outflow {
                    block: i,
                    timestamp: i,
                    token: None,
                    amount: U256::from(1),
                },
            );
        }
        assert_eq!(cs.velocity[&a].len(), MAX_WINDOW_ENTRIES);
        cs.sweep(SWEEP_EVERY * 200, 10_000, 10, 60);
        assert!(cs.velocity.is_empty());
    }
}
