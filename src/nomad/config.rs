//! How to reach Nomad: address, ACL token, default namespace and region, TLS and timeouts.
//!
//! [`NomadConfig`] is a `clap::Args` group, so the binary flattens it into its command line;
//! every flag falls back to the environment variable the Nomad CLI itself reads.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A Nomad ACL token (the secret ID), sent as `X-Nomad-Token`.
///
/// It never prints: `Debug` and `Display` show `<redacted>`; only the client reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a secret ID.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the one place that must send it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// True when the token is the empty string (treated as "no token").
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl FromStr for Token {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl From<String> for Token {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

impl From<&str> for Token {
    fn from(secret: &str) -> Self {
        Self(secret.to_owned())
    }
}

/// The default Nomad address, as the Nomad CLI uses it.
const DEFAULT_ADDR: &str = "http://127.0.0.1:4646";
/// The default time allowed to open a TCP (and TLS) connection.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The default time allowed for one request; blocking queries add their wait to it.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection settings for the Nomad HTTP API.
///
/// `Debug` is safe to log: the token prints as `<redacted>`.
#[derive(clap::Args, Clone, Debug)]
pub struct NomadConfig {
    /// Address of the Nomad HTTP API.
    #[arg(long = "nomad-addr", env = "NOMAD_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: String,

    /// Nomad ACL token (secret ID), sent as X-Nomad-Token.
    #[arg(long = "nomad-token", env = "NOMAD_TOKEN", hide_env_values = true)]
    pub token: Option<Token>,

    /// Default region for requests (Nomad's agent region if unset).
    #[arg(long = "nomad-region", env = "NOMAD_REGION")]
    pub region: Option<String>,

    /// Default namespace for requests (Nomad's "default" if unset).
    #[arg(long = "nomad-namespace", env = "NOMAD_NAMESPACE")]
    pub namespace: Option<String>,

    /// PEM file of the CA certificate(s) that sign Nomad's server certificate.
    #[arg(long = "nomad-cacert", env = "NOMAD_CACERT")]
    pub ca_cert: Option<PathBuf>,

    /// PEM file of the client certificate for mutual TLS.
    #[arg(long = "nomad-client-cert", env = "NOMAD_CLIENT_CERT")]
    pub client_cert: Option<PathBuf>,

    /// PEM file of the client certificate's private key.
    #[arg(long = "nomad-client-key", env = "NOMAD_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,

    /// Do not verify Nomad's TLS certificate (insecure; for tests only).
    #[arg(
        long = "nomad-skip-verify",
        env = "NOMAD_SKIP_VERIFY",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub skip_verify: bool,

    /// Name to verify Nomad's certificate against instead of the address's host.
    #[arg(long = "nomad-tls-server-name", env = "NOMAD_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,

    /// Time allowed to connect to Nomad (e.g. 5s, 500ms, 1m).
    #[arg(long = "nomad-connect-timeout", default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Time allowed for one request (e.g. 30s); blocking queries add their wait to it.
    #[arg(long = "nomad-request-timeout", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// TLS material given in memory (a connection's Secrets); each one set wins over
    /// the file of the same role.
    #[arg(skip)]
    pub inline_tls: InlineTls,
}

/// CA bundle, client certificate and key as PEM in memory.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct InlineTls {
    /// The CA bundle.
    pub ca_cert: Option<Pem>,
    /// The client certificate.
    pub client_cert: Option<Pem>,
    /// The client certificate's private key.
    pub client_key: Option<Pem>,
}

impl fmt::Debug for InlineTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InlineTls")
            .field("ca_cert", &self.ca_cert.as_ref().map(|p| &p.origin))
            .field("client_cert", &self.client_cert.as_ref().map(|p| &p.origin))
            .field("client_key", &self.client_key.as_ref().map(|p| &p.origin))
            .finish()
    }
}

/// PEM text and where it came from (for error messages; the text itself never prints).
#[derive(Clone, PartialEq, Eq)]
pub struct Pem {
    /// Where it came from, such as `Secret team-a/nomad-tls key tls.key`.
    pub origin: String,
    /// The PEM text.
    pub bytes: Vec<u8>,
}

impl Default for NomadConfig {
    fn default() -> Self {
        Self {
            addr: DEFAULT_ADDR.to_owned(),
            token: None,
            region: None,
            namespace: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            skip_verify: false,
            tls_server_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            inline_tls: InlineTls::default(),
        }
    }
}

impl NomadConfig {
    /// A configuration for `addr` with every other setting at its default.
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            ..Self::default()
        }
    }

    /// True when any TLS setting is present (CA, client certificate, skip-verify, server name).
    pub(crate) fn has_tls_settings(&self) -> bool {
        self.ca_cert.is_some()
            || self.client_cert.is_some()
            || self.client_key.is_some()
            || self.inline_tls != InlineTls::default()
            || self.skip_verify
            || self.tls_server_name.is_some()
    }
}

/// Parses a duration such as `5s`, `500ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}: expected e.g. 5s, 500ms, 2m"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("invalid duration unit {other:?} in {text:?}")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// Formats a duration the way Nomad's `wait` query parameter expects it (`5000ms`).
pub(crate) fn format_wait(wait: Duration) -> String {
    format!("{}ms", wait.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        nomad: NomadConfig,
    }

    #[test]
    fn token_never_prints() {
        let token = Token::new("s3cr3t-token");
        assert_eq!(format!("{token}"), "<redacted>");
        assert_eq!(format!("{token:?}"), "<redacted>");
        assert_eq!(token.expose(), "s3cr3t-token");
        let config = NomadConfig {
            token: Some(token),
            ..NomadConfig::default()
        };
        assert!(!format!("{config:?}").contains("s3cr3t"));
        assert!(!format!("{config:#?}").contains("s3cr3t"));
    }

    #[test]
    fn flags_parse_with_defaults() {
        let cli = Cli::try_parse_from(["x"]).expect("parse");
        assert_eq!(cli.nomad.addr, DEFAULT_ADDR);
        assert_eq!(cli.nomad.connect_timeout, Duration::from_secs(5));
        assert_eq!(cli.nomad.request_timeout, Duration::from_secs(30));
        assert!(!cli.nomad.skip_verify);
    }

    #[test]
    fn flags_parse_all() {
        let cli = Cli::try_parse_from([
            "x",
            "--nomad-addr",
            "https://nomad:4646",
            "--nomad-token",
            "abc",
            "--nomad-region",
            "eu",
            "--nomad-namespace",
            "apps",
            "--nomad-cacert",
            "/ca.pem",
            "--nomad-skip-verify",
            "--nomad-tls-server-name",
            "server.global.nomad",
            "--nomad-connect-timeout",
            "250ms",
            "--nomad-request-timeout",
            "2m",
        ])
        .expect("parse");
        let n = cli.nomad;
        assert_eq!(n.addr, "https://nomad:4646");
        assert_eq!(n.token.as_ref().map(Token::expose), Some("abc"));
        assert_eq!(n.region.as_deref(), Some("eu"));
        assert_eq!(n.namespace.as_deref(), Some("apps"));
        assert_eq!(n.ca_cert, Some(PathBuf::from("/ca.pem")));
        assert!(n.skip_verify);
        assert_eq!(n.tls_server_name.as_deref(), Some("server.global.nomad"));
        assert_eq!(n.connect_timeout, Duration::from_millis(250));
        assert_eq!(n.request_timeout, Duration::from_secs(120));
        assert!(n.has_tls_settings());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(format_wait(Duration::from_secs(5)), "5000ms");
    }
}
