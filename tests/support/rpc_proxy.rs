//! A loopback HTTP proxy between JSON-RPC clients and a real node, which spoils chosen answers so
//! that tests can make the node look flaky for a while and check that bots retry.
#![allow(dead_code, unreachable_pub)]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Largest request or response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request or response body accepted.
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Body of an injected `502 Bad Gateway`.
const INJECTED_502: &[u8] = b"upstream unavailable (injected by the test proxy)";
/// Body of an injected garbage answer: it starts like JSON-RPC and is not JSON.
const GARBAGE: &[u8] = br#"{"jsonrpc":"2.0","id":<html>oops</html>"#;

/// One way of spoiling the answer to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyFault {
    /// Close the client's connection without answering (the request is not forwarded).
    Drop,
    /// Answer `502 Bad Gateway` without forwarding.
    ServerError,
    /// Forward the request, then answer 200 with a body that is not JSON.
    Garbage,
    /// Forward the request, then answer 200 announcing the full length, send half the body, close.
    Truncated,
    /// Wait this long, then forward the request and answer normally.
    Delay(Duration),
}

/// Which requests get which faults.
#[derive(Default)]
struct Plan {
    faults: Vec<ProxyFault>,
    every: u32,
    seen: u64,
    next: usize,
}

/// State shared by the proxy handle and its tasks.
struct Shared {
    upstream: SocketAddr,
    plan: Mutex<Plan>,
    requests: AtomicU64,
    injected: AtomicU64,
}

impl Shared {
    /// Counts one more request under the current plan and says which fault, if any, it gets.
    fn next_fault(&self) -> Option<ProxyFault> {
        let mut plan = self.plan.lock().unwrap_or_else(PoisonError::into_inner);
        if plan.faults.is_empty() {
            return None;
        }
        plan.seen += 1;
        if !plan.seen.is_multiple_of(u64::from(plan.every)) {
            return None;
        }
        let fault = plan.faults[plan.next % plan.faults.len()];
        plan.next += 1;
        Some(fault)
    }
}

/// A running proxy on 127.0.0.1; its tasks stop when it is dropped.
pub struct RpcProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl RpcProxy {
    /// Starts listening on 127.0.0.1:0 and forwarding to `upstream` (e.g. "127.0.0.1:8545"), on
    /// the current tokio runtime (spawned tasks).
    pub async fn start(upstream: SocketAddr) -> std::io::Result<RpcProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            plan: Mutex::new(Plan::default()),
            requests: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(RpcProxy {
            addr,
            shared,
            accept,
        })
    }

    /// The proxy's URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on, every `every`-th request (1 = all) gets one of `faults`, cycling through them
    /// in order; an empty list = pass everything through.
    pub fn set_faults(&self, faults: Vec<ProxyFault>, every: u32) {
        let mut plan = self
            .shared
            .plan
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *plan = Plan {
            faults,
            every: every.max(1),
            seen: 0,
            next: 0,
        };
    }

    /// How many answers were spoiled so far (every fault applied, delays included).
    pub fn faults_injected(&self) -> u64 {
        self.shared.injected.load(Ordering::SeqCst)
    }

    /// How many requests the proxy has read so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }
}

impl Drop for RpcProxy {
    /// Stops accepting; the connection tasks, owned by the accept task, are aborted with it.
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Accepts client connections and serves each on its own task.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.spawn(serve(Arc::clone(&shared), stream));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// One parsed client request.
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// What reading from a client connection gave.
enum Incoming {
    Request(Request),
    Closed,
    TooLarge,
}

/// Serves one client connection until it closes, fails or is closed on purpose (dropping the
/// stream closes it).
async fn serve(shared: Arc<Shared>, client: TcpStream) {
    let _ = client.set_nodelay(true);
    let _ = serve_requests(&shared, &client).await;
}

/// Answers the client's requests in turn, spoiling those the plan picks.
async fn serve_requests(shared: &Shared, client: &TcpStream) -> io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let request = match read_request(client, &mut buf).await? {
            Incoming::Request(request) => request,
            Incoming::Closed => return Ok(()),
            Incoming::TooLarge => {
                let answer = response("413 Payload Too Large", "text/plain", b"too large", true);
                return write_all(client, &answer).await;
            }
        };
        shared.requests.fetch_add(1, Ordering::SeqCst);
        let fault = shared.next_fault();
        if fault.is_some() {
            shared.injected.fetch_add(1, Ordering::SeqCst);
        }
        match fault {
            Some(ProxyFault::Drop) => return Ok(()),
            Some(ProxyFault::ServerError) => {
                let answer = response("502 Bad Gateway", "text/plain", INJECTED_502, false);
                write_all(client, &answer).await?;
                continue;
            }
            Some(ProxyFault::Delay(delay)) => tokio::time::sleep(delay).await,
            _ => {}
        }
        let (status, body) = match forward(shared.upstream, &request).await {
            Ok(answer) => answer,
            Err(e) => {
                let message = format!("upstream error: {e}");
                let answer = response("502 Bad Gateway", "text/plain", message.as_bytes(), false);
                write_all(client, &answer).await?;
                continue;
            }
        };
        match fault {
            Some(ProxyFault::Garbage) => {
                let answer = response("200 OK", "application/json", GARBAGE, false);
                write_all(client, &answer).await?;
            }
            Some(ProxyFault::Truncated) => {
                let mut answer = response("200 OK", "application/json", &body, true);
                answer.truncate(answer.len() - (body.len() - body.len() / 2));
                return write_all(client, &answer).await;
            }
            _ => {
                let answer = response(&status, "application/json", &body, false);
                write_all(client, &answer).await?;
            }
        }
    }
}

