//! [`TeamsNotifier`]: posts the playbook's messages to a Microsoft Teams channel
//! through a Workflows webhook.
//!
//! Office 365 connectors (the old "Incoming Webhook") are retired; a channel now
//! takes webhooks through a Power Automate flow whose trigger is *When a Teams
//! webhook request is received* (template *Send webhook alerts to a channel*). Such
//! a flow expects a Bot Framework `message` with one Adaptive Card attachment, and
//! answers `202 Accepted`:
//!
//! ```json
//! {"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive",
//!   "contentUrl":null,"content":{"$schema":"http://adaptivecards.io/schemas/adaptive-card.json",
//!   "type":"AdaptiveCard","version":"1.4","body":[…]}}]}
//! ```
//!
//! The card's body holds one `TextBlock` per line of [`Message::text`]: the first
//! line in bold (`"weight":"bolder"`), every block with `"wrap":true`; blank lines
//! are left out, since an empty `TextBlock` shows nothing.
//!
//! # Plain text stays plain
//! A `TextBlock` renders a subset of Markdown
//! ([text features](https://learn.microsoft.com/adaptive-cards/authoring-cards/text-features),
//! [Teams card formatting](https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/cards-format)):
//! `**bold**`, `_italic_`, `[title](url)` links and `- ` / `1. ` lists. So that the
//! channel shows the text the engine rendered, these are escaped with a backslash
//! (CommonMark's escape, which the Adaptive Card renderers honour):
//! - anywhere: `\` `*` `_` `[` `]` `` ` `` `~`;
//! - at the start of a line (after spaces): `-` `+` `#` `>`, and the `.` or `)`
//!   after leading digits (`1.` would start a numbered list).
//!
//! `<`, `>` and `&` are left alone: Adaptive Cards render no HTML, and Teams turns
//! `<at>…</at>` into a mention only when a matching entity (below) is sent.
//!
//! # Mentions
//! [`Message::mentions`] entries of the form `Display Name <id>`, where `id` is the
//! person's Entra ID (Azure AD) user principal name or object ID, become card
//! mentions ([mention support within Adaptive Cards](https://learn.microsoft.com/microsoftteams/platform/task-modules-and-cards/cards/cards-format#mention-support-within-adaptive-cards)):
//! a leading `TextBlock` with `<at>Display Name</at>` for each, and one
//! `{"type":"mention","text":"<at>Display Name</at>","mentioned":{"id":…,"name":…}}`
//! object per person in the card's `msteams.entities`. An entry without `<id>`
//! cannot notify anyone; it is shown in that block as escaped plain text.
//!
//! # Secrets
//! The webhook URL carries a `sig=` signature in its query: anyone holding it can
//! post to the channel. It is kept in a [`SecretString`] and appears in no `Debug`,
//! `Display`, error or log line; `Display` is `Teams(<label or webhook host>)`.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use meshos_rollback_core::provider::{Message, MessageKind, Notifier};
use meshos_rollback_core::{Error, Result};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use crate::client::{default_client, parse_http_url, read_body, retry_after, with_retry_after};
use crate::error::{self, Context};

/// The default per-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The `contentType` of an Adaptive Card attachment.
pub const ADAPTIVE_CARD_CONTENT_TYPE: &str = "application/vnd.microsoft.card.adaptive";
/// The Adaptive Card schema version sent; 1.4 is the newest Teams renders on every
/// client.
pub const ADAPTIVE_CARD_VERSION: &str = "1.4";
/// Teams refuses webhook messages larger than 28 KB; a larger card is refused here,
/// before sending, with [`ErrorKind::InvalidInput`](meshos_rollback_core::ErrorKind).
pub const MAX_PAYLOAD_BYTES: usize = 28 * 1024;

/// Builds a [`TeamsNotifier`].
#[derive(Debug, Clone)]
pub struct TeamsNotifierBuilder {
    webhook: SecretString,
    label: Option<String>,
    client: Option<reqwest::Client>,
    timeout: Duration,
}

