//! Following the head: [`HeadStream`] yields each head as soon as the node announces it,
//! with the instant it was seen (the watch measures its latency from there).
//!
//! Over WebSocket it subscribes to `newHeads`; over HTTP, or when the subscription cannot be
//! made, ends, or stays quiet for 20 poll intervals while polling finds a newer head (a
//! subscription can stall silently behind a proxy), it polls `eth_blockNumber` every
//! `poll_interval`. Heads are yielded as announced, never filled in: when the node goes
//! from 5 to 8 the stream yields 8 and the consumer fetches 6 and 7; a head with a lower
//! number (a reorg), or over the subscription another hash at the same number, is yielded
//! too; only an exact repeat is dropped. Polling reads numbers, so a reorg that keeps the
//! height shows to the consumer as the next block's parent hash.

use std::time::Instant;

use alloy::providers::Provider;
use alloy::pubsub::Subscription;
use alloy_primitives::B256;

use super::{ChainError, ChainSource};

/// A head the node announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub number: u64,
    pub hash: B256,
    /// When this process received the announcement (or, polling, the answer that showed it).
    pub seen_at: Instant,
}

/// The node's heads, in the order it announces them: see the module documentation.
#[derive(Debug)]
pub struct HeadStream<'a> {
    source: &'a ChainSource,
    subscription: Option<Subscription<alloy::rpc::types::Header>>,
    /// The subscription was tried (over WebSocket).
    subscribed: bool,
    last: Option<(u64, B256)>,
}

impl ChainSource {
    /// The node's heads: first the current head, then each new one as the node announces it.
    pub fn subscribe_heads(&self) -> HeadStream<'_> {
        HeadStream {
            source: self,
            subscription: None,
            subscribed: false,
            last: None,
        }
    }

    /// Waits until the head is above `number` and returns it (the head stream's first head
    /// above it).
    pub async fn wait_for_head_above(&self, number: u64) -> Result<u64, ChainError> {
        let mut heads = self.subscribe_heads();
        loop {
            let head = heads.next().await?;
            if head.number > number {
                return Ok(head.number);
            }
        }
    }
}

impl HeadStream<'_> {
    /// The next head. Errors are the polling calls' (after their retries); a subscription
    /// that fails is replaced by polling, not reported. Cancel-safe (`select!`): a head is
    /// taken as yielded only when `next` returns it, so dropping the future loses none.
    pub async fn next(&mut self) -> Result<Head, ChainError> {
        if !self.subscribed {
            // Subscribe first, then read the current head: nothing falls between the two.
            self.subscribe().await;
            self.subscribed = true;
        }
        if self.last.is_none()
            && let Some(head) = self.polled().await?
        {
            return Ok(self.record(head));
        }
        let quiet = self.source.config().poll_interval * 20;
        loop {
            if let Some(subscription) = &mut self.subscription {
                match tokio::time::timeout(quiet, subscription.recv()).await {
                    Ok(Ok(header)) => {
                        let head = Head {
                            number: header.number,
                            hash: header.hash,
                            seen_at: Instant::now(),
                        };
                        if self.last != Some((head.number, head.hash)) {
                            return Ok(self.record(head));
                        }
                    }
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(missed))) => {
                        // Announcements were dropped: the next one shows the jump.
                        tracing::debug!(target: "chain::heads", missed, "newHeads subscription lagged");
                    }
                    Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => {
                        tracing::warn!(target: "chain::heads", endpoint = %self.source.endpoint(), "newHeads subscription closed; polling eth_blockNumber");
                        self.subscription = None;
                    }
                    Err(_) => {
                        if let Some(head) = self.polled().await? {
                            tracing::warn!(target: "chain::heads", endpoint = %self.source.endpoint(), head = head.number, "newHeads subscription silent while the chain moved; polling eth_blockNumber");
                            self.subscription = None;
                            return Ok(self.record(head));
                        }
                    }
                }
            } else {
                if let Some(head) = self.polled().await? {
                    return Ok(self.record(head));
                }
                tokio::time::sleep(self.source.config().poll_interval).await;
            }
        }
    }

    fn record(&mut self, head: Head) -> Head {
        self.last = Some((head.number, head.hash));
        head
    }

    async fn subscribe(&mut self) {
        let url = self.source.config().url.trim();
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return;
        }
        let provider = alloy::providers::RootProvider::<alloy::network::Ethereum>::new(
            self.source.client().clone(),
        );
        match provider.subscribe_blocks().await {
            Ok(subscription) => self.subscription = Some(subscription),
            Err(e) => {
                tracing::warn!(target: "chain::heads", endpoint = %self.source.endpoint(), error = %e, "no newHeads subscription; polling eth_blockNumber")
            }
        }
    }

    /// The head by polling, if its number is not the last one yielded: `eth_blockNumber`,
    /// then the block's hash.
    async fn polled(&self) -> Result<Option<Head>, ChainError> {
        loop {
            let number = self.source.head_number().await?;
            if self.last.is_some_and(|(last, _)| last == number) {
                return Ok(None);
            }
            match self.source.block_ref(number).await {
                Ok(block) => {
                    return Ok(Some(Head {
                        number,
                        hash: block.hash,
                        seen_at: Instant::now(),
                    }));
                }
                // Unwound between the two calls: ask again.
                Err(ChainError::NoSuchBlock(_)) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// The watch's engine runs these in spawned tasks: their futures must be `Send`.
#[cfg(test)]
mod send {
    use super::*;

    #[allow(dead_code)]
    fn next_is_send<'a>(heads: &'a mut HeadStream<'_>) -> impl Send + 'a {
        heads.next()
    }

    #[allow(dead_code)]
    fn fetch_detail_is_send(source: &ChainSource) -> impl Send + '_ {
        source.fetch_detail(1)
    }
}
