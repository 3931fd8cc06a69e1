//! [`SlackApiNotifier`]: posts the playbook's messages with a bot token through the
//! Slack Web API, one thread per incident.
//!
//! Every message is a `chat.postMessage` (`POST` of JSON with
//! `Authorization: Bearer <token>`) to one channel id. The first
//! [`Announcement`](MessageKind::Announcement) of an incident is posted top-level and
//! its `ts` remembered; every later message of that incident is a reply in its thread
//! (`thread_ts`). A [`Resolution`](MessageKind::Resolution) also edits the announcement
//! (`chat.update`) so that the channel's top message shows the outcome without opening
//! the thread. A message whose incident has no announcement (yet) is posted top-level.
//!
//! The text is built like the webhook's ([`SlackNotifier`](crate::SlackNotifier)):
//! the mentions first, unescaped and space-separated on a line of their own, then the
//! core [`Message::text`] with `&`, `<` and `>` escaped.
//!
//! Slack answers most failures with HTTP 200 and `{"ok": false, "error": "…"}`; the
//! error string is mapped to the core [`Error`], naming it: `invalid_auth`,
//! `not_authed`, `account_inactive`, `token_revoked` and `missing_scope` are
//! `PermissionDenied`; `channel_not_found` and `not_in_channel` `NotFound`;
//! `ratelimited` `Transient`; any other `Failed`. HTTP 429 is [`Error::Transient`]
//! whose `source()` is a [`RateLimited`] carrying the `Retry-After` delay, itself over
//! a core [`RetryAfter`](meshos_rollback_core::error::RetryAfter), so the core retry
//! layer waits at least that long; other
//! HTTP failures are mapped like every provider's (5xx `Transient`). The bot token is a credential: kept in a [`SecretString`], it
//! appears in no `Debug`, `Display`, error or log line (reqwest marks the bearer header
//! sensitive, so its own logs show it as `Sensitive`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use meshos_rollback_core::provider::{Message, MessageKind, Notifier};
use meshos_rollback_core::{Error, Result};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::client::{default_client, display_url, parse_http_url, read_body};
use crate::error::{self, Context};
use crate::slack::escape;

/// Slack's Web API.
pub const DEFAULT_BASE_URL: &str = "https://slack.com/api/";
/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds a [`SlackApiNotifier`].
#[derive(Debug, Clone)]
pub struct SlackApiNotifierBuilder {
    token: SecretString,
    channel: String,
    base_url: String,
    label: Option<String>,
    client: Option<reqwest::Client>,
    timeout: Duration,
}

