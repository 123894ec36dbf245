//! The transport: one shared `reqwest` client, headers, scope and blocking parameters,
//! and the mapping of every failure to a [`NomadError`].

use std::fmt;
use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::de::{DeserializeOwned, DeserializeSeed};
use tokio::sync::mpsc;

use super::breaker::{Admission, Breaker};
use super::chunks::{CHUNKS_IN_FLIGHT, ChunkReader};
use super::config::{NomadConfig, Token, format_wait};
use super::error::{NomadError, Operation, classify, error_chain, redact, truncate};
use super::tls;
use super::types::Nullable;

/// A success answer whose body is still to be read.
struct Sent {
    response: reqwest::Response,
    /// Its `X-Nomad-Index`.
    index: u64,
    method: Method,
    path: String,
}

/// Header carrying the ACL token.
const TOKEN_HEADER: &str = "X-Nomad-Token";
/// Header carrying the Raft index of a read (and of most writes).
const INDEX_HEADER: &str = "X-Nomad-Index";
/// User agent sent with every request.
const USER_AGENT: &str = concat!("nomad-operator/", env!("CARGO_PKG_VERSION"));
/// The largest answer read whole (a job, a plan, one job's allocations): a larger one is
/// refused rather than held in memory.
pub const MAX_ANSWER_BYTES: usize = 64 << 20;
/// The largest list answer a watch decodes as it arrives.
pub const MAX_STREAMED_BYTES: usize = 1 << 30;
/// The most of an error answer's body read (its message is cut far shorter).
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// Where a call goes: namespace and region. `None` means the client's default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scope {
    /// Namespace; `"*"` lists across all namespaces (list calls only).
    pub namespace: Option<String>,
    /// Region.
    pub region: Option<String>,
}

impl Scope {
    /// Every namespace (`namespace=*`) in the default region, for list calls.
    pub fn all_namespaces() -> Self {
        Self {
            namespace: Some("*".to_owned()),
            region: None,
        }
    }

    /// The same scope in another region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }
}

/// Parameters of a blocking query: return once Nomad's index passes `index`, or after
/// `wait` (Nomad adds up to `wait / 16` of jitter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// The last `X-Nomad-Index` seen.
    pub index: u64,
    /// How long Nomad may hold the request.
    pub wait: Duration,
}

impl Blocking {
    /// Waits up to `wait` for a change past `index`.
    pub fn new(index: u64, wait: Duration) -> Self {
        Self { index, wait }
    }

    /// The time to allow for the whole request: Nomad's wait, its jitter, and the
    /// ordinary request timeout on top.
    fn request_timeout(&self, base: Duration) -> Duration {
        base + self.wait + self.wait / 16
    }
}

/// A value with the `X-Nomad-Index` of the answer that carried it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Indexed<T> {
    /// `X-Nomad-Index` (0 if Nomad sent none): pass it to the next blocking query.
    pub index: u64,
    /// The decoded body.
    pub value: T,
}

impl<T> Indexed<T> {
    /// Applies `f` to the value, keeping the index.
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Indexed<U> {
        Indexed {
            index: self.index,
            value: f(self.value),
        }
    }
}

/// Typed async client for the Nomad HTTP API. Cheap to clone (shared connection pool).
#[derive(Clone)]
pub struct NomadClient {
    inner: Arc<Inner>,
}

/// The shared state of a [`NomadClient`].
struct Inner {
    /// The settings it was built from (for [`NomadClient::with_own_pool`]).
    config: NomadConfig,
    http: reqwest::Client,
    base: Url,
    /// The address as error messages show it (no user info).
    shown_addr: String,
    token_header: Option<HeaderValue>,
    token: Option<Token>,
    defaults: Scope,
    request_timeout: Duration,
    /// Observer of every request (metrics), set once after construction; shared with
    /// the clients made by [`NomadClient::with_own_pool`].
    hook: Arc<std::sync::OnceLock<CallHook>>,
    /// Whether writes may go out (leader election), set once; shared likewise.
    write_gate: Arc<std::sync::OnceLock<WriteGate>>,
    /// Pauses calls while Nomad keeps failing; shared likewise.
    breaker: Arc<Breaker>,
    /// The agent's release once it was asked (shared by the clones and the watches' pool).
    release: Arc<tokio::sync::OnceCell<String>>,
}

