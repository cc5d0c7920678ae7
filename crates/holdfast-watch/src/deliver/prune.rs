//! The outbox pruner: every `prune_interval`, deletes the outbox events every sink has
//! delivered ([`WatchStore::prune_outbox`]: at or below the lowest cursor of the sinks served
//! here, a sink without a cursor counting as 0, and of every stored cursor), but the newest
//! `prune_keep` (for the API's live stream, which has no cursor). It deletes only
//! what durable cursors have passed, so a kill at any instant loses nothing: killed between
//! a delivery and its cursor write, the event is sent again (at least once, same key) and
//! is still in the outbox; killed between the cursor write and the prune, the next prune
//! deletes it. A sink that is down keeps every event it has not accepted.

use std::sync::Arc;
use std::time::Duration;

use holdfast_store::watch::{MAX_PRUNE, WatchStore};
use tokio::sync::watch;
use tracing::{debug, warn};

/// Runs until `stopped` changes (or its sender is dropped).
pub(super) async fn run(
    store: Arc<dyn WatchStore>,
    sinks: Vec<String>,
    (every, keep): (Duration, u64),
    mut stopped: watch::Receiver<bool>,
) {
    // The first prune at once: it registers the sinks served here (a cursor at 0 for one
    // never seen), so that other instances' prunes keep their events from now on.
    let mut first = true;
    loop {
        if *stopped.borrow() {
            return;
        }
        if !std::mem::take(&mut first) {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                r = stopped.changed() => if r.is_err() || *stopped.borrow() { return },
            }
        }
        // Batches of `MAX_PRUNE` until what is left is below it.
        loop {
            let store = Arc::clone(&store);
            let names = sinks.clone();
            let res = tokio::task::spawn_blocking(move || {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                store.prune_outbox(&names, keep)
            })
            .await;
            match res {
                Ok(Ok(n)) => {
                    if n > 0 {
                        debug!(target: "watch::deliver", deleted = n, "outbox pruned");
                    }
                    if n < MAX_PRUNE as u64 {
                        break;
                    }
                }
                Ok(Err(e)) => {
                    warn!(target: "watch::deliver", error = %e, "pruning the outbox failed; retried at the next interval");
                    break;
                }
                Err(e) => {
                    warn!(target: "watch::deliver", error = %e, "the outbox prune's thread ended abnormally");
                    break;
                }
            }
        }
    }
}
