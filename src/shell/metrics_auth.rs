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
//!
//! A flood of random tokens must not become a flood of TokenReviews: the cache is a bounded LRU
//! (a full cache drops its least recently used verdict, never the whole cache with Prometheus'
//! entry in it), concurrent scrapes with one token share one review, and reviews of tokens not in
//! the cache are capped ([`REVIEWS_PER_SECOND`], [`REVIEW_BURST`]): beyond it a scrape is answered
//! 429, not reviewed.

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
/// Cached tokens at most; beyond that the least recently used verdict goes.
pub const CACHE_CAPACITY: usize = 4096;
/// Reviews of tokens not in the cache per second, sustained...
pub const REVIEWS_PER_SECOND: f64 = 5.0;
/// ...and at once (a few scrapers starting together).
pub const REVIEW_BURST: f64 = 10.0;

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
    /// 429: a token not in the cache while the reviews' cap is spent; not reviewed, not cached.
    Throttled,
}

impl Verdict {
    pub fn status(&self) -> StatusCode {
        match self {
            Verdict::Allowed { .. } => StatusCode::OK,
            Verdict::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Verdict::Forbidden { .. } => StatusCode::FORBIDDEN,
            Verdict::Throttled => StatusCode::TOO_MANY_REQUESTS,
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
            Verdict::Throttled => {
                "Too many new tokens to review: try again in a second\n".to_string()
            }
        }
    }

    /// How long it is cached (`None`: not at all).
    fn ttl(&self) -> Option<Duration> {
        match self {
            Verdict::Allowed { .. } => Some(ALLOWED_TTL),
            Verdict::Unauthenticated { .. } | Verdict::Forbidden { .. } => Some(DENIED_TTL),
            Verdict::Throttled => None,
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

/// A token's SHA-256: what the cache is keyed by.
pub type Digest = [u8; 32];

pub fn digest(token: &str) -> Digest {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// Verdicts by token digest, each with the moment it expires, least recently used first out.
pub struct Cache {
    capacity: usize,
    entries: HashMap<Digest, Entry>,
    /// Use order: tick -> digest (the smallest tick is the least recently used).
    order: BTreeMap<u64, Digest>,
    tick: u64,
}

struct Entry {
    verdict: Verdict,
    expires: Instant,
    used: u64,
}

impl Cache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&mut self, key: &Digest, now: Instant) -> Option<Verdict> {
        let entry = self.entries.get_mut(key)?;
        if entry.expires <= now {
            let used = entry.used;
            self.entries.remove(key);
            self.order.remove(&used);
            return None;
        }
        self.tick += 1;
        self.order.remove(&entry.used);
        entry.used = self.tick;
        self.order.insert(self.tick, *key);
        Some(entry.verdict.clone())
    }

    pub fn put(&mut self, key: Digest, verdict: Verdict, now: Instant) {
        let Some(ttl) = verdict.ttl() else {
            return;
        };
        if let Some(old) = self.entries.remove(&key) {
            self.order.remove(&old.used);
        }
        while self.entries.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
        }
        self.tick += 1;
        self.order.insert(self.tick, key);
        let expires = now + ttl;
        let used = self.tick;
        self.entries.insert(
            key,
            Entry {
                verdict,
                expires,
                used,
            },
        );
    }
}

/// A token bucket: how many reviews of unknown tokens may start now.
pub struct ReviewBudget {
    per_second: f64,
    burst: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl ReviewBudget {
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second,
            burst,
            tokens: burst,
            at: None,
        }
    }

    /// Takes one review from the budget; `false` when it is spent.
    pub fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let refill = now.saturating_duration_since(at).as_secs_f64() * self.per_second;
            self.tokens = (self.tokens + refill).min(self.burst);
        }
        self.at = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One review under way per token: later scrapes with it wait for its verdict.
type Flight = Arc<tokio::sync::OnceCell<Result<Verdict, Arc<AuthError>>>>;

/// Checks scrapes' credentials against the API server, caching each token's verdict. Cheap to
/// clone; clones share the cache, the reviews under way and the budget.
#[derive(Clone)]
pub struct Authorizer {
    client: Client,
    cache: Arc<Mutex<Cache>>,
    flights: Arc<Mutex<HashMap<Digest, Flight>>>,
    budget: Arc<Mutex<ReviewBudget>>,
}

impl Authorizer {
    pub fn new(client: Client) -> Self {
        Authorizer {
            client,
            cache: Arc::new(Mutex::new(Cache::new(CACHE_CAPACITY))),
            flights: Arc::default(),
            budget: Arc::new(Mutex::new(ReviewBudget::new(
                REVIEWS_PER_SECOND,
                REVIEW_BURST,
            ))),
        }
    }

    /// The verdict for a request's `Authorization` header.
    pub async fn authorize(
        &self,
        authorization: Option<&HeaderValue>,
    ) -> Result<Verdict, Arc<AuthError>> {
        let token = match bearer_token(authorization) {
            Ok(t) => t,
            Err(refused) => return Ok(refused),
        };
        let key = digest(token);
        if let Some(v) = lock(&self.cache).get(&key, Instant::now()) {
            return Ok(v);
        }
        let flight = lock(&self.flights).entry(key).or_default().clone();
        let outcome = flight
            .get_or_init(|| async {
                if !lock(&self.budget).take(Instant::now()) {
                    return Ok(Verdict::Throttled);
                }
                let verdict = self.review(token).await.map_err(Arc::new)?;
                lock(&self.cache).put(key, verdict.clone(), Instant::now());
                Ok(verdict)
            })
            .await
            .clone();
        let mut flights = lock(&self.flights);
        if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(&key);
        }
        outcome
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
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