/// Decides whether a write (register, revert, deregister, dispatch, promote...) may go
/// out now; `false` refuses it with [`NomadError::NotLeader`]. Reads always go out.
pub type WriteGate = Arc<dyn Fn() -> bool + Send + Sync>;

/// Observer of every Nomad request: called with the endpoint template (e.g.
/// `POST /v1/job/:id/plan`, IDs replaced so the label stays low-cardinality) and the HTTP
/// status (0 when no answer came back).
pub type CallHook = Arc<dyn Fn(&str, u16) + Send + Sync>;

impl fmt::Debug for NomadClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NomadClient")
            .field("addr", &self.inner.shown_addr)
            .field("token", &self.inner.token)
            .field("defaults", &self.inner.defaults)
            .finish_non_exhaustive()
    }
}

impl NomadClient {
    /// Builds a client from `config`: parses the address, prepares the token header and
    /// the TLS settings. Installs rustls' `ring` provider for the process if none is.
    pub fn new(config: &NomadConfig) -> Result<Self, NomadError> {
        tls::install_crypto_provider();
        let base = parse_addr(&config.addr)?;
        let shown_addr = shown_addr(&base);
        let token = config.token.clone().filter(|t| !t.is_empty());
        let token_header = token.as_ref().map(token_header).transpose()?;
        let http = build_http(config, token.as_ref())?;
        let defaults = Scope {
            namespace: config.namespace.clone().filter(|s| !s.is_empty()),
            region: config.region.clone().filter(|s| !s.is_empty()),
        };
        let inner = Inner {
            config: config.clone(),
            http,
            base,
            shown_addr,
            token_header,
            token,
            defaults,
            request_timeout: config.request_timeout,
            hook: Arc::default(),
            write_gate: Arc::default(),
            breaker: Arc::default(),
            release: Arc::default(),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// A client with the same settings and call hook but a connection pool of its own.
    /// The watches use one: their blocking queries hold a connection for minutes and
    /// read large lists, whose read buffers would otherwise stay with the pooled
    /// connections every reconcile uses.
    pub fn with_own_pool(&self) -> Result<Self, NomadError> {
        let inner = &self.inner;
        let own = Inner {
            config: inner.config.clone(),
            http: build_http(&inner.config, inner.token.as_ref())?,
            base: inner.base.clone(),
            shown_addr: inner.shown_addr.clone(),
            token_header: inner.token_header.clone(),
            token: inner.token.clone(),
            defaults: inner.defaults.clone(),
            request_timeout: inner.request_timeout,
            hook: inner.hook.clone(),
            write_gate: inner.write_gate.clone(),
            breaker: inner.breaker.clone(),
            release: inner.release.clone(),
        };
        Ok(Self {
            inner: Arc::new(own),
        })
    }

    /// Where the agent's release is kept once asked (see `NomadClient::agent_version`).
    pub(crate) fn release_cell(&self) -> &tokio::sync::OnceCell<String> {
        &self.inner.release
    }

    /// The Nomad address this client talks to (without user info).
    pub fn addr(&self) -> &str {
        &self.inner.shown_addr
    }

    /// Installs the observer of every request (shared by all clones). Returns false,
    /// leaving the first in place, when one is already installed.
    pub fn set_call_hook(&self, hook: CallHook) -> bool {
        self.inner.hook.set(hook).is_ok()
    }

    /// Installs the gate of writes (shared by all clones). Returns false, leaving the
    /// first in place, when one is already installed.
    pub fn set_write_gate(&self, gate: WriteGate) -> bool {
        self.inner.write_gate.set(gate).is_ok()
    }

    /// Reports a finished request to the hook, if any.
    fn observe(&self, label: &str, status: u16) {
        if let Some(hook) = self.inner.hook.get() {
            hook(label, status);
        }
    }

    /// Sends `call` and decodes the JSON answer, with its `X-Nomad-Index`.
    pub(crate) async fn execute<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
    ) -> Result<Indexed<T>, NomadError> {
        let mut sent = self.send(call).await?;
        let bytes = self
            .read_body(
                &mut sent.response,
                MAX_ANSWER_BYTES,
                &sent.method,
                &sent.path,
            )
            .await?;
        let value = self.decode(&bytes, &sent.method, &sent.path)?;
        Ok(Indexed {
            index: sent.index,
            value,
        })
    }

    /// Like [`execute`](Self::execute), for answers Go may send as `null` (nil lists):
    /// `null` reads as the type's default.
    pub(crate) async fn execute_nullable<T: DeserializeOwned + Default>(
        &self,
        call: Call<'_>,
    ) -> Result<Indexed<T>, NomadError> {
        let answer = self.execute::<Nullable<T>>(call).await?;
        Ok(answer.map(Nullable::into_inner))
    }

    /// Like [`execute`](Self::execute), but decodes the body while it arrives instead
    /// of holding all of it, with `seed` (a decoder that may keep only part of what it
    /// reads): for the large list answers the watches read. Also returns the time spent
    /// reading and decoding the body (not the time Nomad held a blocking query before
    /// answering).
    pub(crate) async fn execute_streamed<S, V>(
        &self,
        call: Call<'_>,
        seed: S,
    ) -> Result<(Indexed<V>, Duration), NomadError>
    where
        S: for<'de> DeserializeSeed<'de, Value = V> + Send + 'static,
        V: Send + 'static,
    {
        let Sent {
            mut response,
            index,
            method,
            path,
        } = self.send(call).await?;
        let started = std::time::Instant::now();
        let (chunks, reader) = mpsc::channel(CHUNKS_IN_FLIGHT);
        let decoder = tokio::task::spawn_blocking(move || {
            let mut body =
                serde_json::Deserializer::from_reader(BufReader::new(ChunkReader::new(reader)));
            let value = seed.deserialize(&mut body)?;
            body.end().map(|()| value)
        });
        let mut transport = None;
        let mut read = 0usize;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    read = read.saturating_add(chunk.len());
                    if read > MAX_STREAMED_BYTES {
                        transport = Some(too_large(&method, &path, MAX_STREAMED_BYTES));
                        break;
                    }
                    // A closed channel means the decoder already failed; it says why.
                    if chunks.send(chunk).await.is_err() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    transport = Some(self.transport_error(e, &method, &path));
                    break;
                }
            }
        }
        drop(chunks);
        let decoded = decoder
            .await
            .map_err(|e| NomadError::Decode(format!("{method} {path}: decoder stopped: {e}")))?;
        if let Some(error) = transport {
            return Err(error);
        }
        let value = decoded.map_err(|e| self.decode_error(&e, &method, &path))?;
        Ok((Indexed { index, value }, started.elapsed()))
    }

    /// Sends `call`; a success answer comes back with its index, unread; an error
    /// answer is read and classified. A write is not sent while the write gate is
    /// closed, and nothing is sent while the breaker pauses calls.
    async fn send(&self, call: Call<'_>) -> Result<Sent, NomadError> {
        let url = self.url(&call.segments)?;
        if call.writes
            && !self
                .inner
                .write_gate
                .get()
                .is_none_or(|may_write| may_write())
        {
            return Err(NomadError::NotLeader);
        }
        if let Admission::Refused(error, retry_in) = self.inner.breaker.admit() {
            return Err(NomadError::Paused {
                error: Box::new(error),
                retry_in,
            });
        }
        let path = url.path().to_owned();
        let method = call.method.clone();
        let operation = call.operation;
        let label = endpoint_label(
            &method,
            &call.segments,
            call.blocking.as_ref().is_some_and(|b| b.index > 0),
        );
        let request = self.request(url, call);
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                self.observe(&label, 0);
                let error = self.transport_error(e, &method, &path);
                self.trip(&error);
                return Err(error);
            }
        };
        let status = response.status();
        self.observe(&label, status.as_u16());
        let index = header_index(response.headers());
        if !status.is_success() {
            let bytes = self
                .read_body(&mut response, MAX_ERROR_BODY_BYTES, &method, &path)
                .await
                .or_else(|e| match e {
                    // An error answer is classified by its start.
                    NomadError::Decode(_) => Ok(Vec::new()),
                    other => Err(other),
                });
            let error = match bytes {
                Ok(bytes) => self.status_error(status, &bytes, operation),
                Err(e) => e,
            };
            self.trip(&error);
            return Err(error);
        }
        self.inner.breaker.record(Ok(()));
        Ok(Sent {
            response,
            index,
            method,
            path,
        })
    }

    /// Tells the breaker about a failure; logs when it pauses calls.
    fn trip(&self, error: &NomadError) {
        if let Some(pause) = self.inner.breaker.record(Err(error)) {
            tracing::warn!(
                nomad = %self.inner.shown_addr,
                pause = ?pause,
                "Nomad keeps failing ({error}); pausing calls to it"
            );
        }
    }

    /// Reads a body of at most `limit` bytes; a longer one is a [`NomadError::Decode`].
    async fn read_body(
        &self,
        response: &mut reqwest::Response,
        limit: usize,
        method: &Method,
        path: &str,
    ) -> Result<Vec<u8>, NomadError> {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e, method, path))?
        {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(too_large(method, path, limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    /// Builds the URL `<addr>/v1/<segments...>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, NomadError> {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .map_err(|()| NomadError::Config("the Nomad address cannot take a path".into()))?
            .pop_if_empty()
            .push("v1")
            .extend(segments);
        Ok(url)
    }

    /// Prepares the request: token, scope, query, blocking parameters, body, timeout.
    fn request(&self, url: Url, call: Call<'_>) -> reqwest::RequestBuilder {
        let mut request = self.inner.http.request(call.method, url);
        if let Some(token) = &self.inner.token_header {
            request = request.header(TOKEN_HEADER, token.clone());
        }
        let query = self.scope_query(call.scope).into_iter().chain(call.query);
        request = request.query(&query.collect::<Vec<_>>());
        if let Some(blocking) = call.blocking {
            request = request
                .query(&[
                    ("index", blocking.index.to_string()),
                    ("wait", format_wait(blocking.wait)),
                ])
                .timeout(blocking.request_timeout(self.inner.request_timeout));
        }
        match call.body {
            Some(body) => request.json(&body),
            None => request,
        }
    }

    /// `namespace` and `region` query parameters from `scope` or the defaults.
    fn scope_query(&self, scope: &Scope) -> Vec<(&'static str, String)> {
        let defaults = &self.inner.defaults;
        let pick = |given: &Option<String>, default: &Option<String>| {
            given
                .clone()
                .filter(|s| !s.is_empty())
                .or_else(|| default.clone())
        };
        let namespace = pick(&scope.namespace, &defaults.namespace).map(|ns| ("namespace", ns));
        let region = pick(&scope.region, &defaults.region).map(|r| ("region", r));
        namespace.into_iter().chain(region).collect()
    }

    /// Decodes a success body.
    fn decode<T: DeserializeOwned>(
        &self,
        bytes: &[u8],
        method: &Method,
        path: &str,
    ) -> Result<T, NomadError> {
        serde_json::from_slice(bytes).map_err(|e| self.decode_error(&e, method, path))
    }

    /// A body that is not the expected JSON (the message never carries the token).
    fn decode_error(&self, error: &serde_json::Error, method: &Method, path: &str) -> NomadError {
        NomadError::Decode(self.scrub(format!("{method} {path}: {error}")))
    }

    /// Maps an error status and its text body.
    fn status_error(&self, status: StatusCode, body: &[u8], operation: Operation) -> NomadError {
        // Redacted before the message is bounded: a cut must not leave a token's prefix.
        let text = self.scrub(String::from_utf8_lossy(body).into_owned());
        classify(status.as_u16(), &text, operation)
    }

    /// Maps a `reqwest` failure: timeouts to [`NomadError::Timeout`], everything else to
    /// [`NomadError::Transport`] naming the address (never the token).
    fn transport_error(&self, error: reqwest::Error, method: &Method, path: &str) -> NomadError {
        if error.is_timeout() {
            return NomadError::Timeout;
        }
        let addr = &self.inner.shown_addr;
        let what = if error.is_connect() {
            format!("cannot connect to Nomad at {addr}")
        } else {
            format!("{method} {path} at {addr} failed")
        };
        let message = format!("{what}: {}", error_chain(&error.without_url()));
        NomadError::Transport(truncate(self.scrub(message), 1000))
    }

    /// The token, for redaction.
    fn secret(&self) -> Option<&str> {
        self.inner.token.as_ref().map(Token::expose)
    }

    /// Removes the token from a message.
    fn scrub(&self, message: String) -> String {
        redact(message, self.secret())
    }
}

/// One request to make: method, path below `/v1`, scope, query, body, blocking, and which
/// operation it is (for error classification).
pub(crate) struct Call<'a> {
    method: Method,
    segments: Vec<&'a str>,
    scope: &'a Scope,
    query: Vec<(&'static str, String)>,
    body: Option<serde_json::Value>,
    blocking: Option<Blocking>,
    operation: Operation,
    /// Whether it changes Nomad (every call but a `GET`, a plan and a parse).
    writes: bool,
}

impl<'a> Call<'a> {
    /// A call with `method` to `/v1/<segments...>`.
    pub(crate) fn new(method: Method, scope: &'a Scope, segments: &[&'a str]) -> Self {
        let method_writes = method != Method::GET;
        Self {
            method,
            segments: segments.to_vec(),
            scope,
            query: Vec::new(),
            body: None,
            blocking: None,
            operation: Operation::Other,
            writes: method_writes,
        }
    }

    /// A `GET`.
    pub(crate) fn get(scope: &'a Scope, segments: &[&'a str]) -> Self {
        Self::new(Method::GET, scope, segments)
    }

    /// A `POST` with a JSON body.
    pub(crate) fn post(scope: &'a Scope, segments: &[&'a str], body: serde_json::Value) -> Self {
        Self::new(Method::POST, scope, segments).body(body)
    }

    /// Adds a query parameter.
    pub(crate) fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    /// Adds `prefix=` when given and non-empty.
    pub(crate) fn prefix(self, prefix: Option<&str>) -> Self {
        match prefix.filter(|p| !p.is_empty()) {
            Some(prefix) => self.query("prefix", prefix),
            None => self,
        }
    }

    /// Sets the JSON body.
    fn body(mut self, body: serde_json::Value) -> Self {
        self.body = Some(body);
        self
    }

    /// Makes it a blocking query when `blocking` is given.
    pub(crate) fn blocking(mut self, blocking: Option<Blocking>) -> Self {
        self.blocking = blocking;
        self
    }

    /// Marks a `POST` that changes nothing (a plan, a parse): it goes out whatever the
    /// write gate says.
    pub(crate) fn reads_only(mut self) -> Self {
        self.writes = false;
        self
    }

    /// Names the operation, for error classification.
    pub(crate) fn operation(mut self, operation: Operation) -> Self {
        self.operation = operation;
        self
    }
}

