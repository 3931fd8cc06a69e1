//! A local stand-in for the two Slack Web API methods the bot notifier calls, strict
//! where the reference is: <https://api.slack.com/methods/chat.postMessage>,
//! <https://api.slack.com/methods/chat.update> and
//! <https://api.slack.com/docs/rate-limits>.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    /// `chat.postMessage` or `chat.update`.
    pub(crate) method: String,
    pub(crate) authorization: Option<String>,
    pub(crate) content_type: String,
    pub(crate) body: Value,
}

/// A message in the fake channel.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Posted {
    pub(crate) channel: String,
    pub(crate) ts: String,
    pub(crate) thread_ts: Option<String>,
    pub(crate) text: String,
}

/// What to do with the next request instead of the normal behaviour.
#[derive(Debug, Clone)]
pub(crate) enum Next {
    /// HTTP 429 with `Retry-After: <secs>` and `{"ok":false,"error":"ratelimited"}`
    /// (rate-limits page: "HTTP 429 Too Many Requests error, and a Retry-After HTTP
    /// header containing the number of seconds until you can retry").
    RateLimited(u64),
    /// HTTP 200 with `{"ok":false,"error":<code>}`: how every method reports errors.
    Error(&'static str),
    /// A bare HTTP status (a 5xx from Slack's edge), body `<status>`.
    Status(u16),
    /// Carries the request out normally, then answers only after the delay (an
    /// answer lost to the caller's timeout).
    Late(Duration),
    /// Carries the request out normally (to queue a special answer after it).
    Normal,
}

#[derive(Default)]
struct Shared {
    token: String,
    channels: Vec<String>,
    calls: Mutex<Vec<Call>>,
    messages: Mutex<Vec<Posted>>,
    next: Mutex<VecDeque<Next>>,
}

/// The fake; stops when dropped.
pub(crate) struct FakeSlack {
    /// The base URL to give the notifier (`http://127.0.0.1:<port>/api/`).
    pub(crate) base_url: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeSlack {
    /// A workspace where `token` is the only valid bot token and `channels` the only
    /// channel ids the bot is a member of.
    pub(crate) async fn start(token: &str, channels: &[&str]) -> Self {
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            ..Shared::default()
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}/api/", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        FakeSlack {
            base_url,
            shared,
            task,
        }
    }

    /// Queues special answers for the next requests.
    pub(crate) fn next(&self, next: impl IntoIterator<Item = Next>) {
        self.shared.next.lock().unwrap().extend(next);
    }

    /// Every request so far.
    pub(crate) fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// The channel's messages, oldest first, as edited by `chat.update`.
    pub(crate) fn messages(&self) -> Vec<Posted> {
        self.shared.messages.lock().unwrap().clone()
    }
}

fn answer(body: Value) -> Response {
    (StatusCode::OK, axum::Json(body)).into_response()
}

fn slack_error(code: &str) -> Response {
    answer(json!({ "ok": false, "error": code }))
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let get = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let call = Call {
        method: uri.path().trim_start_matches("/api/").to_owned(),
        authorization: get(header::AUTHORIZATION),
        content_type: get(header::CONTENT_TYPE).unwrap_or_default(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    shared.calls.lock().unwrap().push(call.clone());
    let next = shared.next.lock().unwrap().pop_front();
    let late = match next {
        Some(Next::RateLimited(secs)) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, secs.to_string())],
                axum::Json(json!({ "ok": false, "error": "ratelimited" })),
            )
                .into_response();
        }
        Some(Next::Error(code)) => return slack_error(code),
        Some(Next::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap();
            return (status, status.to_string()).into_response();
        }
        Some(Next::Late(delay)) => Some(delay),
        Some(Next::Normal) | None => None,
    };
    let reply = carry_out(&shared, &call);
    if let Some(delay) = late {
        tokio::time::sleep(delay).await;
    }
    reply
}

/// The method's documented behaviour, errors first.
fn carry_out(shared: &Shared, call: &Call) -> Response {
    // Both method pages: `not_authed` "No authentication token provided",
    // `invalid_auth` "Some aspect of authentication cannot be validated".
    match call.authorization.as_deref() {
        None => return slack_error("not_authed"),
        Some(a) if a != format!("Bearer {}", shared.token) => return slack_error("invalid_auth"),
        Some(_) => {}
    }
    // JSON bodies are read only with `Content-type: application/json`; anything else
    // is form data, which these bodies are not.
    if !call.content_type.starts_with("application/json") || !call.body.is_object() {
        return slack_error("invalid_form_data");
    }
    let field = |name: &str| {
        call.body
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let Some(channel) = field("channel").filter(|c| shared.channels.contains(c)) else {
        return slack_error("channel_not_found");
    };
    let Some(text) = field("text").filter(|t| !t.is_empty()) else {
        return slack_error("no_text");
    };
    let mut messages = shared.messages.lock().unwrap();
    match call.method.as_str() {
        "chat.postMessage" => {
            let thread_ts = field("thread_ts");
            // Stricter than Slack, which may post a reply to an unknown parent
            // top-level: a reply must name a message this fake issued.
            let known = |parent: &String| {
                messages
                    .iter()
                    .any(|m| &m.ts == parent && m.channel == channel)
            };
            if thread_ts.as_ref().is_some_and(|p| !known(p)) {
                return slack_error("thread_not_found");
            }
            let ts = format!("1700000000.{:06}", messages.len() + 1);
            messages.push(Posted {
                channel: channel.clone(),
                ts: ts.clone(),
                thread_ts,
                text: text.clone(),
            });
            answer(json!({
                "ok": true,
                "channel": channel,
                "ts": ts,
                "message": { "type": "message", "text": text, "ts": ts },
            }))
        }
        "chat.update" => {
            // `message_not_found`: "No message exists with the requested timestamp."
            let ts = field("ts").unwrap_or_default();
            let Some(m) = messages
                .iter_mut()
                .find(|m| m.ts == ts && m.channel == channel)
            else {
                return slack_error("message_not_found");
            };
            m.text = text.clone();
            answer(json!({ "ok": true, "channel": channel, "ts": ts, "text": text }))
        }
        _ => slack_error("unknown_method"),
    }
}
