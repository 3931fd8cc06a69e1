//! Keeping secrets out of logs, journals, messages and reports.
//!
//! Two nets: every secret the engine handles (connection strings, their templates) is
//! registered with a [`Redactor`] and replaced wherever it appears, percent-encoded
//! too; and credential patterns (URL userinfo, `password=` pairs, JSON secret fields,
//! `Authorization` headers, Slack webhooks and tokens) are masked even when nobody
//! registered them, because backends quote URLs, headers and bodies in their errors.
//!
//! `redact` runs on every journal entry and log line, so the patterns are small
//! hand-written scanners over one lower-cased copy of the text, not regexes: each is a
//! substring search plus a few bytes of look-around, and their masks are applied
//! together. Text without secrets is scanned once; text with some once more, to check
//! that masking exposed nothing new.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use secrecy::{ExposeSecret, SecretString};

/// What replaces a secret.
pub const MASK: &str = "***";

/// Shorter registered values are ignored: masking them would mangle text.
const MIN_SECRET_LEN: usize = 4;

/// Masks registered secrets and credential patterns in text, replacing each with
/// [`MASK`].
///
/// Forms masked:
/// - a registered secret, verbatim or percent-encoded (upper- or lower-case hex, space
///   as `%20` or `+`, as RFC 3986, alphanumeric-only and URL-userinfo encoders write
///   it), and the password of a registered connection string, as written or decoded;
/// - the password of `scheme://user:password@host` (a bare `scheme://token@host` whole);
/// - the value of `password=`, `passwd=`, `token=`, `secret=`, `routing_key=`,
///   `apikey=` and `api_key=` pairs (case-insensitive);
/// - the string value of JSON keys `password`, `passwd`, `token`, `secret`,
///   `routing_key`, `api_key`, `access_token`, `refresh_token`, `client_secret`,
///   `private_key`, `session_token`, `secret_access_key` (case, `_` and `-` ignored),
///   also in escaped JSON (`{\"token\":\"…\"}`);
/// - the credential of an `Authorization` header (`Bearer`, `Basic`, `Token`,
///   `Negotiate`, `NTLM`, or a bare token-like value; any case, `:` or `=`), and a
///   token-like word (8+ characters with a digit, or 32+) after `Bearer` anywhere;
/// - the path of Slack webhooks (`https://hooks.slack.com/services/***`, also
///   `workflows/` and `triggers/`) and Slack tokens (`xoxb-…`, `xoxp-…`, `xapp-…`, …).
///
/// Text without any of these comes back unchanged, and redacting twice gives the same
/// as redacting once.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Registered values and their encoded forms, longest first.
    secrets: Arc<RwLock<Vec<SecretString>>>,
}

impl Redactor {
    /// A redactor with no registered secrets (patterns are always masked).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a secret value; from now on it is masked wherever it appears, verbatim
    /// or percent-encoded. Values shorter than 4 characters are ignored: masking them
    /// would mangle text.
    pub fn register(&self, secret: &SecretString) {
        let value = secret.expose_secret();
        if value.len() < MIN_SECRET_LEN {
            return;
        }
        let mut forms = vec![SecretString::from(value)];
        // A backend may quote just the password of a connection string, and the
        // password in a URL is itself percent-encoded.
        if let Some(password) = url_password(value)
            && password.len() >= MIN_SECRET_LEN
            && !password.contains('{')
        {
            forms.push(SecretString::from(password));
            if let Some(decoded) = percent_decode(password)
                && decoded.len() >= MIN_SECRET_LEN
            {
                forms.push(SecretString::from(decoded));
            }
        }
        // Encoded forms are computed once here, so `redact` stays a plain search.
        let encoded: Vec<SecretString> = forms
            .iter()
            .flat_map(|f| encoded_forms(f.expose_secret()))
            .collect();
        forms.extend(encoded);

        let mut secrets = self.secrets.write().expect("lock");
        let before = secrets.len();
        for form in forms {
            if !secrets
                .iter()
                .any(|s| s.expose_secret() == form.expose_secret())
            {
                secrets.push(form);
            }
        }
        if secrets.len() != before {
            // Longest first, so a secret containing another is masked whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
        }
    }