impl SlackApiNotifierBuilder {
    /// Calls the Web API at this base URL instead of [`DEFAULT_BASE_URL`] (a local
    /// server in tests, a proxy).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Names the channel in `Display` (`Slack API(#rollbacks)`); by default the
    /// channel id is shown.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Uses this client instead of the crate's default one. Do not enable
    /// `connection_verbose` on it: that logs request bytes, the bot token included.
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Sets the per-request timeout (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the settings (without ever printing the token) and builds the notifier.
    pub fn build(self) -> Result<SlackApiNotifier> {
        if self.token.expose_secret().trim().is_empty() {
            return Err(Error::invalid("slack_api.bot_token", "must not be empty"));
        }
        let channel = self.channel.trim().to_owned();
        if channel.is_empty() {
            return Err(Error::invalid("slack_api.channel", "must not be empty"));
        }
        let base = parse_http_url("slack_api.base_url", &self.base_url)?;
        let method_url = |method: &str| {
            base.join(&format!("{}/{method}", base.path().trim_end_matches('/')))
                .map_err(|e| Error::invalid("slack_api.base_url", e.to_string()))
        };
        let post_url = method_url("chat.postMessage")?;
        let update_url = method_url("chat.update")?;
        if self.timeout.is_zero() {
            return Err(Error::invalid(
                "slack_api.timeout",
                "must be longer than zero",
            ));
        }
        let shown = format!("Slack API({})", self.label.as_deref().unwrap_or(&channel));
        let client = match self.client {
            Some(c) => c,
            None => default_client(&shown)?,
        };
        Ok(SlackApiNotifier {
            token: self.token,
            channel,
            base: display_url(&base),
            post_url,
            update_url,
            shown,
            client,
            timeout: self.timeout,
            threads: Mutex::new(HashMap::new()),
            sent: Mutex::new(HashSet::new()),
        })
    }
}

/// A [`Notifier`] that posts with a bot token through Slack's Web API, threading each
/// incident's messages under its announcement.
///
/// `Display` is `Slack API(<label or channel id>)`; `Debug` redacts the token.
///
/// # Repeated sends
/// Slack documents no idempotency key for a bot's `chat.postMessage`, and the core
/// retry layer repeats a send whose first attempt failed in transit, including one
/// whose request Slack did carry out. So the notifier remembers (for its own life, in
/// memory) a hash of every message it posted successfully, keyed by incident, kind,
/// text and mentions, and answers a repeated identical send with `Ok` without posting
/// again; the same holds for the announcement's `chat.update`.
///
/// That covers a send repeated after a success, not every duplicate: when an attempt
/// times out (or its answer is lost) *after* Slack posted the message, the notifier
/// never learns that it was posted, and the retry posts it a second time. A duplicate
/// chat message is better than a missing one, which is why the core marks `send`
/// retryable. Two identical sends running at the same time may both post, too.
///
/// # Stakeholder e-mail
/// A [`MessageKind::StakeholderEmail`] is refused with [`Error::Unsupported`] before
/// any request: an e-mail (with its subject and its `[ONGOING]`/`[RESOLVED]`
/// audience) is not a chat message, and posting it to the incident channel would
/// show the stakeholders' wording to the wrong readers. Send it through an e-mail
/// notifier instead.
pub struct SlackApiNotifier {
    token: SecretString,
    channel: String,
    base: String,
    post_url: url::Url,
    update_url: url::Url,
    shown: String,
    client: reqwest::Client,
    timeout: Duration,
    /// The announcement of each incident, by incident id.
    threads: Mutex<HashMap<String, Announcement>>,
    /// Hashes of the posts and updates already carried out.
    sent: Mutex<HashSet<u64>>,
}

/// Where an incident's announcement is, and what it said. Its JSON is the thread
/// token the engine journals ([`Notifier::thread`]).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Announcement {
    /// The channel id Slack answered with (`chat.update` takes ids only).
    channel: String,
    ts: String,
    /// The posted text, mentions included, already escaped.
    text: String,
}

impl SlackApiNotifier {
    /// A builder for a bot token (`xoxb-…`, with the `chat:write` scope) and the
    /// channel id to post to (`C0123ABCD`; the bot must be a member). The token is
    /// taken from the caller: this crate reads no environment or file on its own.
    pub fn builder(bot_token: SecretString, channel: impl Into<String>) -> SlackApiNotifierBuilder {
        SlackApiNotifierBuilder {
            token: bot_token,
            channel: channel.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            label: None,
            client: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Calls one Web API method and returns its answer when Slack says `ok`.
    async fn call<B: Serialize>(
        &self,
        method: &str,
        url: &url::Url,
        body: &B,
        operation: &str,
    ) -> Result<Answer> {
        let secret = self.token.expose_secret();
        let secrets = [secret];
        let ctx = Context {
            provider: &self.shown,
            operation,
            input: "message.text",
            timeout: self.timeout,
        };
        let bytes = serde_json::to_vec(body).map_err(|e| error::bad_answer(&ctx, e))?;
        let response = self
            .client
            .post(url.clone())
            .timeout(self.timeout)
            .bearer_auth(secret)
            // The Web API reads a JSON body only with this exact content type.
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .body(bytes)
            .send()
            .await
            .map_err(|e| error::from_reqwest(&ctx, e, &secrets))?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS
            && let Some(after) = retry_after(response.headers())
        {
            return Err(rate_limited(&ctx, method, after));
        }
        if !status.is_success() {
            let detail = read_body(response)
                .await
                .map(|b| error::excerpt(&b))
                .unwrap_or_default();
            return Err(error::from_status(&ctx, status, &detail, &secrets));
        }
        let after = retry_after(response.headers());
        let body = read_body(response)
            .await
            .map_err(|e| error::from_reqwest(&ctx, e, &secrets))?;
        let answer: Answer = serde_json::from_str(&body).map_err(|e| {
            error::bad_answer(
                &ctx,
                format!("{e}: {}", error::redact(&error::excerpt(&body), &secrets)),
            )
        })?;
        if answer.ok {
            return Ok(answer);
        }
        let code = error::redact(answer.error.as_deref().unwrap_or("unknown_error"), &secrets);
        if code == "ratelimited"
            && let Some(after) = after
        {
            return Err(rate_limited(&ctx, method, after));
        }
        Err(error_for(
            &ctx,
            method,
            &self.channel,
            &code,
            answer.needed.as_deref(),
        ))
    }

    fn threads(&self) -> MutexGuard<'_, HashMap<String, Announcement>> {
        self.threads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn sent(&self) -> MutexGuard<'_, HashSet<u64>> {
        self.sent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for SlackApiNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlackApiNotifier")
            .field("bot_token", &"[redacted]")
            .field("channel", &self.channel)
            .field("base_url", &self.base)
            .field("shown", &self.shown)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for SlackApiNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// The `chat.postMessage` arguments this notifier uses
/// (<https://api.slack.com/methods/chat.postMessage>).
#[derive(Serialize)]
struct PostMessage<'a> {
    channel: &'a str,
    text: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    thread_ts: Option<&'a str>,
}

/// The `chat.update` arguments (<https://api.slack.com/methods/chat.update>).
#[derive(Serialize)]
struct Update<'a> {
    channel: &'a str,
    ts: &'a str,
    text: &'a str,
}

/// The fields of a Web API answer this notifier reads.
#[derive(Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    /// The scope a `missing_scope` answer asks for.
    #[serde(default)]
    needed: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    ts: Option<String>,
}

