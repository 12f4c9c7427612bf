//! The bot's `GET /metrics` endpoint: a minimal HTTP/1.1 responder on a tokio listener, built to
//! survive hostile clients (no HTTP framework: one path, one method, one answer per connection).
//!
//! Defences: each connection has [`MetricsServer::read_timeout`] to send its request head and as
//! long to take the answer (a client that connects and sends nothing, or trickles bytes, is
//! closed); at most [`MetricsServer::max_connections`] are served at once (more are closed at
//! once, so a flood cannot hold the bot's file descriptors); a request head over [`MAX_HEAD`]
//! bytes is answered 431; anything but `GET` is 405, any other path 404, a malformed request 400.

use crate::bot::metrics::{render, BotMetrics, CONTENT_TYPE};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// The largest request head (request line and headers) the endpoint reads.
pub const MAX_HEAD: usize = 8 * 1024;

/// Why the metrics endpoint cannot start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("serving metrics on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A bound `/metrics` endpoint, not yet serving.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
    /// How long a client has to send its request head, and again to take the answer.
    pub read_timeout: Duration,
    /// Connections served at once; more are closed on accept.
    pub max_connections: usize,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free port: see [`MetricsServer::local_addr`]), so that a port
    /// in use is an error at start, naming the address.
    pub async fn bind(addr: SocketAddr) -> Result<Self, MetricsError> {
        let bind = |source| MetricsError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?;
        Ok(Self {
            listener,
            addr,
            read_timeout: Duration::from_secs(5),
            max_connections: 16,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers `GET /metrics` with `metrics` rendered, forever (spawn it; drop the task to stop).
    pub async fn serve(self, metrics: Arc<BotMetrics>) {
        info!(addr = %self.addr, "serving metrics at http://{}/metrics", self.addr);
        let slots = Arc::new(Semaphore::new(self.max_connections));
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    warn!("metrics: accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                debug!(%peer, "metrics: too many connections; closing this one");
                continue;
            };
            let metrics = metrics.clone();
            let timeout = self.read_timeout;
            tokio::spawn(async move {
                if let Err(e) = respond(stream, &metrics, timeout).await {
                    debug!(%peer, "metrics: {e}");
                }
                drop(slot);
            });
        }
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Metrics,
    NotFound,
    MethodNotAllowed,
    BadRequest,
    TooLarge,
}

/// The answer to the request head `head` (without its blank line).
fn route(head: &[u8]) -> Answer {
    let Ok(head) = std::str::from_utf8(head) else {
        return Answer::BadRequest;
    };
    let line = head.split("\r\n").next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Answer::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !target.starts_with('/') {
        return Answer::BadRequest;
    }
    if method != "GET" {
        return Answer::MethodNotAllowed;
    }
    let path = target.split('?').next().unwrap_or_default();
    if path == "/metrics" {
        Answer::Metrics
    } else {
        Answer::NotFound
    }
}

/// Reads one request head from `stream` (at most [`MAX_HEAD`] bytes, within `timeout`) and
/// answers it, then closes.
async fn respond(
    mut stream: TcpStream,
    metrics: &BotMetrics,
    timeout: Duration,
) -> std::io::Result<()> {
    let answer = match tokio::time::timeout(timeout, read_head(&mut stream)).await {
        Ok(answer) => answer?,
        // A client that sends nothing, or too slowly, gets nothing.
        Err(_) => return Ok(()),
    };
    let (status, body, content_type) = match answer {
        Answer::Metrics => ("200 OK", render(&metrics.snapshot()), CONTENT_TYPE),
        Answer::NotFound => (
            "404 Not Found",
            "not found; try /metrics\n".into(),
            "text/plain",
        ),
        Answer::MethodNotAllowed => ("405 Method Not Allowed", "only GET\n".into(), "text/plain"),
        Answer::BadRequest => ("400 Bad Request", "bad request\n".into(), "text/plain"),
        Answer::TooLarge => (
            "431 Request Header Fields Too Large",
            "request head too large\n".into(),
            "text/plain",
        ),
    };
    let allow = if answer == Answer::MethodNotAllowed {
        "Allow: GET\r\n"
    } else {
        ""
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{allow}\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    // A client that does not read its answer is dropped after the timeout as well. After the
    // answer, what the client still sends (the rest of a head too large) is read and discarded,
    // within the timeout and up to a bound, until it closes: closing with unread bytes would
    // reset the connection and could destroy the answer before the client reads it.
    let _ = tokio::time::timeout(timeout, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await?;
        let mut buf = [0u8; 1024];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut buf).await? {
                0 => break,
                n => drained += n,
            }
        }
        std::io::Result::Ok(())
    })
    .await;
    Ok(())
}

/// The most bytes read and discarded after an answer before the connection is closed.
const LINGER_BYTES: usize = 64 * 1024;

