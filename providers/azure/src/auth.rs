//! Credentials: the standard Azure chain through `azure_identity`, bounded in time and with
//! errors that say what to set.
//!
//! | `credential:` | what it uses |
//! |---|---|
//! | `default` | the environment (a service principal's `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`, or workload identity's `AZURE_FEDERATED_TOKEN_FILE`), then a managed identity, then the Azure CLI's login |
//! | `environment` | the environment only |
//! | `managed_identity` | the managed identity of the VM, scale set or App Service Hoist runs on |
//! | `azure_cli` | `az account get-access-token` (the user's `az login`) |
//!
//! `AZURE_AUTHORITY_HOST` (or the `authority_host` setting) points the chain at another cloud's
//! Entra ID endpoint. Tokens are never logged, and never part of an error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use azure_core::auth::{AccessToken, TokenCredential};
use azure_core::error::{Error as AzureError, ErrorKind as AzureKind};
use azure_identity::{
    AzureCliCredential, DefaultAzureCredentialBuilder, EnvironmentCredential,
    TokenCredentialOptions, VirtualMachineManagedIdentityCredential,
};
use hoist_api::{Error, ErrorKind, Result};
use serde::Deserialize;

use crate::errors::local;

/// Where credentials come from (`credential:` in the settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialSource {
    /// The environment, then a managed identity, then the Azure CLI.
    #[default]
    Default,
    /// A service principal or workload identity from environment variables.
    Environment,
    /// The managed identity of the machine Hoist runs on.
    ManagedIdentity,
    /// The Azure CLI's login.
    AzureCli,
}

impl CredentialSource {
    /// The setting's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialSource::Default => "default",
            CredentialSource::Environment => "environment",
            CredentialSource::ManagedIdentity => "managed_identity",
            CredentialSource::AzureCli => "azure_cli",
        }
    }
}

/// How long one token request may take before the chain gives up (a managed identity endpoint
/// that does not answer must not hang the autoscaler).
pub const TOKEN_TIMEOUT: Duration = Duration::from_secs(20);

/// A credential from `source`, with tokens bounded by [`TOKEN_TIMEOUT`].
pub fn credential(
    source: CredentialSource,
    authority_host: Option<&str>,
) -> Result<Arc<dyn TokenCredential>> {
    let mut options = TokenCredentialOptions::default();
    if let Some(host) = authority_host {
        options.set_authority_host(host.to_owned());
    }
    let inner: Arc<dyn TokenCredential> = match source {
        CredentialSource::Default => Arc::new(
            DefaultAzureCredentialBuilder::new()
                .with_options(options)
                .build()
                .map_err(|e| no_credentials(source, &e))?,
        ),
        CredentialSource::Environment => Arc::new(
            EnvironmentCredential::create(options).map_err(|e| no_credentials(source, &e))?,
        ),
        CredentialSource::ManagedIdentity => {
            Arc::new(VirtualMachineManagedIdentityCredential::new(options))
        }
        CredentialSource::AzureCli => {
            Arc::new(AzureCliCredential::create().map_err(|e| no_credentials(source, &e))?)
        }
    };
    Ok(Arc::new(Bounded { source, inner }))
}

fn no_credentials(source: CredentialSource, error: &AzureError) -> Error {
    local(
        ErrorKind::PermissionDenied,
        "credentials",
        format!(
            "no Azure credentials for `credential: {}`: {}. {}",
            source.as_str(),
            error.to_string().lines().next().unwrap_or_default(),
            WHAT_TO_SET
        ),
    )
}

const WHAT_TO_SET: &str = "Set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a \
                           service principal, run on Azure with a managed identity, or sign in \
                           with `az login`";

/// A credential whose token requests time out and whose failures say what to set.
struct Bounded {
    source: CredentialSource,
    inner: Arc<dyn TokenCredential>,
}

impl fmt::Debug for Bounded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("source", &self.source.as_str())
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenCredential for Bounded {
    async fn get_token(&self, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        match tokio::time::timeout(TOKEN_TIMEOUT, self.inner.get_token(scopes)).await {
            Ok(Ok(token)) => Ok(token),
            Ok(Err(e)) => Err(AzureError::message(
                AzureKind::Credential,
                format!(
                    "`credential: {}` gave no token ({}). {WHAT_TO_SET}",
                    self.source.as_str(),
                    summary(&e)
                ),
            )),
            Err(_) => Err(AzureError::message(
                AzureKind::Credential,
                format!(
                    "`credential: {}` gave no token within {}s. {WHAT_TO_SET}",
                    self.source.as_str(),
                    TOKEN_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        self.inner.clear_cache().await
    }
}

/// A one-line summary of a credential error and its causes, without anything secret (the
/// identity crate's errors carry messages and status codes, not tokens or secrets).
fn summary(error: &AzureError) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        parts.push(e.to_string());
        source = e.source();
    }
    let text = parts.join(": ").replace('\n', " ");
    const MAX: usize = 400;
    if text.len() > MAX {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &text[..end])
    } else {
        text
    }
}

/// A credential that hands out one fixed token: for tests, and for callers that get tokens by
/// other means. The token never shows in `Debug`.
#[derive(Clone)]
pub struct StaticToken(azure_core::auth::Secret);

impl StaticToken {
    /// A credential answering every request with `token`.
    pub fn credential(token: impl Into<String>) -> Arc<dyn TokenCredential> {
        Arc::new(StaticToken(azure_core::auth::Secret::new(token.into())))
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken(..)")
    }
}

#[async_trait::async_trait]
impl TokenCredential for StaticToken {
    async fn get_token(&self, _scopes: &[&str]) -> azure_core::Result<AccessToken> {
        Ok(AccessToken::new(
            self.0.clone(),
            time_in(Duration::from_secs(3600)),
        ))
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        Ok(())
    }
}

fn time_in(after: Duration) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() + after
}