impl TeamsNotifierBuilder {
    /// Names the channel in `Display` (`Teams(#rollbacks)`); by default the
    /// webhook's host is shown.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Uses this client instead of the crate's default one. Do not enable
    /// `connection_verbose` on it: that logs request bytes, the signature included.
    pub fn with_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Sets the per-request timeout (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Checks the webhook URL (without ever printing it) and builds the notifier.
    pub fn build(self) -> Result<TeamsNotifier> {
        let url = parse_http_url("teams.webhook_url", self.webhook.expose_secret())?;
        if self.timeout.is_zero() {
            return Err(Error::invalid("teams.timeout", "must be longer than zero"));
        }
        let label = self
            .label
            .unwrap_or_else(|| url.host_str().unwrap_or("webhook").to_owned());
        let shown = format!("Teams({label})");
        let client = match self.client {
            Some(c) => c,
            None => default_client(&shown)?,
        };
        let secrets = secret_parts(self.webhook.expose_secret());
        Ok(TeamsNotifier {
            webhook: self.webhook,
            secrets,
            shown,
            client,
            timeout: self.timeout,
        })
    }
}

/// A [`Notifier`] that posts Adaptive Cards to a Teams Workflows webhook.
///
/// `Display` is `Teams(<label or webhook host>)`; `Debug` redacts the webhook.
/// [`MessageKind::StakeholderEmail`] is refused as
/// [`ErrorKind::Unsupported`](meshos_rollback_core::ErrorKind): a channel post is not
/// the stakeholder e-mail.
pub struct TeamsNotifier {
    webhook: SecretString,
    /// Every part of the webhook that must not show, longest first.
    secrets: Vec<String>,
    shown: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl TeamsNotifier {
    /// A builder for the Workflows webhook URL (the HTTP URL of the flow's trigger,
    /// with its `sig=` signature), taken from the caller: this crate reads no
    /// environment or file on its own.
    pub fn builder(webhook_url: SecretString) -> TeamsNotifierBuilder {
        TeamsNotifierBuilder {
            webhook: webhook_url,
            label: None,
            client: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Debug for TeamsNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TeamsNotifier")
            .field("webhook", &"[redacted]")
            .field("shown", &self.shown)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for TeamsNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// What to redact from anything a server says: the webhook URL, its path and query,
/// every long query value (the `sig` above all, as sent and decoded) and every long
/// path segment (the workflow ID), longest first.
fn secret_parts(webhook: &str) -> Vec<String> {
    let mut parts = vec![webhook.to_owned()];
    if let Ok(url) = url::Url::parse(webhook) {
        if url.path().len() > 1 {
            parts.push(url.path().to_owned());
        }
        if let Some(query) = url.query() {
            parts.push(query.to_owned());
            for pair in query.split('&') {
                if let Some((_, raw)) = pair.split_once('=')
                    && raw.len() >= 8
                {
                    parts.push(raw.to_owned());
                }
            }
            for (_, value) in url.query_pairs() {
                if value.len() >= 8 {
                    parts.push(value.into_owned());
                }
            }
        }
        parts.extend(
            url.path_segments()
                .into_iter()
                .flatten()
                .filter(|s| s.len() >= 16)
                .map(str::to_owned),
        );
    }
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    parts.dedup();
    parts
}

/// Escapes what a `TextBlock` would read as Markdown (see the module docs).
pub(crate) fn escape(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 8);
    let indent = line.len() - line.trim_start().len();
    out.push_str(&line[..indent]);
    let rest = &line[indent..];
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    for (i, c) in rest.char_indices() {
        let at_start = i == 0 && matches!(c, '-' | '+' | '#' | '>');
        let after_number = digits > 0 && i == digits && matches!(c, '.' | ')');
        if at_start || after_number || matches!(c, '\\' | '*' | '_' | '[' | ']' | '`' | '~') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A person to notify: `Display Name <id>`.
#[derive(Debug, PartialEq, Eq)]
struct Mention<'a> {
    name: &'a str,
    id: &'a str,
}

/// Reads `Display Name <upn-or-object-id>`; `None` for anything else.
fn parse_mention(entry: &str) -> Option<Mention<'_>> {
    let entry = entry.trim();
    let (name, id) = entry.strip_suffix('>')?.rsplit_once('<')?;
    let (name, id) = (name.trim(), id.trim());
    let bad = |s: &str| s.is_empty() || s.contains(['<', '>']);
    if bad(name) || bad(id) || id.contains(char::is_whitespace) {
        return None;
    }
    Some(Mention { name, id })
}

fn text_block(text: String) -> Value {
    json!({ "type": "TextBlock", "text": text, "wrap": true })
}

/// The whole request body for one message.
pub(crate) fn payload(message: &Message) -> Value {
    let mut body = Vec::new();
    let mut entities = Vec::new();
    if !message.mentions.is_empty() {
        let mut shown = Vec::new();
        for entry in &message.mentions {
            match parse_mention(entry) {
                Some(m) => {
                    let tag = format!("<at>{}</at>", m.name);
                    entities.push(json!({
                        "type": "mention",
                        "text": tag,
                        "mentioned": { "id": m.id, "name": m.name },
                    }));
                    shown.push(tag);
                }
                None => shown.push(escape(entry.trim())),
            }
        }
        body.push(text_block(shown.join(" ")));
    }
    let mut lines = message
        .text
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty());
    if let Some(first) = lines.next() {
        body.push(json!({
            "type": "TextBlock",
            "text": escape(first),
            "weight": "bolder",
            "wrap": true,
        }));
    }
    body.extend(lines.map(|l| text_block(escape(l))));
    let mut card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "body": body,
    });
    if !entities.is_empty() {
        card["msteams"] = json!({ "entities": entities });
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": ADAPTIVE_CARD_CONTENT_TYPE,
            "contentUrl": null,
            "content": card,
        }],
    })
}