/// Slack asked to wait before the next call (HTTP 429 with `Retry-After`,
/// <https://api.slack.com/docs/rate-limits>): the `source()` of the
/// [`Error::Transient`] it is reported as, so a retry policy can find the delay with
/// `downcast_ref::<RateLimited>()`. Its own source is the core
/// [`RetryAfter`](meshos_rollback_core::error::RetryAfter) the core `RetryLayer` reads
/// ([`Error::retry_after`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimited {
    method: String,
    retry_after: Duration,
    hint: meshos_rollback_core::error::RetryAfter,
}

impl RateLimited {
    /// How long Slack asked to wait.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    /// The Web API method that was limited (`chat.postMessage`).
    pub fn method(&self) -> &str {
        &self.method
    }
}

impl fmt::Display for RateLimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is rate limited; retry after {:?}",
            self.method, self.retry_after
        )
    }
}

impl std::error::Error for RateLimited {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.hint)
    }
}

/// `Retry-After` in seconds, as Slack sends it.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

fn rate_limited(ctx: &Context<'_>, method: &str, after: Duration) -> Error {
    let limited = RateLimited {
        method: method.to_owned(),
        retry_after: after,
        hint: meshos_rollback_core::error::RetryAfter(after),
    };
    Error::Transient {
        provider: ctx.provider.to_owned(),
        message: format!("{}: {limited}", ctx.operation),
        source: Some(Box::new(limited)),
    }
}

/// Maps an `ok: false` error string to the core error: credentials and scopes are
/// `PermissionDenied`, a channel the bot cannot see is `NotFound`, `ratelimited`
/// (without `Retry-After`) is `Transient`, anything else `Failed`. The message names
/// the method and Slack's error string.
fn error_for(
    ctx: &Context<'_>,
    method: &str,
    channel: &str,
    code: &str,
    needed: Option<&str>,
) -> Error {
    let provider = ctx.provider.to_owned();
    let message = match needed {
        Some(scope) => format!("{}: {method}: {code} (needs {scope})", ctx.operation),
        None => format!("{}: {method}: {code}", ctx.operation),
    };
    match code {
        "invalid_auth" | "not_authed" | "account_inactive" | "token_revoked" | "missing_scope" => {
            Error::PermissionDenied {
                provider,
                message,
                source: None,
            }
        }
        "channel_not_found" | "not_in_channel" => Error::NotFound {
            provider,
            what: format!("channel {channel} ({message})"),
        },
        "ratelimited" => Error::Transient {
            provider,
            message,
            source: None,
        },
        _ => Error::Failed {
            provider,
            message,
            source: None,
        },
    }
}

/// Mentions are Slack's own markup (`<@U024BE7LH>`, `<!subteam^SAZ94GDB8>`,
/// `<#C0123>`, `<!here>`) and go out unescaped, so anything else is refused rather
/// than posted as markup.
fn check_mention(mention: &str) -> Result<()> {
    let inner = mention
        .strip_prefix('<')
        .and_then(|m| m.strip_suffix('>'))
        .filter(|m| m.starts_with(['@', '#', '!']) && m.len() > 1);
    match inner {
        Some(m) if !m.contains(['<', '>']) && !m.chars().any(char::is_control) => Ok(()),
        _ => Err(Error::invalid(
            "message.mentions",
            format!(
                "{mention:?} is not a Slack mention such as <@U024BE7LH> or <!subteam^SAZ94GDB8>"
            ),
        )),
    }
}