/// Reads up to the blank line that ends a request head; [`Answer::TooLarge`] past [`MAX_HEAD`]
/// bytes, [`Answer::BadRequest`] when the client closes first.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Answer> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(Answer::BadRequest);
        }
        // Only the new bytes and the three before them can complete the terminator.
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head[from..].windows(4).position(|w| w == b"\r\n\r\n") {
            let end = from + end;
            if end > MAX_HEAD {
                return Ok(Answer::TooLarge);
            }
            return Ok(route(&head[..end]));
        }
        if head.len() > MAX_HEAD {
            return Ok(Answer::TooLarge);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Side;
    use std::time::Instant;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn routes_requests_by_method_and_path() {
        let cases: [(&[u8], Answer); 12] = [
            (b"GET /metrics HTTP/1.1\r\nHost: x", Answer::Metrics),
            (b"GET /metrics HTTP/1.0", Answer::Metrics),
            (b"GET /metrics?name[]=x HTTP/1.1", Answer::Metrics),
            (b"GET / HTTP/1.1", Answer::NotFound),
            (b"GET /metrics/ HTTP/1.1", Answer::NotFound),
            (b"GET /../metrics HTTP/1.1", Answer::NotFound),
            (b"POST /metrics HTTP/1.1", Answer::MethodNotAllowed),
            (b"HEAD /metrics HTTP/1.1", Answer::MethodNotAllowed),
            (b"GET /metrics", Answer::BadRequest),
            (b"GET  /metrics HTTP/1.1", Answer::BadRequest),
            (b"GET metrics HTTP/1.1", Answer::BadRequest),
            (b"GET /metrics HTTP/1.1\xff\xfe", Answer::BadRequest),
        ];
        for (head, want) in cases {
            assert_eq!(route(head), want, "{}", String::from_utf8_lossy(head));
        }
    }

    /// A server on a free local port with `timeout` and `slots`, serving metrics of a challenger.
    async fn server(timeout: Duration, slots: usize) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let mut server = MetricsServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        server.read_timeout = timeout;
        server.max_connections = slots;
        let addr = server.local_addr();
        let metrics = Arc::new(BotMetrics::new(Side::Challenger));
        metrics.saw_block(77);
        (addr, tokio::spawn(server.serve(metrics)))
    }

    /// Sends `request` and reads the whole answer (until the server closes).
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        // The server may answer (431) and close before it has read everything.
        let _ = stream.write_all(request).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn answers_over_tcp_by_path_method_and_size() {
        let (addr, task) = server(Duration::from_secs(5), 4).await;
        let huge = format!(
            "GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEAD)
        );
        let cases: [(&[u8], &str); 6] = [
            (
                b"GET /metrics HTTP/1.1\r\nHost: bot\r\n\r\n",
                "HTTP/1.1 200 OK\r\n",
            ),
            (b"GET /nope HTTP/1.1\r\n\r\n", "HTTP/1.1 404 "),
            (b"DELETE /metrics HTTP/1.1\r\n\r\n", "HTTP/1.1 405 "),
            (b"garbage\r\n\r\n", "HTTP/1.1 400 "),
            (huge.as_bytes(), "HTTP/1.1 431 "),
            // A head that never ends is cut off at the cap all the same.
            (&[b'a'; 3 * MAX_HEAD], "HTTP/1.1 431 "),
        ];
        for (request, want) in cases {
            let answer = exchange(addr, request).await;
            assert!(answer.starts_with(want), "{want}: {answer}");
        }
        let ok = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        let (head, body) = ok.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains("Content-Type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        assert!(
            body.contains("opml_bot_last_block{role=\"challenger\"} 77\n"),
            "{body}"
        );
        let refused = exchange(addr, b"PUT /metrics HTTP/1.1\r\n\r\n").await;
        assert!(refused.contains("Allow: GET\r\n"), "{refused}");
        task.abort();
    }

    #[tokio::test]
    async fn a_silent_client_is_closed_and_does_not_block_others() {
        let timeout = Duration::from_millis(300);
        let (addr, task) = server(timeout, 2).await;
        let t = Instant::now();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        // A trickle of bytes does not extend the deadline.
        let mut trickle = TcpStream::connect(addr).await.unwrap();
        let trickling = tokio::spawn(async move {
            for _ in 0..20 {
                if trickle.write_all(b"G").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        // Both slots are held: a third client is closed at once, unanswered.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await, "");
        let mut buf = Vec::new();
        let n = silent.read_to_end(&mut buf).await.unwrap();
        assert_eq!(n, 0, "the silent client gets nothing");
        let waited = t.elapsed();
        assert!(waited >= timeout && waited < timeout * 5, "{waited:?}");
        trickling.await.unwrap();
        // Once the slow clients are gone, the endpoint answers again.
        let answer = exchange(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        task.abort();
    }

    #[tokio::test]
    async fn a_port_in_use_is_an_error_naming_the_address() {
        let first = MetricsServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = first.local_addr();
        let e = MetricsServer::bind(addr).await.unwrap_err().to_string();
        assert!(e.contains(&addr.to_string()), "{e}");
    }
}