    /// `text` with every registered secret and credential pattern masked.
    pub fn redact(&self, text: &str) -> String {
        let secrets = self.secrets.read().expect("lock");
        let mut out = match mask_once(&secrets, text) {
            Cow::Borrowed(_) => return text.to_owned(),
            Cow::Owned(out) => out,
        };
        // A mask can hide a delimiter that ended a credential (`a&@b` becomes `a***@b`),
        // so another pass may find more; repeat until nothing changes, which makes
        // redacting twice equal to redacting once. Text without secrets takes one pass.
        for _ in 0..MAX_EXTRA_PASSES {
            match mask_once(&secrets, &out) {
                Cow::Owned(next) if next != out => out = next,
                _ => break,
            }
        }
        out
    }
}

/// How often `redact` re-masks its own output at most; one suffices but for contrived
/// text.
const MAX_EXTRA_PASSES: usize = 4;

/// `text` with registered secrets, then patterns, masked; borrowed if nothing matched.
fn mask_once<'a>(secrets: &[SecretString], text: &'a str) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(text);
    for s in secrets {
        let v = s.expose_secret();
        if out.contains(v) {
            out = Cow::Owned(out.replace(v, MASK));
        }
    }
    // Patterns see the text after registered secrets are masked.
    let lower = out.to_ascii_lowercase();
    let mut spans = Vec::new();
    url_credentials(&out, &mut spans);
    key_values(&out, &lower, &mut spans);
    json_fields(&out, &mut spans);
    authorization(&out, &lower, &mut spans);
    slack(&out, &lower, &mut spans);
    if spans.is_empty() {
        return out;
    }
    Cow::Owned(mask_spans(&out, spans))
}

/// A byte range of text to replace with [`MASK`].
type Span = (usize, usize);

/// `text` with every span (merged where they overlap or touch) replaced by [`MASK`].
fn mask_spans(text: &str, mut spans: Vec<Span>) -> String {
    spans.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at: Option<usize> = None;
    let mut copied = 0;
    for (s, e) in spans {
        match at {
            // Touching masks merge: `******` would not survive a second pass.
            Some(end) if s <= end => at = Some(end.max(e)),
            _ => {
                if let Some(end) = at {
                    copied = end;
                }
                out.push_str(&text[copied..s]);
                out.push_str(MASK);
                at = Some(e);
            }
        }
    }
    out.push_str(&text[at.unwrap_or(copied)..]);
    out
}

// --- Registered secrets -------------------------------------------------------------

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
const LOWER_HEX: &[u8; 16] = b"0123456789abcdef";

