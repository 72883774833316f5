//! Delivering one event to its subscriber, at least once: retries with the trigger's
//! backoff (honouring Retry-After), then the dead-letter sink with Knative's error
//! extensions. The transport is a small trait, so that the policy is tested on a
//! paused clock without a network.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use http::Uri;
use paas_api::eventing::{BackoffPolicy, DeliverySpec};
use paas_api::iso8601;

use crate::cloudevent::{CloudEvent, ExtensionValue};

/// Knative's error extensions on dead-lettered events.
pub const ERROR_CODE: &str = "knativeerrorcode";
pub const ERROR_DEST: &str = "knativeerrordest";
pub const ERROR_DATA: &str = "knativeerrordata";
/// `knativeerrordata` carries at most this much of the last response body.
pub const ERROR_DATA_MAX: usize = 1024;

/// How a trigger delivers, resolved from its delivery spec (else its broker's).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryPolicy {
    /// Attempts after the first.
    pub retry: u32,
    pub backoff: BackoffPolicy,
    pub delay: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// The longest wait a Retry-After may impose.
    pub max_retry_after: Duration,
}

impl Default for DeliveryPolicy {
    /// Without a delivery spec: a few exponential retries rather than none, so that a
    /// subscriber waking from zero or restarting does not lose events.
    fn default() -> Self {
        Self {
            retry: 3,
            backoff: BackoffPolicy::Exponential,
            delay: Duration::from_millis(200),
            timeout: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl DeliveryPolicy {
    /// The policy of a delivery spec; validation has already checked the durations.
    pub fn from_spec(spec: Option<&DeliverySpec>) -> Self {
        let mut p = Self::default();
        if let Some(s) = spec {
            if let Some(r) = s.retry {
                p.retry = r.max(0) as u32;
            }
            if let Some(b) = s.backoff_policy {
                p.backoff = b;
            }
            if let Some(d) = s.backoff_delay.as_deref().and_then(iso8601::parse_duration) {
                p.delay = d;
            }
            if let Some(t) = s.timeout.as_deref().and_then(iso8601::parse_duration) {
                p.timeout = t;
            }
        }
        p
    }

    /// The wait before retry number `retry` (1-based), as Knative computes it:
    /// linear `delay × retry`, exponential `delay × 2^retry`.
    pub fn backoff(&self, retry: u32) -> Duration {
        match self.backoff {
            BackoffPolicy::Linear => self.delay.saturating_mul(retry),
            BackoffPolicy::Exponential => self
                .delay
                .saturating_mul(2u32.saturating_pow(retry.min(20))),
        }
    }
}

/// What one attempt got back.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Response {
        status: u16,
        /// Retry-After in seconds, when the subscriber sent one.
        retry_after: Option<u64>,
        body: Bytes,
        /// The reply, when the body is a CloudEvent.
        reply: Option<Box<CloudEvent>>,
    },
    /// No HTTP answer: refused, reset, or timed out.
    Failed { reason: String },
}

/// Sends an event somewhere and reports what came back.
#[async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    async fn send(&self, to: &Destination, event: &CloudEvent, timeout: Duration) -> Attempt;
}

/// Where events are sent: a URL, parsed once (when a dispatcher starts) rather than
/// at every attempt. A URL that cannot be sent to still makes a destination: each
/// attempt then fails saying why, and the event is retried and dead-lettered as when
/// the subscriber is unreachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    url: String,
    uri: Result<Uri, String>,
}

impl Destination {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            uri: http_uri(url),
        }
    }

    /// The URL as it was given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The absolute `http://` URI to send to, or why the URL is not one.
    pub fn uri(&self) -> Result<&Uri, String> {
        self.uri.as_ref().map_err(Clone::clone)
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

fn http_uri(url: &str) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url}: only http:// destinations are supported"));
    }
    if uri.host().is_none() {
        return Err(format!("{url} has no host"));
    }
    Ok(uri)
}

/// How an event's delivery ended. An offset may be committed after any of these.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered {
        reply: Option<Box<CloudEvent>>,
    },
    DeadLettered {
        status: Option<u16>,
    },
    /// Out of retries and no dead-letter sink (or it refused too): the event is dropped,
    /// loudly.
    Dropped {
        reason: String,
    },
}

/// Knative retries these statuses, and connection failures; any other answer is final.
pub fn retryable(status: u16) -> bool {
    matches!(status, 404 | 408 | 409 | 429) || (500..=599).contains(&status)
}

