//! Plain REST calls to Azure for what the compute crate does not cover: following long-running
//! operations, the Retail Prices API, Cost Management and Azure Monitor.
//!
//! Calls go through an `azure_core` pipeline configured like the compute client's (the same HTTP
//! stack, the same retry policy: 408, 429 and 5xx are retried, honouring `Retry-After`), with a
//! bearer token from the provider's credential when the API needs one. Error answers become
//! Hoist errors by meaning ([`crate::errors`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use azure_core::auth::TokenCredential;
use azure_core::headers::{HeaderName, Headers};
use azure_core::{ClientOptions, Context, ExponentialRetryOptions, Method, Pipeline, RetryOptions};
use azure_core::{Request, Url};
use futures::StreamExt;
use hoist_api::{ErrorKind, Result};
use serde::de::DeserializeOwned;

use crate::errors::{from_azure, from_status, local};

/// How many times a call is retried on 408, 429 and 5xx before its error is reported.
pub const DEFAULT_RETRIES: u32 = 3;

/// The largest answer read from Azure (a page of prices is a few hundred KiB).
const MAX_BODY_BYTES: usize = 32 << 20;

/// The client options every Azure call uses: `retries` retries on 408, 429 and 5xx, waiting at
/// least what `Retry-After` asks, at most 30 s between tries and 2 min in all.
pub fn client_options(retries: u32) -> ClientOptions {
    let retry = if retries == 0 {
        RetryOptions::none()
    } else {
        RetryOptions::exponential(
            ExponentialRetryOptions::default()
                .max_retries(retries)
                .initial_delay(Duration::from_millis(500))
                .max_delay(Duration::from_secs(30))
                .max_total_elapsed(Duration::from_secs(120)),
        )
    };
    ClientOptions::default().retry(retry)
}

/// An answer: status, headers and the body's bytes.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The headers.
    pub headers: Headers,
    /// The body.
    pub body: Vec<u8>,
}

impl Answer {
    /// A header's value.
    pub fn header(&self, name: &'static str) -> Option<&str> {
        self.headers
            .get_optional_str(&HeaderName::from_static(name))
    }

    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self, operation: &str, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            local(
                ErrorKind::Other,
                operation,
                format!("{what} sent an answer this client cannot read: {e}"),
            )
        })
    }
}

/// A REST client for one Azure endpoint family.
#[derive(Clone)]
pub struct Rest {
    pipeline: Pipeline,
    credential: Option<Arc<dyn TokenCredential>>,
    scope: String,
    timeout: Duration,
}

impl fmt::Debug for Rest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rest")
            .field("scope", &self.scope)
            .field("authenticated", &self.credential.is_some())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Rest {
    /// A client sending bearer tokens for `scope` from `credential` (none for public APIs),
    /// each call bounded by `timeout` (retries included).
    pub fn new(
        credential: Option<Arc<dyn TokenCredential>>,
        scope: impl Into<String>,
        retries: u32,
        timeout: Duration,
    ) -> Self {
        Rest {
            pipeline: Pipeline::new(
                option_env!("CARGO_PKG_NAME"),
                option_env!("CARGO_PKG_VERSION"),
                client_options(retries),
                Vec::new(),
                Vec::new(),
            ),
            credential,
            scope: scope.into(),
            timeout,
        }
    }

    /// `GET url`.
    pub async fn get(&self, operation: &str, url: &Url) -> Result<Answer> {
        self.send(operation, Method::Get, url, None).await
    }

    /// `POST url` with a JSON body.
    pub async fn post(
        &self,
        operation: &str,
        url: &Url,
        body: &serde_json::Value,
    ) -> Result<Answer> {
        self.send(operation, Method::Post, url, Some(body)).await
    }

    async fn send(
        &self,
        operation: &str,
        method: Method,
        url: &Url,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer> {
        let call = async {
            let mut request = Request::new(url.clone(), method);
            if let Some(credential) = &self.credential {
                let token = credential
                    .get_token(&[self.scope.as_str()])
                    .await
                    .map_err(|e| from_azure(operation, e))?;
                request.insert_header(
                    azure_core::headers::AUTHORIZATION,
                    format!("Bearer {}", token.token.secret()),
                );
            }
            if let Some(body) = body {
                request.insert_header("content-type", "application/json");
                request.set_body(serde_json::to_vec(body).unwrap_or_default());
            }
            let response = self
                .pipeline
                .send(&Context::new(), &mut request)
                .await
                .map_err(|e| from_azure(operation, e))?;
            let (status, headers, mut body) = response.deconstruct();
            // Read at most MAX_BODY_BYTES: a server that sends without end is cut off, not
            // buffered.
            let mut bytes = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| from_azure(operation, e))?;
                if bytes.len() + chunk.len() > MAX_BODY_BYTES {
                    return Err(local(
                        ErrorKind::Other,
                        operation,
                        format!(
                            "Azure sent more than {MAX_BODY_BYTES} bytes, more than this client reads"
                        ),
                    ));
                }
                bytes.extend_from_slice(&chunk);
            }
            let answer = Answer {
                status: u16::from(status),
                headers,
                body: bytes,
            };
            if answer.status >= 400 {
                return Err(error_of(operation, &answer));
            }
            Ok(answer)
        };
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(local(
                ErrorKind::Timeout,
                operation,
                format!("{} did not answer within {:?}", url.path(), self.timeout),
            )),
        }
    }
}

/// The Hoist error for an error answer, read from ARM's `{"error": {"code", "message"}}` (or the
/// Retail Prices API's `{"Error": {"Code", "Message"}}`).
pub fn error_of(operation: &str, answer: &Answer) -> hoist_api::Error {
    let (code, message) = error_body(&answer.body);
    let code = code
        .or_else(|| answer.header("x-ms-error-code").map(str::to_owned))
        .unwrap_or_default();
    from_status(
        operation,
        answer.status,
        &code,
        message.as_deref().unwrap_or("no message"),
    )
}

/// The code and message of an ARM error body.
pub fn error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return (None, None);
    };
    let error = value
        .get("error")
        .or_else(|| value.get("Error"))
        .unwrap_or(&value);
    let text = |names: [&str; 2]| {
        names
            .iter()
            .find_map(|n| error.get(*n).and_then(|v| v.as_str()))
            .map(str::to_owned)
    };
    (text(["code", "Code"]), text(["message", "Message"]))
}