/// The mentions (as given) on the first line, then the escaped text.
fn compose(message: &Message) -> Result<String> {
    for m in &message.mentions {
        check_mention(m)?;
    }
    let text = escape(&message.text);
    if message.mentions.is_empty() {
        return Ok(text);
    }
    Ok(format!("{}\n{text}", message.mentions.join(" ")))
}

/// The announcement followed by the resolution's first line: the current state.
fn resolved(announcement: &str, resolution: &str) -> String {
    let state = resolution
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    format!("{announcement}\n{}", escape(state.trim()))
}

/// Identifies one post or update within this notifier's life.
fn key(step: &str, message: &Message) -> u64 {
    let mut h = DefaultHasher::new();
    (
        step,
        &message.incident_id,
        message.kind,
        &message.text,
        &message.mentions,
    )
        .hash(&mut h);
    h.finish()
}

#[async_trait]
impl Notifier for SlackApiNotifier {
    async fn send(&self, message: &Message) -> Result<()> {
        if message.kind == MessageKind::StakeholderEmail {
            return Err(Error::unsupported(
                &self.shown,
                "posting a stakeholder e-mail as a chat message",
            ));
        }
        if message.text.trim().is_empty() {
            return Err(Error::invalid("message.text", "must not be empty"));
        }
        let text = compose(message)?;
        let thread = self.threads().get(&message.incident_id).cloned();

        let post = key("post", message);
        if !self.sent().contains(&post) {
            let operation = format!("post {:?} message of {}", message.kind, message.incident_id);
            let body = PostMessage {
                channel: &self.channel,
                text: &text,
                thread_ts: thread.as_ref().map(|t| t.ts.as_str()),
            };
            let answer = self
                .call("chat.postMessage", &self.post_url, &body, &operation)
                .await?;
            // Remembered before anything else can fail: the message is in the channel.
            self.sent().insert(post);
            if message.kind == MessageKind::Announcement && thread.is_none() {
                let ctx = Context {
                    provider: &self.shown,
                    operation: &operation,
                    input: "message.text",
                    timeout: self.timeout,
                };
                let ts = answer
                    .ts
                    .ok_or_else(|| error::bad_answer(&ctx, "chat.postMessage answered no ts"))?;
                let channel = answer.channel.unwrap_or_else(|| self.channel.clone());
                self.threads()
                    .entry(message.incident_id.clone())
                    .or_insert(Announcement { channel, ts, text });
            }
        }

        let update = key("update", message);
        // Looked up apart from the `if`: a guard in a let chain would live on
        // through the `.await` below.
        let updated = self.sent().contains(&update);
        if message.kind == MessageKind::Resolution
            && !updated
            && let Some(thread) = thread
        {
            let operation = format!("mark the announcement of {} resolved", message.incident_id);
            let text = resolved(&thread.text, &message.text);
            let body = Update {
                channel: &thread.channel,
                ts: &thread.ts,
                text: &text,
            };
            self.call("chat.update", &self.update_url, &body, &operation)
                .await?;
            self.sent().insert(update);
        }
        Ok(())
    }

    fn thread(&self, incident_id: &str) -> Option<String> {
        let thread = self.threads().get(incident_id).cloned()?;
        serde_json::to_string(&thread).ok()
    }