/// `METHOD /v1/area/:id/...`: the path with the ID after a singular area (`job`,
/// `allocation`, `deployment`, ...) replaced by `:id`; ` (blocking)` after it for a
/// blocking query past index 0 (a watch waiting for a change, not a read).
fn endpoint_label(method: &Method, segments: &[&str], blocking: bool) -> String {
    let mut label = format!("{method} /v1");
    for (i, segment) in segments.iter().enumerate() {
        let singular_area = segments.first().is_some_and(|area| !area.ends_with('s'));
        label.push('/');
        label.push_str(if i == 1 && singular_area {
            ":id"
        } else {
            segment
        });
    }
    if blocking {
        label.push_str(" (blocking)");
    }
    label
}

/// The error for an answer longer than `limit` bytes.
fn too_large(method: &Method, path: &str, limit: usize) -> NomadError {
    NomadError::Decode(format!(
        "{method} {path}: the answer is larger than {} MiB; the operator does not read it",
        limit >> 20
    ))
}

/// Parses and checks the Nomad address.
fn parse_addr(addr: &str) -> Result<Url, NomadError> {
    let invalid = |why: &str| NomadError::Config(format!("invalid Nomad address: {why}"));
    let mut url = Url::parse(addr.trim()).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) || url.cannot_be_a_base() {
        return Err(invalid("it has no host"));
    }
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// The address without user info, for messages.
fn shown_addr(base: &Url) -> String {
    let mut shown = base.clone();
    // Both only fail for URLs that cannot have user info, where there is nothing to hide.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.as_str().trim_end_matches('/').to_owned()
}