/// Deliver `event` to `subscriber`, retrying per `policy`, then to `dead_letter`.
pub async fn deliver(
    transport: &dyn Transport,
    event: &CloudEvent,
    subscriber: &Destination,
    dead_letter: Option<&Destination>,
    policy: &DeliveryPolicy,
) -> Outcome {
    let mut last = Attempt::Failed {
        reason: "not attempted".into(),
    };
    for attempt in 0..=policy.retry {
        if attempt > 0 {
            let mut wait = policy.backoff(attempt);
            if let Attempt::Response {
                retry_after: Some(secs),
                ..
            } = &last
            {
                wait = wait.max(Duration::from_secs(*secs).min(policy.max_retry_after));
            }
            tokio::time::sleep(wait).await;
        }
        last = transport.send(subscriber, event, policy.timeout).await;
        match &last {
            Attempt::Response { status, reply, .. } if (200..300).contains(status) => {
                return Outcome::Delivered {
                    reply: reply.clone(),
                };
            }
            Attempt::Response { status, .. } if !retryable(*status) => break,
            _ => {}
        }
    }
    let Some(dls) = dead_letter else {
        return Outcome::Dropped {
            reason: describe(&last),
        };
    };
    let dead = with_error_extensions(event, subscriber.url(), &last);
    if to_dead_letter_sink(transport, &dead, dls, policy).await {
        return Outcome::DeadLettered {
            status: status_of(&last),
        };
    }
    Outcome::Dropped {
        reason: format!(
            "{}; the dead-letter sink {dls} refused it too",
            describe(&last)
        ),
    }
}

/// Send `dead` (an event with its error extensions) to the dead-letter sink `dls`; whether
/// the sink took it. The sink gets the same retries: losing the event there loses it.
pub async fn to_dead_letter_sink(
    transport: &dyn Transport,
    dead: &CloudEvent,
    dls: &Destination,
    policy: &DeliveryPolicy,
) -> bool {
    for attempt in 0..=policy.retry {
        if attempt > 0 {
            tokio::time::sleep(policy.backoff(attempt)).await;
        }
        match transport.send(dls, dead, policy.timeout).await {
            Attempt::Response { status, .. } if (200..300).contains(&status) => return true,
            Attempt::Response { status, .. } if !retryable(status) => break,
            _ => {}
        }
    }
    false
}

fn status_of(a: &Attempt) -> Option<u16> {
    match a {
        Attempt::Response { status, .. } => Some(*status),
        Attempt::Failed { .. } => None,
    }
}

fn describe(a: &Attempt) -> String {
    match a {
        Attempt::Response { status, .. } => format!("the subscriber answered {status}"),
        Attempt::Failed { reason } => format!("the subscriber could not be reached: {reason}"),
    }
}