/// RFC 3986 unreserved characters (JavaScript `encodeURIComponent`, Go, Python `quote`).
fn keeps_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Alphanumerics only (the `percent-encoding` crate's `NON_ALPHANUMERIC`).
fn keeps_alphanumeric(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// What the WHATWG userinfo percent-encode set leaves (the `url` crate, browsers).
fn keeps_userinfo(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'-'
                | b'.'
                | b'_'
                | b'~'
        )
}

/// The distinct percent-encoded forms of `value` that differ from it.
fn encoded_forms(value: &str) -> Vec<SecretString> {
    let keeps: [fn(u8) -> bool; 3] = [keeps_unreserved, keeps_alphanumeric, keeps_userinfo];
    let mut forms: Vec<String> = Vec::new();
    for keep in keeps {
        for hex in [UPPER_HEX, LOWER_HEX] {
            for plus in [false, true] {
                let form = percent_encode(value, keep, hex, plus);
                if form != value && !forms.contains(&form) {
                    forms.push(form);
                }
            }
        }
    }
    forms.into_iter().map(SecretString::from).collect()
}

/// `value` with every byte `keep` rejects written as `%XX` (and space as `+` if `plus`,
/// as form encoding does).
fn percent_encode(value: &str, keep: fn(u8) -> bool, hex: &[u8; 16], plus: bool) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for &b in value.as_bytes() {
        if plus && b == b' ' {
            out.push('+');
        } else if keep(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(hex[usize::from(b >> 4)]));
            out.push(char::from(hex[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// `value` with `%XX` escapes decoded, if it has any and the result is UTF-8.
fn percent_decode(value: &str) -> Option<String> {
    let b = value.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut decoded_any = false;
    while i < b.len() {
        let escape = match b[i] {
            b'%' => b
                .get(i + 1..i + 3)
                .and_then(|h| Some((hex_value(h[0])?, hex_value(h[1])?))),
            _ => None,
        };
        if let Some((hi, lo)) = escape {
            out.push((hi << 4) | lo);
            decoded_any = true;
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    decoded_any.then(|| String::from_utf8(out).ok()).flatten()
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The password of `scheme://user:password@host…`, if any.
fn url_password(value: &str) -> Option<&str> {
    let rest = &value[value.find("://")? + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    Some(&userinfo[userinfo.find(':')? + 1..])
}

// --- Patterns -----------------------------------------------------------------------

/// The password of `scheme://user:password@host` (and a bare token in
/// `scheme://token@host`).
fn url_credentials(text: &str, spans: &mut Vec<Span>) {
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let start = from + i + 3;
        // The authority ends at the first '/', whitespace, quote or end of text.
        let len = text[start..]
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'' || c == '>')
            .unwrap_or(text.len() - start);
        let authority = &text[start..start + len];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            let password = userinfo.find(':').map_or(0, |colon| colon + 1);
            spans.push((start + password, start + at));
        }
        from = start + len;
    }
}

/// Values of `password=`, `token=`, `secret=`, `routing_key=`, `apikey=`, … pairs.
fn key_values(text: &str, lower: &str, spans: &mut Vec<Span>) {
    const KEYS: [&str; 7] = [
        "password=",
        "passwd=",
        "token=",
        "secret=",
        "routing_key=",
        "apikey=",
        "api_key=",
    ];
    for key in KEYS {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(key) {
            let start = from + pos + key.len();
            let end = text[start..]
                .find(|c: char| matches!(c, '&' | ';' | ',' | '"' | '\'') || c.is_whitespace())
                .map_or(text.len(), |e| start + e);
            if end > start {
                spans.push((start, end));
            }
            from = end;
        }
    }
}

/// Whether a JSON key names a secret: compared case-insensitively, `_` and `-` ignored,
/// so `api_key`, `apiKey` and `API-KEY` all match.
fn is_secret_json_key(key: &str) -> bool {
    const KEYS: [&str; 12] = [
        "password",
        "passwd",
        "token",
        "secret",
        "routingkey",
        "apikey",
        "accesstoken",
        "refreshtoken",
        "clientsecret",
        "privatekey",
        "sessiontoken",
        "secretaccesskey",
    ];
    key.len() <= 32
        && KEYS.iter().any(|name| {
            key.bytes()
                .filter(|b| *b != b'_' && *b != b'-')
                .map(|b| b.to_ascii_lowercase())
                .eq(name.bytes())
        })
}

/// String values of secret JSON keys (`"password": "…"`), plain or escaped inside
/// another string (`{\"password\":\"…\"}`).
fn json_fields(text: &str, spans: &mut Vec<Span>) {
    let b = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find(':') {
        let colon = from + i;
        from = colon + 1;
        // `"key"` then optional whitespace then the colon.
        let close = b[..colon].iter().rposition(|c| !c.is_ascii_whitespace());
        let Some(close) = close.filter(|&q| b[q] == b'"') else {
            continue;
        };
        let escaped = close > 0 && b[close - 1] == b'\\';
        let key_end = if escaped { close - 1 } else { close };
        let Some(open) = text[..key_end].rfind('"') else {
            continue;
        };
        if !is_secret_json_key(&text[open + 1..key_end]) {
            continue;
        }
        let v = colon
            + 1
            + b[colon + 1..]
                .iter()
                .take_while(|c| c.is_ascii_whitespace())
                .count();
        let (start, end) = if escaped {
            if !text[v..].starts_with("\\\"") {
                continue;
            }
            let start = v + 2;
            (
                start,
                text[start..].find("\\\"").map_or(text.len(), |e| start + e),
            )
        } else {
            if b.get(v) != Some(&b'"') {
                continue;
            }
            let start = v + 1;
            let mut e = start;
            while e < b.len() && b[e] != b'"' {
                e += if b[e] == b'\\' { 2 } else { 1 };
            }
            (start, e.min(b.len()))
        };
        if end > start {
            spans.push((start, end));
            from = end;
        }
    }
}

/// Positions of `word` in `lower` that start a word.
fn word_starts<'a>(lower: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    lower.match_indices(word).map(|(i, _)| i).filter(move |&i| {
        i == 0 || {
            let c = lower.as_bytes()[i - 1];
            !c.is_ascii_alphanumeric() && c != b'_'
        }
    })
}

/// Index after `b[i..]`'s leading bytes that satisfy `skip`.
fn skip_while(b: &[u8], i: usize, skip: impl Fn(u8) -> bool) -> usize {
    i + b[i..].iter().take_while(|c| skip(**c)).count()
}

/// End of the credential starting at `i`: at whitespace, a quote, a backslash or
/// punctuation that no token68, JWT or opaque token contains.
fn credential_end(b: &[u8], i: usize) -> usize {
    skip_while(b, i, |c| {
        !c.is_ascii_whitespace()
            && !matches!(
                c,
                b'"' | b'\''
                    | b'\\'
                    | b','
                    | b';'
                    | b'<'
                    | b'>'
                    | b'('
                    | b')'
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b'|'
                    | b'&'
            )
    })
}

/// Whether a word in prose is a credential rather than a word: 8+ characters with a
/// digit, or 32+ characters.
fn looks_like_token(word: &str) -> bool {
    (word.len() >= 8 && word.bytes().any(|c| c.is_ascii_digit())) || word.len() >= 32
}

/// Credentials of `Authorization:` headers, and token-like words after `Bearer`.
fn authorization(text: &str, lower: &str, spans: &mut Vec<Span>) {
    const SCHEMES: [&str; 5] = ["bearer", "basic", "token", "negotiate", "ntlm"];
    const HEADER: &str = "authorization";
    let b = text.as_bytes();
    let blank = |c: u8| c == b' ' || c == b'\t';
    // `Authorization: x`, `authorization=x`, `"Authorization": "x"`, escaped too.
    let quote_or_blank = |c: u8| matches!(c, b'"' | b'\'' | b'\\') || blank(c);
    for at in word_starts(lower, HEADER) {
        let i = skip_while(b, at + HEADER.len(), quote_or_blank);
        if !matches!(b.get(i), Some(b':' | b'=')) {
            continue;
        }
        let i = skip_while(b, i + 1, quote_or_blank);
        let end = credential_end(b, i);
        if SCHEMES.contains(&&lower[i..end]) {
            let j = skip_while(b, end, blank);
            let cred_end = credential_end(b, j);
            if j > end && cred_end > j {
                spans.push((j, cred_end));
            }
        } else if looks_like_token(&text[i..end]) {
            spans.push((i, end));
        }
    }
    for at in word_starts(lower, "bearer") {
        let i = at + "bearer".len();
        let j = skip_while(b, i, blank);
        // A sentence may end right after the token.
        let mut end = credential_end(b, j);
        while end > j && matches!(b[end - 1], b'.' | b':' | b'!' | b'?') {
            end -= 1;
        }
        if j > i && looks_like_token(&text[j..end]) {
            spans.push((j, end));
        }
    }
}

/// Slack webhook paths (the host is kept) and Slack tokens.
fn slack(text: &str, lower: &str, spans: &mut Vec<Span>) {
    const HOST: &str = "hooks.slack.com/";
    let b = text.as_bytes();
    for (i, _) in lower.match_indices(HOST) {
        let p = i + HOST.len();
        let Some(kind) = ["services/", "workflows/", "triggers/"]
            .into_iter()
            .find(|k| lower[p..].starts_with(k))
        else {
            continue;
        };
        let start = p + kind.len();
        let end = skip_while(b, start, |c| {
            c.is_ascii_alphanumeric() || matches!(c, b'/' | b'-' | b'_')
        });
        if end > start {
            spans.push((start, end));
        }
    }
    // xoxb- (bot), xoxp- (user), xoxa-/xoxr- (app, refresh), xoxs-, xoxe.xoxp- (rotating),
    // xapp- (app-level).
    for prefix in ["xox", "xapp-"] {
        for start in word_starts(text, prefix) {
            let rest = &b[start + prefix.len()..];
            let is_token =
                prefix == "xapp-" || matches!(rest, [c, b'-' | b'.', ..] if c.is_ascii_lowercase());
            let mut end = skip_while(b, start, |c| {
                c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_')
            });
            while b[end - 1] == b'.' {
                end -= 1;
            }
            if is_token && end - start >= 12 {
                spans.push((start, end));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy;

    use super::*;

    fn redactor(secrets: &[&str]) -> Redactor {
        let r = Redactor::new();
        for s in secrets {
            r.register(&SecretString::from(*s));
        }
        r
    }

    #[test]
    fn registered_secrets_are_masked() {
        let r = Redactor::new();
        r.register(&SecretString::from("hunter2-very-secret"));
        assert_eq!(
            r.redact("value hunter2-very-secret leaked twice: hunter2-very-secret"),
            "value *** leaked twice: ***"
        );
        r.register(&SecretString::from("ab"));
        assert_eq!(r.redact("ab stays"), "ab stays");
    }

    #[test]
    fn the_password_of_a_registered_connection_string_is_masked_alone() {
        let r = Redactor::new();
        r.register(&SecretString::from("postgresql://app:Tr0ub4dor@db:5432/x"));
        assert_eq!(
            r.redact("auth failed for password Tr0ub4dor"),
            "auth failed for password ***"
        );
    }

    #[test]
    fn percent_encoded_forms_of_registered_secrets_are_masked() {
        let r = redactor(&["p@ss/w rd"]);
        for encoded in [
            "p%40ss%2Fw%20rd",
            "p%40ss%2fw%20rd",
            "p%40ss%2Fw+rd",
            "p%40ss%2fw+rd",
        ] {
            assert_eq!(
                r.redact(&format!("GET https://db/login?pw={encoded}&x=1 failed")),
                "GET https://db/login?pw=***&x=1 failed",
                "{encoded}"
            );
        }
        // Encoders differ on punctuation: `url` keeps `!`, `NON_ALPHANUMERIC` does not.
        let r = redactor(&["s3cr3t!p@ss-1"]);
        assert_eq!(r.redact("a s3cr3t!p%40ss-1 b"), "a *** b");
        assert_eq!(r.redact("a s3cr3t%21p%40ss%2D1 b"), "a *** b");
        assert_eq!(r.redact("a s3cr3t!p@ss-1 b"), "a *** b");
    }

    #[test]
    fn the_decoded_password_of_a_registered_connection_string_is_masked() {
        let r = redactor(&["postgresql://app:p%40ssw0rd@db:5432/x"]);
        assert_eq!(
            r.redact("rejected password p@ssw0rd"),
            "rejected password ***"
        );
        assert_eq!(r.redact("rejected p%40ssw0rd"), "rejected ***");
    }

    #[test]
    fn url_credentials_are_masked() {
        let r = Redactor::new();
        assert_eq!(
            r.redact("connecting to postgresql://app:s3cr3t@db.internal:5432/meshos failed"),
            "connecting to postgresql://app:***@db.internal:5432/meshos failed"
        );
        assert_eq!(
            r.redact("url=\"https://tok@hooks.example.com/x\""),
            "url=\"https://***@hooks.example.com/x\""
        );
        assert_eq!(
            r.redact("https://us-east-1.meshos.io/health"),
            "https://us-east-1.meshos.io/health"
        );
        assert_eq!(
            r.redact("a://u:p@h and b://v:q@i"),
            "a://u:***@h and b://v:***@i"
        );
    }

    #[test]
    fn key_value_secrets_are_masked() {
        let r = Redactor::new();
        assert_eq!(
            r.redact("host=db password=pa55 user=app"),
            "host=db password=*** user=app"
        );
        assert_eq!(r.redact("?token=abc&x=1"), "?token=***&x=1");
        assert_eq!(r.redact("Password=X;Token=Y"), "Password=***;Token=***");
        assert_eq!(r.redact("?api_key=k1&x=1"), "?api_key=***&x=1");
    }

    #[test]
    fn json_secret_fields_are_masked() {
        let r = Redactor::new();
        assert_eq!(
            r.redact(r#"{"user":"app","password":"hunter2"}"#),
            r#"{"user":"app","password":"***"}"#
        );
        assert_eq!(
            r.redact(r#"{ "Token" : "abc", "API_KEY":"k-1", "routing_key": "R1" }"#),
            r#"{ "Token" : "***", "API_KEY":"***", "routing_key": "***" }"#
        );
        assert_eq!(
            r.redact(r#"{"secret":"s","access_token":"a\"b","accessToken":"c"}"#),
            r#"{"secret":"***","access_token":"***","accessToken":"***"}"#
        );
        // JSON quoted inside a message or a Debug string.
        assert_eq!(
            r.redact(r#"body: "{\"password\":\"hunter2\",\"n\":1}""#),
            r#"body: "{\"password\":\"***\",\"n\":1}""#
        );
        // Other keys and non-string values are kept.
        let kept = r#"{"tokens":"x","token":null,"secret_name":"db-url","name":"api"}"#;
        assert_eq!(r.redact(kept), kept);
    }

    #[test]
    fn authorization_credentials_are_masked() {
        let r = Redactor::new();
        assert_eq!(
            r.redact("Authorization: Bearer abc.def\r\nHost: x"),
            "Authorization: Bearer ***\r\nHost: x"
        );
        assert_eq!(
            r.redact("authorization: basic dXNlcjpwYXNz"),
            "authorization: basic ***"
        );
        assert_eq!(
            r.redact(r#"{"AUTHORIZATION": "Bearer eyJhbGciOi", "accept": "*/*"}"#),
            r#"{"AUTHORIZATION": "Bearer ***", "accept": "*/*"}"#
        );
        assert_eq!(r.redact("Authorization: k3y-12345"), "Authorization: ***");
        assert_eq!(
            r.redact("sent Bearer xoxb-1234-5678-abcdef to slack"),
            "sent Bearer *** to slack"
        );
        assert_eq!(
            r.redact("retry with bearer 9f8e7d6c5b4a."),
            "retry with bearer ***."
        );
    }

    #[test]
    fn slack_webhooks_and_tokens_are_masked() {
        let r = Redactor::new();
        assert_eq!(
            r.redact("posting to https://hooks.slack.com/services/T000/B000/XXXX failed"),
            "posting to https://hooks.slack.com/services/*** failed"
        );
        assert_eq!(
            r.redact("<https://Hooks.Slack.com/workflows/T0/A0/1/abc|hook>"),
            "<https://Hooks.Slack.com/workflows/***|hook>"
        );
        assert_eq!(
            r.redact("token xoxb-1234567890-0987654321-AbCdEf, user xoxp-11-22-33-abcd."),
            "token ***, user ***."
        );
        assert_eq!(
            r.redact("app token: xapp-1-A0B1-234-c0ffee"),
            "app token: ***"
        );
    }

    #[test]
    fn text_without_secrets_is_unchanged() {
        let r = redactor(&["hunter2-very-secret", "p@ss/w rd"]);
        for text in [
            "rolled back api in us-east-1: 3/3 tasks healthy, 100% of traffic on blue",
            "authorization failed: permission denied",
            "error: authorization: access denied for role deployer",
            "the Bearer token expired; basic checks passed",
            "see https://hooks.slack.com/ and https://api.slack.com/apps for xoxb- tokens",
            r#"{"name":"api","replicas":3,"image":"meshos/api:1.4.2","token_count":5}"#,
            "a: b, c = d, password reset docs at https://docs.meshos.io/p%C3%A4th",
            "",
        ] {
            assert_eq!(r.redact(text), text);
        }
    }

    #[test]
    fn redacting_twice_equals_once() {
        let r = redactor(&["hunter2-very-secret", "p@ss/w rd"]);
        for text in [
            "postgresql://app:p%40ss%2Fw%20rd@db/x password=hunter2-very-secret",
            r#"{"password":"x","note":"Authorization: Bearer ab1234567 xoxb-12345678901"}"#,
            "https://hooks.slack.com/services/T0/B0/X?token=1 Basic",
            "Authorization: Basic dXNlcjpwYXNz, bearer 12345678.",
            // A mask hides the `&` that ended the header value in the first pass.
            "Authorization://&@12345678",
        ] {
            let once = r.redact(text);
            assert_eq!(r.redact(&once), once, "{text}");
        }
    }

    /// Pieces of triggers, delimiters and secrets, so random text hits the scanners.
    const FRAGMENTS: &[&str] = &[
        "password",
        "token",
        "=",
        ":",
        "\"",
        "\\\"",
        " ",
        "@",
        "://",
        "/",
        "&",
        ",",
        ".",
        "Authorization",
        "Bearer",
        "basic",
        "xoxb-",
        "xapp-",
        "12345678",
        "hooks.slack.com/",
        "services/",
        "p%40ss",
        "p@ss/w rd",
        "hunter2",
        "***",
        "a",
        "Z9",
        "é",
        "%2F",
    ];

    proptest::proptest! {
        #[test]
        fn redaction_is_idempotent(parts in proptest::collection::vec(
            proptest::prop_oneof![
                3 => proptest::sample::select(FRAGMENTS).prop_map(str::to_owned),
                1 => "\\PC{0,3}",
            ],
            0..16,
        )) {
            let r = redactor(&["p@ss/w rd", "hunter2"]);
            let text = parts.concat();
            let once = r.redact(&text);
            proptest::prop_assert_eq!(r.redact(&once), once);
        }
    }
}
