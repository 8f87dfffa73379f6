//! Who may scrape `/metrics`: the caller's bearer token must be one the API server accepts
//! (TokenReview, authentication.k8s.io/v1) and its user must be allowed `get` on the non-resource URL
//! `/metrics` (SubjectAccessReview, authorization.k8s.io/v1), which the `skewguard-metrics-reader`
//! ClusterRole grants. This is the kube-apiserver's delegated auth, as kube-rbac-proxy and
//! controller-runtime do it, so scrapers need nothing new: Prometheus sends its ServiceAccount token.
//!
//! The decisions are pure functions of the reviews ([`bearer_token`], [`caller_of`],
//! [`verdict_of`]); [`Authorizer`] is the shell that sends the reviews and caches each token's
//! verdict briefly ([`ALLOWED_TTL`], [`DENIED_TTL`]) so that scrapes do not hammer the API server.
//! The cache is keyed by the token's SHA-256, never the token itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::time::Instant;

/// The path and verb a scraper must be allowed.
pub const METRICS_PATH: &str = "/metrics";
pub const METRICS_VERB: &str = "get";

/// How long an allowed token is trusted without asking again (Prometheus scrapes every 30 s).
pub const ALLOWED_TTL: Duration = Duration::from_secs(60);
/// How long a refusal is remembered: shorter, so a fixed RoleBinding takes effect soon.
pub const DENIED_TTL: Duration = Duration::from_secs(10);
/// Cached tokens at most; beyond that the cache is emptied (random tokens cannot grow memory).
pub const CACHE_CAPACITY: usize = 4096;

/// The user a token belongs to, as the API server said in the TokenReview.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The answer to one scrape's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 200: the caller may read the metrics.
    Allowed { username: String },
    /// 401: no bearer token, or one the API server does not accept.
    Unauthenticated { reason: String },
    /// 403: a known caller without `get` on `/metrics`.
    Forbidden { username: String, reason: String },
}

impl Verdict {
    pub fn status(&self) -> StatusCode {
        match self {
            Verdict::Allowed { .. } => StatusCode::OK,
            Verdict::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Verdict::Forbidden { .. } => StatusCode::FORBIDDEN,
        }
    }

    /// The response body of a refusal: what is wrong, never the token.
    pub fn message(&self) -> String {
        match self {
            Verdict::Allowed { username } => format!("{username} may get {METRICS_PATH}"),
            Verdict::Unauthenticated { reason } => format!("Unauthorized: {reason}\n"),
            Verdict::Forbidden { username, reason } => format!(
                "Forbidden: user \"{username}\" cannot {METRICS_VERB} path \"{METRICS_PATH}\"{}\n",
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            ),
        }
    }

    fn ttl(&self) -> Duration {
        match self {
            Verdict::Allowed { .. } => ALLOWED_TTL,
            _ => DENIED_TTL,
        }
    }
}

/// Why a scrape's credentials could not be checked (the API server failed or refused the review);
/// answered with 500 and not cached.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("TokenReview failed: {0}")]
    TokenReview(#[source] kube::Error),
    #[error("SubjectAccessReview failed: {0}")]
    AccessReview(#[source] kube::Error),
}

fn unauthenticated(reason: impl Into<String>) -> Verdict {
    Verdict::Unauthenticated {
        reason: reason.into(),
    }
}

/// The token of an `Authorization: Bearer <token>` header; a refusal when there is none.
pub fn bearer_token(authorization: Option<&HeaderValue>) -> Result<&str, Verdict> {
    let value = authorization.ok_or_else(|| unauthenticated("no bearer token"))?;
    let value = value
        .to_str()
        .map_err(|_| unauthenticated("the Authorization header is not text"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| unauthenticated("the Authorization header is not `Bearer <token>`"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(unauthenticated(
            "the Authorization header is not `Bearer <token>`",
        ));
    }
    Ok(token)
}

/// The TokenReview to send for `token` (the API server's own audiences).
pub fn token_review(token: &str) -> TokenReview {
    TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_string()),
            audiences: None,
        },
        ..TokenReview::default()
    }
}