/// What a flow says when it refuses a request,
/// `{"error":{"code":"TriggerInputSchemaMismatch","message":"…"}}`, as
/// `code: message`; otherwise the start of the body.
fn refusal(body: &str) -> String {
    let parsed: Option<(String, String)> = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let e = v.get("error")?;
        let code = e.get("code").and_then(Value::as_str).unwrap_or("");
        let message = e.get("message").and_then(Value::as_str).unwrap_or("");
        Some((code.to_owned(), message.to_owned()))
    });
    match parsed {
        Some((code, message)) if !code.is_empty() || !message.is_empty() => {
            let joined = [code, message]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
            error::excerpt(&joined)
        }
        _ => error::excerpt(body),
    }
}

#[async_trait]
impl Notifier for TeamsNotifier {
    async fn send(&self, message: &Message) -> Result<()> {
        if message.kind == MessageKind::StakeholderEmail {
            return Err(Error::Unsupported {
                provider: self.shown.clone(),
                operation: "sending the stakeholder e-mail".into(),
            });
        }
        if message.text.trim().is_empty() {
            return Err(Error::invalid("message.text", "must not be empty"));
        }
        let body = serde_json::to_vec(&payload(message))
            .map_err(|e| Error::failed(&self.shown, format!("cannot encode the card: {e}")))?;
        if body.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::invalid(
                "message.text",
                format!(
                    "the card is {} bytes; Teams accepts at most {MAX_PAYLOAD_BYTES}",
                    body.len()
                ),
            ));
        }
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let operation = format!("post {:?} message of {}", message.kind, message.incident_id);
        let ctx = Context {
            provider: &self.shown,
            operation: &operation,
            input: "message.text",
            timeout: self.timeout,
        };
        let response = self
            .client
            .post(self.webhook.expose_secret())
            .timeout(self.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| error::from_reqwest(&ctx, e, &secrets))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let wait = retry_after(response.headers());
        // Redacted before it is cut to an excerpt, so no cut-off part of a secret stays.
        let text = error::redact(&read_body(response).await.unwrap_or_default(), &secrets);
        let mut detail = refusal(&text);
        if let Some(wait) = &wait {
            detail = format!("{detail} (Retry-After: {wait})")
                .trim_start()
                .to_owned();
        }
        Err(with_retry_after(
            error::from_status(&ctx, status, &detail, &secrets),
            wait.as_deref(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_escaped_and_plain_text_is_not() {
        assert_eq!(escape("Region: us-east-1"), "Region: us-east-1");
        assert_eq!(escape("ETA: 10:20 UTC (5 min)"), "ETA: 10:20 UTC (5 min)");
        assert_eq!(
            escape("**bold** _it_ [x](http://y) `c` ~s~ a\\b"),
            "\\*\\*bold\\*\\* \\_it\\_ \\[x\\](http://y) \\`c\\` \\~s\\~ a\\\\b"
        );
        assert_eq!(escape("- item"), "\\- item");
        assert_eq!(escape("  + item"), "  \\+ item");
        assert_eq!(escape("# head"), "\\# head");
        assert_eq!(escape("> quote"), "\\> quote");
        assert_eq!(escape("12. step"), "12\\. step");
        assert_eq!(escape("3) step"), "3\\) step");
        assert_eq!(escape("2 of 4 steps. done"), "2 of 4 steps. done");
        assert_eq!(
            escape("Error rate < 0.1% & P95 > x"),
            "Error rate < 0.1% & P95 > x"
        );
    }

    #[test]
    fn mentions_need_a_name_and_an_id() {
        assert_eq!(
            parse_mention("Adele Vance <AdeleV@contoso.onmicrosoft.com>"),
            Some(Mention {
                name: "Adele Vance",
                id: "AdeleV@contoso.onmicrosoft.com"
            })
        );
        assert_eq!(parse_mention("<AdeleV@contoso.com>"), None);
        assert_eq!(parse_mention("Adele Vance"), None);
        assert_eq!(parse_mention("<at>Adele</at>"), None);
        assert_eq!(parse_mention("Adele <a b>"), None);
    }

    #[test]
    fn every_part_of_the_webhook_is_redacted() {
        let parts = secret_parts(
            "https://x.api.powerplatform.com/powerautomate/automations/direct/workflows/0123456789abcdef0123/triggers/manual/paths/invoke?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=AbCdEf012345",
        );
        assert!(parts.contains(&"AbCdEf012345".to_owned()), "{parts:?}");
        assert!(parts.contains(&"0123456789abcdef0123".to_owned()));
        assert!(parts.contains(&"%2Ftriggers%2Fmanual%2Frun".to_owned()));
        assert!(parts.contains(&"/triggers/manual/run".to_owned()));
        assert!(parts.windows(2).all(|w| w[0].len() >= w[1].len()));
    }

    #[test]
    fn refusals_quote_the_flows_error() {
        assert_eq!(
            refusal(
                r#"{"error":{"code":"TriggerInputSchemaMismatch","message":"The input body does not match."}}"#
            ),
            "TriggerInputSchemaMismatch: The input body does not match."
        );
        assert_eq!(refusal("Bad Request\n"), "Bad Request");
    }

    #[test]
    fn an_invalid_webhook_is_refused_without_echoing_it() {
        let e = TeamsNotifier::builder(SecretString::from(
            "prod.westus.logic.azure.com/workflows/x?sig=sekrit",
        ))
        .build()
        .unwrap_err();
        assert_eq!(e.kind(), meshos_rollback_core::ErrorKind::InvalidInput);
        assert!(!e.to_string().contains("sekrit"), "{e}");
        assert!(!format!("{e:?}").contains("sekrit"), "{e:?}");
    }
}