/// The event as the dead-letter sink gets it: the original plus why it failed.
pub fn with_error_extensions(event: &CloudEvent, destination: &str, last: &Attempt) -> CloudEvent {
    let mut dead = event.clone();
    let (code, data) = match last {
        Attempt::Response { status, body, .. } => (status.to_string(), body.clone()),
        Attempt::Failed { reason } => ("0".to_owned(), Bytes::from(reason.clone())),
    };
    dead.extensions
        .insert(ERROR_CODE.into(), ExtensionValue::String(code));
    dead.extensions.insert(
        ERROR_DEST.into(),
        ExtensionValue::String(destination.to_owned()),
    );
    if !data.is_empty() {
        let data = &data[..data.len().min(ERROR_DATA_MAX)];
        dead.extensions.insert(
            ERROR_DATA.into(),
            ExtensionValue::String(base64::engine::general_purpose::STANDARD.encode(data)),
        );
    }
    dead
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Answers from a script (then 200), recording when each attempt was made.
    #[derive(Debug)]
    pub(crate) struct Scripted {
        answers: Mutex<Vec<Attempt>>,
        pub(crate) seen: Mutex<Vec<(String, tokio::time::Instant, CloudEvent)>>,
    }

    impl Scripted {
        pub(crate) fn new(mut answers: Vec<Attempt>) -> Self {
            answers.reverse();
            Self {
                answers: Mutex::new(answers),
                seen: Mutex::new(Vec::new()),
            }
        }
    }

    #[async_trait]
    impl Transport for Scripted {
        async fn send(&self, to: &Destination, event: &CloudEvent, _timeout: Duration) -> Attempt {
            self.seen.lock().unwrap().push((
                to.url().to_owned(),
                tokio::time::Instant::now(),
                event.clone(),
            ));
            self.answers
                .lock()
                .unwrap()
                .pop()
                .unwrap_or(Attempt::Response {
                    status: 200,
                    retry_after: None,
                    body: Bytes::new(),
                    reply: None,
                })
        }
    }

    pub(crate) fn status(s: u16) -> Attempt {
        Attempt::Response {
            status: s,
            retry_after: None,
            body: Bytes::from_static(b"boom"),
            reply: None,
        }
    }

    fn event() -> CloudEvent {
        CloudEvent::new("1", "/s", "t")
    }

    fn policy(retry: u32, backoff: BackoffPolicy) -> DeliveryPolicy {
        DeliveryPolicy {
            retry,
            backoff,
            delay: Duration::from_millis(100),
            ..DeliveryPolicy::default()
        }
    }

    #[test]
    fn backoff_follows_knative() {
        let lin = policy(5, BackoffPolicy::Linear);
        assert_eq!(lin.backoff(1), Duration::from_millis(100));
        assert_eq!(lin.backoff(3), Duration::from_millis(300));
        let exp = policy(5, BackoffPolicy::Exponential);
        assert_eq!(exp.backoff(1), Duration::from_millis(200));
        assert_eq!(exp.backoff(3), Duration::from_millis(800));
    }

    #[test]
    fn the_spec_sets_the_policy() {
        let spec = DeliverySpec {
            retry: Some(7),
            backoff_policy: Some(BackoffPolicy::Linear),
            backoff_delay: Some("PT0.5S".into()),
            timeout: Some("PT2S".into()),
            ..DeliverySpec::default()
        };
        let p = DeliveryPolicy::from_spec(Some(&spec));
        assert_eq!(
            (p.retry, p.backoff, p.delay, p.timeout),
            (
                7,
                BackoffPolicy::Linear,
                Duration::from_millis(500),
                Duration::from_secs(2)
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_failures_are_retried_with_backoff_then_delivered() {
        let t = Scripted::new(vec![
            status(503),
            Attempt::Failed {
                reason: "refused".into(),
            },
            status(429),
        ]);
        let out = deliver(
            &t,
            &event(),
            &Destination::new("http://sub"),
            None,
            &policy(3, BackoffPolicy::Linear),
        )
        .await;
        assert_eq!(out, Outcome::Delivered { reply: None });
        let seen = t.seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].1 - w[0].1).collect();
        assert_eq!(
            gaps,
            [
                Duration::from_millis(100),
                Duration::from_millis(200),
                Duration::from_millis(300)
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured() {
        let t = Scripted::new(vec![Attempt::Response {
            status: 429,
            retry_after: Some(3),
            body: Bytes::new(),
            reply: None,
        }]);
        deliver(
            &t,
            &event(),
            &Destination::new("http://sub"),
            None,
            &policy(1, BackoffPolicy::Linear),
        )
        .await;
        let seen = t.seen.lock().unwrap();
        assert_eq!(seen[1].1 - seen[0].1, Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_answer_is_not_retried_and_goes_to_the_dead_letter_sink_with_why() {
        let t = Scripted::new(vec![status(400)]);
        let out = deliver(
            &t,
            &event(),
            &Destination::new("http://sub"),
            Some(&Destination::new("http://dls")),
            &policy(5, BackoffPolicy::Exponential),
        )
        .await;
        assert_eq!(out, Outcome::DeadLettered { status: Some(400) });
        let seen = t.seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        let dead = &seen[1];
        assert_eq!(dead.0, "http://dls");
        assert_eq!(dead.2.attribute(ERROR_CODE).as_deref(), Some("400"));
        assert_eq!(dead.2.attribute(ERROR_DEST).as_deref(), Some("http://sub"));
        assert_eq!(dead.2.attribute(ERROR_DATA).as_deref(), Some("Ym9vbQ=="));
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_retries_without_a_sink_is_dropped_with_the_reason() {
        let t = Scripted::new(vec![status(500), status(500), status(500)]);
        let out = deliver(
            &t,
            &event(),
            &Destination::new("http://sub"),
            None,
            &policy(2, BackoffPolicy::Linear),
        )
        .await;
        assert_eq!(
            out,
            Outcome::Dropped {
                reason: "the subscriber answered 500".into()
            }
        );
    }

    #[test]
    fn error_data_is_capped() {
        let last = Attempt::Response {
            status: 500,
            retry_after: None,
            body: Bytes::from(vec![b'x'; 5000]),
            reply: None,
        };
        let dead = with_error_extensions(&event(), "http://sub", &last);
        let data = dead.attribute(ERROR_DATA).unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap();
        assert_eq!(decoded.len(), ERROR_DATA_MAX);
    }
}
