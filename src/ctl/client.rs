//! The connection of `ctl`: endpoint and TLS, the bearer token, the typed clients, and the
//! one-line rendering of a refused call.

use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use super::CtlArgs;
use crate::pb::v1 as pb;

/// What went wrong in a command.
#[derive(Debug)]
pub enum CtlError {
    Rpc(Status),
    Usage(String),
}

impl From<Status> for CtlError {
    fn from(status: Status) -> Self {
        Self::Rpc(status)
    }
}

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rpc(status) => f.write_str(&describe_status(status)),
            Self::Usage(message) => f.write_str(message),
        }
    }
}

/// One line for a refused call: code, reason, message and the details that name fields.
pub fn describe_status(status: &Status) -> String {
    use tonic_types::StatusExt;
    let details = status.get_error_details();
    let mut line = format!("{:?}", status.code());
    line = line_code(&line);
    if let Some(info) = details.error_info() {
        line.push_str(&format!(" ({})", info.reason));
    }
    line.push_str(&format!(": {}", status.message()));
    if let Some(bad) = details.bad_request() {
        let fields: Vec<String> =
            bad.field_violations.iter().take(5).map(|v| format!("{}: {}", v.field, v.description)).collect();
        line.push_str(&format!(" [{}]", fields.join("; ")));
    }
    if let Some(failure) = details.precondition_failure() {
        let items: Vec<String> = failure
            .violations
            .iter()
            .take(5)
            .map(|v| format!("{} {}: {}", v.r#type, v.subject, v.description))
            .collect();
        line.push_str(&format!(" [{}]", items.join("; ")));
    }
    if let Some(delay) = details.retry_info().and_then(|r| r.retry_delay) {
        line.push_str(&format!(" (retry after {:.1} s)", delay.as_secs_f64()));
    }
    line
}

/// `FailedPrecondition` → `FAILED_PRECONDITION`.
fn line_code(debug: &str) -> String {
    let mut out = String::new();
    for (index, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

type Authed = InterceptedService<Channel, Bearer>;

/// Adds the bearer token to every call.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The clients of one connection.
pub struct Clients {
    channel: Channel,
    bearer: Bearer,
    runtime: String,
}

impl Clients {
    /// The runtime the commands are about (`--runtime`; empty: the only one).
    pub(super) fn runtime(&self) -> String {
        self.runtime.clone()
    }

    pub(super) fn meta(&self) -> pb::meta_service_client::MetaServiceClient<Authed> {
        pb::meta_service_client::MetaServiceClient::with_interceptor(
            self.channel.clone(),
            self.bearer.clone(),
        )
    }
    pub(super) fn topology(&self) -> pb::topology_service_client::TopologyServiceClient<Authed> {
        pb::topology_service_client::TopologyServiceClient::with_interceptor(
            self.channel.clone(),
            self.bearer.clone(),
        )
    }
    pub(super) fn drift(&self) -> pb::drift_service_client::DriftServiceClient<Authed> {
        pb::drift_service_client::DriftServiceClient::with_interceptor(
            self.channel.clone(),
            self.bearer.clone(),
        )
        .max_decoding_message_size(64 << 20)
    }
    pub(super) fn control(&self) -> pb::control_service_client::ControlServiceClient<Authed> {
        pb::control_service_client::ControlServiceClient::with_interceptor(
            self.channel.clone(),
            self.bearer.clone(),
        )
    }
}

fn token(args: &CtlArgs) -> Result<Option<String>, CtlError> {
    match (&args.token_file, &args.token) {
        (Some(path), _) => crate::auth::read_secret_file(path)
            .map(|t| Some(t.trim().to_owned()))
            .map_err(|e| CtlError::Usage(e.to_string())),
        (None, token) => Ok(token.clone().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())),
    }
}

pub(super) async fn connect(args: &CtlArgs) -> Result<Clients, CtlError> {
    let usage = |e: &dyn std::fmt::Display| CtlError::Usage(format!("server {}: {e}", args.server));
    let mut endpoint = Endpoint::from_shared(args.server.clone())
        .map_err(|e| usage(&e))?
        .connect_timeout(Duration::from_secs(5));
    if args.server.starts_with("https://") {
        let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &args.tls_ca {
            let pem = std::fs::read(ca).map_err(|e| usage(&e))?;
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
            let cert = std::fs::read(cert).map_err(|e| usage(&e))?;
            let key = std::fs::read(key).map_err(|e| usage(&e))?;
            tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        endpoint = endpoint.tls_config(tls).map_err(|e| usage(&e))?;
    }
    let channel = endpoint.connect().await.map_err(|e| usage(&format!("cannot connect ({e})")))?;
    let bearer = match token(args)? {
        Some(token) => Bearer(Some(
            format!("Bearer {token}")
                .parse()
                .map_err(|_| CtlError::Usage("the token is not valid ASCII".to_owned()))?,
        )),
        None => Bearer(None),
    };
    Ok(Clients { channel, bearer, runtime: args.runtime.clone() })
}
