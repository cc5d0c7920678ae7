//! JSON lines on stdout: one line per event, the webhook's body
//! (`{"event":…,"key":…,"seq":…,"alert":{…}}`), flushed after each.

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{SendError, SinkEvent, webhook_body};

/// Two stdout sinks (or a sink and anything else writing lines through it) never interleave
/// within a line.
static STDOUT: Mutex<()> = Mutex::const_new(());

/// The stdout sink.
#[derive(Debug, Clone)]
pub struct StdoutSink {
    name: String,
}

impl StdoutSink {
    pub(super) fn new(name: &str) -> StdoutSink {
        StdoutSink {
            name: name.to_owned(),
        }
    }

    pub(super) async fn send(&self, event: &SinkEvent) -> Result<(), SendError> {
        let line = json_line(event);
        let _guard = STDOUT.lock().await;
        let mut out = tokio::io::stdout();
        let res = async {
            out.write_all(&line).await?;
            out.flush().await
        }
        .await;
        res.map_err(|source| SendError::Stdout {
            sink: self.name.clone(),
            source,
        })
    }
}

/// The line written for `event`, with its newline.
pub fn json_line(event: &SinkEvent) -> Vec<u8> {
    let mut line = webhook_body(event);
    line.push(b'\n');
    line
}
