//! The sinks' stored delivery cursors, seen against a watch file.
//!
//! Every sink an instance served keeps a cursor in the watch store, and every stored cursor
//! bounds the outbox pruner ([`WatchStore::prune_outbox`]: nothing after the lowest cursor
//! is deleted). A sink removed from the watch file, or renamed, keeps its cursor where it
//! stopped: it would hold pruning there for ever, silently. This module lists the stored
//! cursors with what the file says of each ([`report`]; `holdfast watch cursors`), warns at
//! start about each cursor no sink of the file owns ([`stale_warnings`]), and forgets one
//! ([`forget_stale`]; `holdfast watch forget-sink`), refusing a sink the file still serves:
//! its cursor would be registered again at 0 and the sink sent every event still in the
//! outbox.

use holdfast_store::StoreError;
use holdfast_store::watch::WatchStore;
use serde::Serialize;

use crate::config::WatchConfig;
use crate::respond::RESPONDER_SINK;

/// What a watch file says of a stored cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// A `[[sink]]` of the file.
    Configured,
    /// The responder (the rules' responses), served by every watch.
    Responder,
    /// No sink of the file: it holds pruning back at its position.
    Stale,
}

impl Standing {
    pub const fn name(self) -> &'static str {
        match self {
            Standing::Configured => "configured",
            Standing::Responder => "responder",
            Standing::Stale => "stale",
        }
    }
}

/// One stored cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CursorStatus {
    pub sink: String,
    /// The last outbox sequence number the sink delivered (or skipped).
    pub position: u64,
    /// Outbox events after it (outbox head − position): none of them can be pruned.
    pub backlog: u64,
    pub standing: Standing,
}

/// The stored cursors against a watch file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CursorReport {
    /// The outbox head (the last sequence number written).
    pub head: u64,
    /// Every stored cursor, by sink name.
    pub cursors: Vec<CursorStatus>,
    /// Sinks the file serves that have no stored cursor yet (never served: the first prune
    /// of a watch running the file registers them at 0).
    pub not_stored: Vec<String>,
}

impl CursorReport {
    pub fn stale(&self) -> impl Iterator<Item = &CursorStatus> {
        self.cursors
            .iter()
            .filter(|c| c.standing == Standing::Stale)
    }
}

/// Why a cursor was not forgotten.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    #[error(
        "sink {sink} is configured in the watch file: forgetting its cursor would register it again at 0 and send it every event still in the outbox; remove the [[sink]] from the file first"
    )]
    Configured { sink: String },
    #[error(
        "{sink} is the responder's cursor (the rules' responses): every watch serves it; forgetting it would run every response in the outbox again"
    )]
    Responder { sink: String },
    #[error("no cursor is stored for sink {sink:?}; stored: {}", list(stored))]
    Unknown { sink: String, stored: Vec<String> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The names of the sinks a watch running `config` serves: its `[[sink]]`s and the
/// responder.
pub fn served_sinks(config: &WatchConfig) -> Vec<String> {
    config
        .sinks
        .iter()
        .map(|s| s.name().to_owned())
        .chain([RESPONDER_SINK.to_owned()])
        .collect()
}

fn standing(sink: &str, served: &[String]) -> Standing {
    if sink == RESPONDER_SINK {
        Standing::Responder
    } else if served.iter().any(|s| s == sink) {
        Standing::Configured
    } else {
        Standing::Stale
    }
}

/// Every stored cursor with its backlog and what `served` (from [`served_sinks`]) says
/// of it.
pub fn report(store: &dyn WatchStore, served: &[String]) -> Result<CursorReport, StoreError> {
    let stored = store.cursors()?;
    // Read after the cursors: a cursor never passes the head, so no backlog is negative.
    let head = store.outbox_head()?;
    let not_stored = served
        .iter()
        .filter(|s| !stored.iter().any(|c| &c.sink == *s))
        .cloned()
        .collect();
    let cursors = stored
        .into_iter()
        .map(|c| CursorStatus {
            standing: standing(&c.sink, served),
            backlog: head.saturating_sub(c.seq),
            position: c.seq,
            sink: c.sink,
        })
        .collect();
    Ok(CursorReport {
        head,
        cursors,
        not_stored,
    })
}

/// Removes the stored cursor of `sink`, which `served` must not name; returns where it
/// stood. Errors name the sink (and, for an unknown one, every stored name).
pub fn forget_stale(
    store: &dyn WatchStore,
    served: &[String],
    sink: &str,
) -> Result<u64, ForgetError> {
    match standing(sink, served) {
        Standing::Responder => {
            return Err(ForgetError::Responder {
                sink: sink.to_owned(),
            });
        }
        Standing::Configured => {
            return Err(ForgetError::Configured {
                sink: sink.to_owned(),
            });
        }
        Standing::Stale => {}
    }
    let unknown = |store: &dyn WatchStore| -> Result<ForgetError, StoreError> {
        Ok(ForgetError::Unknown {
            sink: sink.to_owned(),
            stored: store.cursors()?.into_iter().map(|c| c.sink).collect(),
        })
    };
    match store.forget_cursor(sink) {
        Ok(Some(seq)) => Ok(seq),
        // A name the store cannot key by is unknown too: listed with the stored names.
        Ok(None) | Err(StoreError::Argument { .. }) => Err(unknown(store)?),
        Err(e) => Err(e.into()),
    }
}

/// One warning per stored cursor that `served` does not name: where it stands, how many
/// events it keeps from pruning, and the command that forgets it.
pub fn stale_warnings(
    store: &dyn WatchStore,
    served: &[String],
) -> Result<Vec<String>, StoreError> {
    Ok(report(store, served)?
        .stale()
        .map(|c| {
            format!(
                "sink {sink} is not in the watch file, but its delivery cursor is stored at {pos}, {backlog} event{s} behind the outbox head: the outbox is never pruned past it, so every event from there on is kept; if no other instance serves it, forget it with `holdfast watch forget-sink <watch file> {sink}` (`holdfast watch cursors <watch file>` lists the cursors)",
                sink = c.sink,
                pos = c.position,
                backlog = c.backlog,
                s = if c.backlog == 1 { "" } else { "s" },
            )
        })
        .collect())
}

#[cfg(test)]
mod tests;