    fn continue_thread(&self, incident_id: &str, thread: &str) {
        match serde_json::from_str::<Announcement>(thread) {
            Ok(a) => {
                self.threads().entry(incident_id.to_owned()).or_insert(a);
            }
            // A token from another notifier or version: a new thread, not a failure.
            Err(e) => {
                tracing::warn!(incident = incident_id, error = %e, "cannot continue the Slack thread; the next message starts a new one")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meshos_rollback_core::ErrorKind;

    fn builder() -> SlackApiNotifierBuilder {
        SlackApiNotifier::builder(SecretString::from("xoxb-0000-sekrit"), "C0ROLLBACK")
    }

    #[test]
    fn mentions_come_first_unescaped_and_the_text_is_escaped() {
        let m = Message::new(MessageKind::Escalation, "INC-1", "P95 > 2s & rising")
            .with_mentions(["<@U024BE7LH>".to_owned(), "<!subteam^SAZ94GDB8>".to_owned()]);
        assert_eq!(
            compose(&m).unwrap(),
            "<@U024BE7LH> <!subteam^SAZ94GDB8>\nP95 &gt; 2s &amp; rising"
        );
        let plain = Message::new(MessageKind::Info, "INC-1", "<!channel>");
        assert_eq!(compose(&plain).unwrap(), "&lt;!channel&gt;");
    }

    #[test]
    fn anything_but_a_slack_mention_is_refused() {
        for bad in [
            "@oncall",
            "<>",
            "<@>",
            "<@U1><!channel>",
            "U024BE7LH",
            "<@U1\n>",
        ] {
            let m = Message::new(MessageKind::Info, "INC-1", "x").with_mentions([bad.to_owned()]);
            assert_eq!(
                compose(&m).unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
        for good in [
            "<@U024BE7LH>",
            "<!subteam^SAZ94GDB8|@sre>",
            "<!here>",
            "<#C0123>",
        ] {
            check_mention(good).unwrap();
        }
    }

    #[test]
    fn the_resolved_announcement_ends_with_the_current_state() {
        assert_eq!(
            resolved(
                "🔄 ROLLBACK IN PROGRESS\nRegion: us-east-1",
                "\n✅ ROLLBACK COMPLETE <fast>\nHealth checks passing"
            ),
            "🔄 ROLLBACK IN PROGRESS\nRegion: us-east-1\n✅ ROLLBACK COMPLETE &lt;fast&gt;"
        );
    }

    #[test]
    fn method_urls_keep_a_base_path_and_display_hides_the_token() {
        let n = builder()
            .with_base_url("http://127.0.0.1:1/api")
            .build()
            .unwrap();
        assert_eq!(
            n.post_url.as_str(),
            "http://127.0.0.1:1/api/chat.postMessage"
        );
        assert_eq!(n.update_url.as_str(), "http://127.0.0.1:1/api/chat.update");
        assert_eq!(n.to_string(), "Slack API(C0ROLLBACK)");
        let n = builder().with_label("#rollbacks").build().unwrap();
        assert_eq!(
            n.post_url.as_str(),
            "https://slack.com/api/chat.postMessage"
        );
        assert_eq!(n.to_string(), "Slack API(#rollbacks)");
        assert!(!format!("{n:?}").contains("sekrit"), "{n:?}");
    }

    #[test]
    fn bad_settings_are_refused_without_echoing_the_token() {
        let empty = SlackApiNotifier::builder(SecretString::from(" "), "C0").build();
        assert_eq!(empty.unwrap_err().kind(), ErrorKind::InvalidInput);
        let no_channel = SlackApiNotifier::builder(SecretString::from("xoxb-sekrit"), " ").build();
        assert_eq!(no_channel.unwrap_err().kind(), ErrorKind::InvalidInput);
        let e = builder()
            .with_base_url("slack.com/api")
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(!format!("{e} {e:?}").contains("sekrit"));
        let e = builder().with_timeout(Duration::ZERO).build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn slack_error_strings_are_classified() {
        let ctx = Context {
            provider: "Slack API(#r)",
            operation: "post",
            input: "message.text",
            timeout: DEFAULT_TIMEOUT,
        };
        let kind = |code: &str| error_for(&ctx, "chat.postMessage", "C0", code, None).kind();
        for code in [
            "invalid_auth",
            "not_authed",
            "account_inactive",
            "token_revoked",
            "missing_scope",
        ] {
            assert_eq!(kind(code), ErrorKind::PermissionDenied, "{code}");
        }
        assert_eq!(kind("channel_not_found"), ErrorKind::NotFound);
        assert_eq!(kind("not_in_channel"), ErrorKind::NotFound);
        assert_eq!(kind("ratelimited"), ErrorKind::Transient);
        assert_eq!(kind("msg_too_long"), ErrorKind::Failed);
        let e = error_for(
            &ctx,
            "chat.postMessage",
            "C0",
            "missing_scope",
            Some("chat:write"),
        );
        assert_eq!(
            e.to_string(),
            "Slack API(#r): permission denied: post: chat.postMessage: missing_scope (needs chat:write)"
        );
    }
}