/// The token as a header value marked sensitive (never printed by the HTTP stack).
fn token_header(token: &Token) -> Result<HeaderValue, NomadError> {
    let mut value = HeaderValue::from_str(token.expose()).map_err(|_| {
        NomadError::Config("the Nomad token has characters not allowed in an HTTP header".into())
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Builds the `reqwest` client: timeouts, user agent and TLS.
fn build_http(config: &NomadConfig, token: Option<&Token>) -> Result<reqwest::Client, NomadError> {
    // Redirects are never followed: the token would go along, to any host, even from
    // https to http. A redirect is an error naming where it points.
    let builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.connect_timeout)
        .timeout(config.request_timeout);
    let builder = tls::configure(builder, config)?;
    builder.build().map_err(|e| {
        let message = format!("cannot build the HTTP client: {}", error_chain(&e));
        NomadError::Config(redact(message, token.map(Token::expose)))
    })
}

/// `X-Nomad-Index` as a number (0 when absent or malformed).
fn header_index(headers: &HeaderMap) -> u64 {
    headers
        .get(INDEX_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_labels_hide_ids() {
        assert_eq!(
            endpoint_label(&Method::POST, &["job", "web", "plan"], false),
            "POST /v1/job/:id/plan"
        );
        assert_eq!(
            endpoint_label(&Method::GET, &["jobs"], false),
            "GET /v1/jobs"
        );
        assert_eq!(
            endpoint_label(&Method::GET, &["jobs"], true),
            "GET /v1/jobs (blocking)"
        );
        assert_eq!(
            endpoint_label(&Method::POST, &["jobs", "parse"], false),
            "POST /v1/jobs/parse"
        );
        assert_eq!(
            endpoint_label(&Method::GET, &["allocation", "a1"], false),
            "GET /v1/allocation/:id"
        );
    }

    #[test]
    fn addresses() {
        assert!(parse_addr("http://127.0.0.1:4646").is_ok());
        assert!(parse_addr("https://nomad.example:4646/").is_ok());
        assert!(matches!(
            parse_addr("127.0.0.1:4646"),
            Err(NomadError::Config(_))
        ));
        assert!(matches!(parse_addr("ftp://x"), Err(NomadError::Config(_))));
        let url = parse_addr("http://user:pw@host:1/prefix/").expect("url");
        assert_eq!(shown_addr(&url), "http://host:1/prefix");
    }

    #[test]
    fn urls_encode_segments_and_keep_a_prefix() {
        let config = NomadConfig::new("http://127.0.0.1:4646/proxy/");
        let client = NomadClient::new(&config).expect("client");
        let url = client
            .url(&["job", "example/dispatch-1-2", "plan"])
            .expect("url");
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:4646/proxy/v1/job/example%2Fdispatch-1-2/plan"
        );
    }

    #[test]
    fn scope_falls_back_to_defaults() {
        let config = NomadConfig {
            namespace: Some("apps".into()),
            region: Some("eu".into()),
            ..NomadConfig::default()
        };
        let client = NomadClient::new(&config).expect("client");
        assert_eq!(
            client.scope_query(&Scope::default()),
            vec![("namespace", "apps".into()), ("region", "eu".into())]
        );
        assert_eq!(
            client.scope_query(&Scope::all_namespaces().with_region("us")),
            vec![("namespace", "*".into()), ("region", "us".into())]
        );
        let plain = NomadClient::new(&NomadConfig::default()).expect("client");
        assert!(plain.scope_query(&Scope::default()).is_empty());
    }

    #[test]
    fn blocking_timeout_adds_wait_and_jitter() {
        let b = Blocking::new(7, Duration::from_secs(16));
        assert_eq!(
            b.request_timeout(Duration::from_secs(30)),
            Duration::from_secs(47)
        );
    }

    #[test]
    fn client_debug_hides_the_token() {
        let config = NomadConfig {
            token: Some(Token::new("very-secret-value")),
            ..NomadConfig::default()
        };
        let client = NomadClient::new(&config).expect("client");
        assert!(!format!("{client:?}").contains("very-secret-value"));
    }

    #[test]
    fn bad_token_characters_do_not_leak() {
        let config = NomadConfig {
            token: Some(Token::new("bad\ntoken-xyz")),
            ..NomadConfig::default()
        };
        let error = NomadClient::new(&config).expect_err("must fail");
        assert!(matches!(error, NomadError::Config(_)));
        assert!(!format!("{error} {error:?}").contains("token-xyz"));
    }

    #[test]
    fn index_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(header_index(&headers), 0);
        headers.insert(INDEX_HEADER, HeaderValue::from_static("42"));
        assert_eq!(header_index(&headers), 42);
        headers.insert(INDEX_HEADER, HeaderValue::from_static("x"));
        assert_eq!(header_index(&headers), 0);
    }

    const TOKEN: &str = "s3cr3t-7f0c2a9e-operator-token";

    /// Serves one raw HTTP answer on loopback; returns the address.
    fn serve_raw(status_line: &'static str, body: String) -> anyhow::Result<String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let Ok((mut tcp, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf);
            let answer = format!(
                "HTTP/1.1 {status_line}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tcp.write_all(answer.as_bytes());
        });
        Ok(format!("http://127.0.0.1:{port}"))
    }

    /// Asserts that `error`, shown either way, carries `<redacted>` where the server
    /// echoed the token, and never the token itself.
    fn assert_token_redacted(error: &NomadError) {
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(
            shown.contains("<redacted>"),
            "the echo was exercised: {shown}"
        );
    }

    /// A client with the test token.
    fn token_client(addr: String) -> anyhow::Result<NomadClient> {
        Ok(NomadClient::new(&NomadConfig {
            token: Some(Token::new(TOKEN)),
            ..NomadConfig::new(addr)
        })?)
    }

    /// Runs `future` on a fresh runtime.
    fn run<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(runtime.block_on(future))
    }

    #[test]
    fn a_redirect_is_not_followed_with_the_token() -> anyhow::Result<()> {
        let target = std::net::TcpListener::bind("127.0.0.1:0")?;
        target.set_nonblocking(true)?;
        let location = format!("http://{}/v1/jobs", target.local_addr()?);
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = format!("http://{}", listener.local_addr()?);
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            let Ok((mut tcp, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf);
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = tcp.write_all(answer.as_bytes());
        });
        let nomad = token_client(addr)?;
        let error = run(nomad.list_jobs(&Scope::default(), None, None))?.expect_err("redirect");
        assert!(
            error.to_string().contains("redirect"),
            "the error says it was a redirect: {error}"
        );
        // The request is over: had the redirect been followed, the target would have
        // been connected to by now.
        assert!(
            target.accept().is_err(),
            "nothing reached the redirect's target"
        );
        Ok(())
    }

    #[test]
    fn a_token_echoed_at_the_length_limit_leaves_no_prefix() -> anyhow::Result<()> {
        let body = format!("{}{TOKEN} and more", "x".repeat(990));
        let nomad = token_client(serve_raw("500 Internal Server Error", body)?)?;
        let error = run(nomad.list_jobs(&Scope::default(), None, None))?.expect_err("500");
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(&TOKEN[..8]), "{shown}");
        Ok(())
    }

    #[test]
    fn decode_errors_do_not_leak_the_token() -> anyhow::Result<()> {
        // 200 with a body that is not the expected JSON and that echoes the token.
        let body = format!("[{{\"ID\": \"x\", \"Priority\": \"{TOKEN}\"}}]");
        let nomad = token_client(serve_raw("200 OK", body)?)?;
        let error = run(nomad.list_jobs(&Scope::default(), None, None))?.expect_err("not a list");
        assert!(matches!(error, NomadError::Decode(_)), "{error:?}");
        assert_eq!(error.category(), "decode");
        assert_token_redacted(&error);
        Ok(())
    }

    #[test]
    fn streamed_decode_errors_do_not_leak_the_token() -> anyhow::Result<()> {
        let body = format!("[{{\"ID\": \"a\", \"ModifyIndex\": \"{TOKEN}\"}}]");
        let nomad = token_client(serve_raw("200 OK", body)?)?;
        let scope = Scope::default();
        let feed = nomad.changes(
            crate::nomad::ChangeFeed::Allocations,
            &scope,
            None,
            |_| true,
            |_| Ok(()),
        );
        let error = run(feed)?.expect_err("not an index");
        assert!(matches!(error, NomadError::Decode(_)), "{error:?}");
        assert_token_redacted(&error);
        Ok(())
    }

    #[test]
    fn a_client_with_its_own_pool_keeps_the_settings_and_the_call_hook() -> anyhow::Result<()> {
        let nomad = token_client(serve_raw("200 OK", "[]".into())?)?;
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let own = nomad.with_own_pool()?;
        let record = seen.clone();
        assert!(
            nomad.set_call_hook(Arc::new(move |endpoint: &str, status: u16| {
                record
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(format!("{endpoint} {status}"));
            }))
        );
        assert_eq!(own.addr(), nomad.addr());
        assert_eq!(format!("{own:?}"), format!("{nomad:?}"));
        let scope = Scope::default();
        let answer = run(own.changes(
            crate::nomad::ChangeFeed::Jobs,
            &scope,
            None,
            |_| true,
            |_| Ok(()),
        ))??;
        assert!(answer.entries.is_empty());
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(seen, ["GET /v1/jobs 200"]);
        Ok(())
    }

    #[test]
    fn error_bodies_do_not_leak_the_token() -> anyhow::Result<()> {
        let body = format!("ACL token {TOKEN} is not allowed to do that");
        let nomad = token_client(serve_raw("400 Bad Request", body)?)?;
        let error = run(nomad.read_job(&Scope::default(), "x"))?.expect_err("400");
        assert!(matches!(error, NomadError::BadRequest(_)), "{error:?}");
        assert_token_redacted(&error);
        Ok(())
    }

    #[test]
    fn refused_connections_name_the_address() -> anyhow::Result<()> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = format!("http://{}", listener.local_addr()?);
        drop(listener);
        let nomad = token_client(addr.clone())?;
        let error = run(nomad.list_jobs(&Scope::default(), None, None))?.expect_err("refused");
        let NomadError::Transport(message) = &error else {
            anyhow::bail!("expected Transport, got {error:?}");
        };
        assert!(
            message.starts_with(&format!(
                "cannot connect to Nomad at {addr}: error sending request"
            )),
            "{message}"
        );
        assert!(message.contains("onnection refused"), "{message}");
        assert!(!format!("{error} {error:?}").contains(TOKEN));
        Ok(())
    }

    /// Serves the same raw answer to every connection; counts the requests.
    fn serve_counting(
        status_line: &'static str,
        body: String,
    ) -> anyhow::Result<(String, Arc<std::sync::atomic::AtomicUsize>)> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = served.clone();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            while let Ok((mut tcp, _)) = listener.accept() {
                let mut buf = [0u8; 4096];
                let _ = tcp.read(&mut buf);
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 {status_line}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(answer.as_bytes());
            }
        });
        Ok((format!("http://127.0.0.1:{port}"), served))
    }

    #[test]
    fn a_nomad_that_keeps_failing_is_paused_with_the_same_error() -> anyhow::Result<()> {
        let (addr, served) =
            serve_counting("500 Internal Server Error", "No cluster leader".into())?;
        let nomad = token_client(addr)?;
        let scope = Scope::default();
        let mut errors = Vec::new();
        for _ in 0..super::super::breaker::TRIP_AFTER {
            errors.push(run(nomad.read_job(&scope, "web"))?.expect_err("500"));
        }
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 3);
        let own = nomad.with_own_pool()?;
        for client in [&nomad, &own] {
            let paused = run(client.read_job(&scope, "web"))?.expect_err("paused");
            assert!(paused.paused_for().is_some(), "{paused:?}");
            assert_eq!(paused.to_string(), errors[0].to_string(), "the same text");
            assert_eq!(paused.category(), "server_error");
            assert!(paused.is_transient());
        }
        assert_eq!(
            served.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "paused calls reach nothing, from any pool of the client"
        );
        Ok(())
    }

    #[test]
    fn writes_wait_for_the_write_gate_and_reads_and_plans_do_not() -> anyhow::Result<()> {
        let (addr, served) = serve_counting("200 OK", "{}".into())?;
        let nomad = token_client(addr)?;
        let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let gate = open.clone();
        assert!(nomad.set_write_gate(Arc::new(move || {
            gate.load(std::sync::atomic::Ordering::SeqCst)
        })));
        let scope = Scope::default();
        let job = serde_json::json!({"ID": "web"});
        let error = run(nomad.register_job(&scope, &job, Some(1)))?.expect_err("gated");
        assert_eq!(error, NomadError::NotLeader);
        let error = run(nomad.deregister_job(&scope, "web", false))?.expect_err("gated");
        assert_eq!(error, NomadError::NotLeader);
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 0);
        let _ = run(nomad.read_job(&scope, "web"))?;
        let _ = run(nomad.plan_job(&scope, "web", &job, true))?;
        assert_eq!(
            served.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "reads and plans go out"
        );
        open.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = run(nomad.register_job(&scope, &job, Some(1)))?;
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 3);
        Ok(())
    }

    #[test]
    fn an_answer_larger_than_the_limit_is_refused() -> anyhow::Result<()> {
        let nomad = token_client(serve_raw("200 OK", " ".repeat(4096))?)?;
        let error = run(async {
            let url = nomad.url(&["jobs"])?;
            let scope = Scope::default();
            let mut response = nomad
                .request(url, Call::get(&scope, &["jobs"]))
                .send()
                .await
                .map_err(|e| NomadError::Transport(e.to_string()))?;
            nomad
                .read_body(&mut response, 1024, &Method::GET, "/v1/jobs")
                .await
        })?
        .expect_err("too large");
        assert!(error.to_string().contains("larger than"), "{error}");
        Ok(())
    }
}