/// The caller the API server vouches for, or why it does not.
pub fn caller_of(review: &TokenReview) -> Result<Caller, Verdict> {
    let status = review.status.clone().unwrap_or_default();
    if status.authenticated != Some(true) {
        let reason = status
            .error
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| "the API server did not authenticate the token".to_string());
        return Err(unauthenticated(reason));
    }
    let user = status.user.unwrap_or_default();
    let username = user.username.unwrap_or_default();
    if username.is_empty() {
        return Err(unauthenticated("the token belongs to no user"));
    }
    Ok(Caller {
        username,
        uid: user.uid,
        groups: user.groups.unwrap_or_default(),
        extra: user.extra.unwrap_or_default(),
    })
}

/// The SubjectAccessReview asking whether `caller` may `get` `/metrics`.
pub fn access_review(caller: &Caller) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(caller.username.clone()),
            uid: caller.uid.clone(),
            groups: Some(caller.groups.clone()),
            extra: (!caller.extra.is_empty()).then(|| caller.extra.clone()),
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some(METRICS_PATH.to_string()),
                verb: Some(METRICS_VERB.to_string()),
            }),
            resource_attributes: None,
        },
        ..SubjectAccessReview::default()
    }
}

/// Allowed only when the review says so (an evaluation error alone never allows).
pub fn verdict_of(caller: &Caller, review: &SubjectAccessReview) -> Verdict {
    let status = review.status.clone().unwrap_or_default();
    if status.allowed && status.denied != Some(true) {
        return Verdict::Allowed {
            username: caller.username.clone(),
        };
    }
    let reason = [status.reason, status.evaluation_error]
        .into_iter()
        .flatten()
        .filter(|r| !r.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Verdict::Forbidden {
        username: caller.username.clone(),
        reason,
    }
}

type Digest = [u8; 32];

fn digest(token: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Verdicts by token digest, each with the moment it expires.
#[derive(Default)]
struct Cache(HashMap<Digest, (Verdict, Instant)>);

impl Cache {
    fn get(&mut self, key: &Digest, now: Instant) -> Option<Verdict> {
        match self.0.get(key) {
            Some((v, expires)) if *expires > now => Some(v.clone()),
            Some(_) => {
                self.0.remove(key);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, key: Digest, verdict: Verdict, now: Instant) {
        if self.0.len() >= CACHE_CAPACITY {
            self.0.retain(|_, (_, expires)| *expires > now);
            if self.0.len() >= CACHE_CAPACITY {
                self.0.clear();
            }
        }
        let expires = now + verdict.ttl();
        self.0.insert(key, (verdict, expires));
    }
}

/// Checks scrapes' credentials against the API server, caching each token's verdict. Cheap to
/// clone; clones share the cache.
#[derive(Clone)]
pub struct Authorizer {
    client: Client,
    cache: Arc<Mutex<Cache>>,
}

impl Authorizer {
    pub fn new(client: Client) -> Self {
        Authorizer {
            client,
            cache: Arc::default(),
        }
    }

    /// The verdict for a request's `Authorization` header.
    pub async fn authorize(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> Result<Verdict, AuthError> {
        let token = match bearer_token(authorization) {
            Ok(t) => t,
            Err(refused) => return Ok(refused),
        };
        let key = digest(token);
        if let Some(v) = self.cache().get(&key, Instant::now()) {
            return Ok(v);
        }
        let verdict = self.review(token).await?;
        self.cache().put(key, verdict.clone(), Instant::now());
        Ok(verdict)
    }

    async fn review(&self, token: &str) -> Result<Verdict, AuthError> {
        let tokens: Api<TokenReview> = Api::all(self.client.clone());
        let reviewed = tokens
            .create(&PostParams::default(), &token_review(token))
            .await
            .map_err(AuthError::TokenReview)?;
        let caller = match caller_of(&reviewed) {
            Ok(c) => c,
            Err(refused) => return Ok(refused),
        };
        let access: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let reviewed = access
            .create(&PostParams::default(), &access_review(&caller))
            .await
            .map_err(AuthError::AccessReview)?;
        Ok(verdict_of(&caller, &reviewed))
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}
