//! One signed HTTP exchange with the store at a time per connection: builds
//! the URL (path-style or virtual-host style), signs, sends through one
//! shared `ureq` agent, and reads the whole answer. A bounded number of
//! requests is in flight at once, however many threads ask.

use std::io::Read;
use std::sync::{Condvar, Mutex};

use ureq::http;

use super::credentials::Credentials;
use super::errors::{self, Target};
use super::location::Endpoint;
use super::settings::Settings;
use super::sign::{self, Unsigned};
use crate::error::{Error, Result};

/// Error bodies are small; a store that sends more is not read further.
const MAX_ERROR_BODY: u64 = 1 << 20;

/// A request to send: a method on an object key ("" for the bucket).
pub struct Request<'a> {
    pub method: http::Method,
    pub key: &'a str,
    pub query: Vec<(String, String)>,
    /// Lowercase names; all are signed.
    pub headers: Vec<(String, String)>,
    pub body: Option<&'a [u8]>,
}

impl<'a> Request<'a> {
    pub fn new(method: http::Method, key: &'a str) -> Self {
        Request {
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_string(), value.into()));
        self
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = Some(body);
        self
    }
}

/// A complete answer, whatever its status.
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub struct Client {
    agent: ureq::Agent,
    /// Where requests go: the endpoint, or `bucket.endpoint` (virtual-host).
    host: Endpoint,
    /// The endpoint as configured, for messages.
    endpoint: String,
    path_style: bool,
    bucket: String,
    region: String,
    credentials: Credentials,
    permits: Permits,
}

impl Client {
    pub fn new(
        endpoint: Endpoint,
        path_style: bool,
        bucket: String,
        region: String,
        credentials: Credentials,
        settings: &Settings,
    ) -> Result<Client> {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .timeout_resolve(Some(settings.timeout))
            .timeout_connect(Some(settings.timeout))
            .timeout_per_read(Some(settings.timeout))
            .timeout_per_write(Some(settings.timeout))
            .max_idle_connections(settings.connections)
            .max_idle_connections_per_host(settings.connections)
            .user_agent(concat!("rewind/", env!("CARGO_PKG_VERSION")))
            .tls_config(tls_config(settings)?)
            .build();
        let host = if path_style {
            endpoint.clone()
        } else {
            endpoint.with_subdomain(&bucket)
        };
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            host,
            endpoint: endpoint.to_string(),
            path_style,
            bucket,
            region,
            credentials,
            permits: Permits::new(settings.connections),
        })
    }

    pub fn target(&self) -> Target<'_> {
        Target {
            endpoint: &self.endpoint,
            bucket: &self.bucket,
            access_key: &self.credentials.access_key,
            region: &self.region,
        }
    }

    /// The error a failed answer means, for `operation` ("cannot read KEY").
    pub fn failure(&self, operation: &str, response: &Response) -> Error {
        errors::status_error(
            &self.target(),
            operation,
            response.status,
            response.header("x-amz-bucket-region"),
            &response.body,
        )
    }

    /// Sends `request` and reads its whole answer. Failing to get an
    /// answer is an error; an answer with any status is not.
    pub fn send(&self, operation: &str, request: Request) -> Result<Response> {
        let path = if self.path_style {
            format!("/{}/{}", self.bucket, request.key)
        } else {
            format!("/{}", request.key)
        };
        let path = sign::encode_path(path.strip_suffix('/').unwrap_or(&path));
        let path = if path.is_empty() { "/".into() } else { path };
        let query = sign::canonical_query(&request.query);
        let url = if query.is_empty() {
            format!("{}{path}", self.host)
        } else {
            format!("{}{path}?{query}", self.host)
        };
        // A POST or PUT always carries a body, if an empty one: stores
        // refuse them without a Content-Length.
        let body = request.body.or_else(|| {
            matches!(request.method, http::Method::POST | http::Method::PUT).then_some(&[][..])
        });
        let payload = body.map_or_else(|| sign::EMPTY_PAYLOAD.to_string(), sign::payload_hash);
        let authority = self.host.authority();
        let signed = sign::sign(
            &Unsigned {
                method: request.method.as_str(),
                host: &authority,
                path: &path,
                query: &request.query,
                headers: &request.headers,
                payload_hash: &payload,
            },
            &self.credentials,
            &self.region,
            chrono::Utc::now(),
        );
        let mut builder = http::Request::builder()
            .method(request.method.clone())
            .uri(&url)
            .header("host", &authority);
        for (name, value) in request.headers.iter().chain(&signed) {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let bad_request = |e: http::Error| {
            Error::usage(format!(
                "{operation}: cannot build the request to {url}: {e}"
            ))
        };

        let _permit = self.permits.acquire();
        let answer = match body {
            Some(body) => self.agent.run(builder.body(body).map_err(bad_request)?),
            None => self.agent.run(builder.body(()).map_err(bad_request)?),
        };
        let mut answer =
            answer.map_err(|e| errors::transport_error(&self.target(), operation, e))?;
        let status = answer.status().as_u16();
        let body = if request.method == http::Method::HEAD {
            Vec::new()
        } else {
            let length = answer.body().content_length();
            let limit = if (200..300).contains(&status) {
                u64::MAX
            } else {
                MAX_ERROR_BODY
            };
            let mut body = Vec::with_capacity(length.unwrap_or(0).min(limit) as usize);
            answer
                .body_mut()
                .as_reader()
                .take(limit)
                .read_to_end(&mut body)
                .map_err(|e| errors::io_error(&self.target(), operation, e))?;
            if length.is_some_and(|n| n != body.len() as u64) && limit == u64::MAX {
                return Err(errors::io_error(
                    &self.target(),
                    operation,
                    std::io::ErrorKind::UnexpectedEof.into(),
                ));
            }
            body
        };
        Ok(Response {
            status,
            headers: answer.headers().clone(),
            body,
        })
    }
}

/// The root certificates: Mozilla's, built in, or the PEM file
/// `AWS_CA_BUNDLE` names.
fn tls_config(settings: &Settings) -> Result<ureq::tls::TlsConfig> {
    let builder = ureq::tls::TlsConfig::builder();
    let Some(path) = &settings.ca_bundle else {
        return Ok(builder.build());
    };
    let pem = std::fs::read(path).map_err(|e| {
        Error::io(
            format!(
                "cannot read the certificate bundle {} (AWS_CA_BUNDLE)",
                path.display()
            ),
            e,
        )
    })?;
    let certificates: Vec<_> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certificates.is_empty() {
        return Err(Error::usage(format!(
            "{} (AWS_CA_BUNDLE) holds no PEM certificate",
            path.display()
        )));
    }
    Ok(builder
        .root_certs(ureq::tls::RootCerts::new_with_certs(&certificates))
        .build())
}

/// A counting semaphore: at most `n` requests in flight.
struct Permits {
    available: Mutex<usize>,
    freed: Condvar,
}

struct Permit<'a>(&'a Permits);

impl Permits {
    fn new(n: usize) -> Permits {
        Permits {
            available: Mutex::new(n),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        let mut available = self.available.lock().unwrap();
        while *available == 0 {
            available = self.freed.wait(available).unwrap();
        }
        *available -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.available.lock().unwrap() += 1;
        self.0.freed.notify_one();
    }
}