/// Reads one request (head, then a Content-Length body) from `client`, keeping what follows it
/// in `buf` for the next one.
async fn read_request(client: &TcpStream, buf: &mut Vec<u8>) -> io::Result<Incoming> {
    let end = loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Ok(Incoming::TooLarge);
        }
        if read_more(client, buf).await? == 0 {
            if buf.is_empty() {
                return Ok(Incoming::Closed);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    };
    if end > MAX_HEAD {
        return Ok(Incoming::TooLarge);
    }
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end + 4);
    let (line, headers) = parse_head(&head);
    let line = line.to_owned();
    let len = match header(&headers, "content-length") {
        Some(value) => value
            .parse::<usize>()
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?,
        None => 0,
    };
    if len > MAX_BODY {
        return Ok(Incoming::TooLarge);
    }
    while buf.len() < len {
        if read_more(client, buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    let body = buf.drain(..len).collect();
    Ok(Incoming::Request(Request {
        line,
        headers,
        body,
    }))
}

/// Appends what one read gives to `buf`; returns how many bytes came (0 at EOF).
async fn read_more(stream: &TcpStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        stream.readable().await?;
        match stream.try_read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if retry(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Writes all of `data` (tokio's `net` feature alone, without `io-util`).
async fn write_all(stream: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        match stream.try_write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if retry(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether a failed `try_read`/`try_write` should just be tried again.
fn retry(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// Sends `request` to `upstream` on a fresh connection with `Connection: close` and returns the
/// answer's status (e.g. `200 OK`) and its body, de-chunked.
async fn forward(upstream: SocketAddr, request: &Request) -> io::Result<(String, Vec<u8>)> {
    let mut out = Vec::with_capacity(request.body.len() + 1024);
    out.extend_from_slice(request.line.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &request.headers {
        if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive") {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&request.body);
    let stream = TcpStream::connect(upstream).await?;
    let _ = stream.set_nodelay(true);
    write_all(&stream, &out).await?;
    let mut raw = Vec::new();
    while read_more(&stream, &mut raw).await? > 0 {
        if raw.len() > MAX_HEAD + MAX_BODY {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "upstream answer too large",
            ));
        }
    }
    parse_response(&raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed upstream response"))
}

/// Splits a whole upstream response into its status (without the HTTP version) and body.
fn parse_response(raw: &[u8]) -> Option<(String, Vec<u8>)> {
    let end = find(raw, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let (status_line, headers) = parse_head(&head);
    let status = status_line.split_once(' ')?.1.trim().to_owned();
    let rest = &raw[end + 4..];
    let chunked = header(&headers, "transfer-encoding")
        .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(len) = header(&headers, "content-length") {
        rest.get(..len.parse::<usize>().ok()?)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some((status, body))
}

/// Decodes a chunked body (trailers ignored).
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n")?;
        let line = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = line.split_once(';').map_or(line, |(size, _)| size).trim();
        let size = usize::from_str_radix(size, 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Splits a message head into its first line and its `Name: value` headers (lines without a
/// colon are skipped).
fn parse_head(head: &str) -> (&str, Vec<(String, String)>) {
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    (first, headers)
}

/// The value of header `name` (case-insensitive), if present.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|window| window == needle)
}

/// A whole HTTP/1.1 answer, head and body, ready to send in one write.
fn response(status: &str, content_type: &str, body: &[u8], close: bool) -> Vec<u8> {
    let connection = if close { "close" } else { "keep-alive" };
    let mut answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(body);
    answer
}
