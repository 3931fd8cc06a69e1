//! Keeping secrets out of logs, journals, messages and reports.
//!
//! Two nets: every secret the engine handles (connection strings, their templates) is
//! registered with a [`Redactor`] and replaced wherever it appears; and credentials in
//! URLs (`scheme://user:password@host`) and `password=`/`token=` pairs are masked even
//! when nobody registered them, because backends quote URLs in their error messages.

use std::sync::{Arc, RwLock};

use secrecy::{ExposeSecret, SecretString};

/// What replaces a secret.
pub const MASK: &str = "***";

/// Masks registered secrets and credential patterns in text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Arc<RwLock<Vec<SecretString>>>,
}

impl Redactor {
    /// A redactor with no registered secrets (patterns are always masked).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a secret value; from now on it is masked wherever it appears.
    /// Values shorter than 4 characters are ignored: masking them would mangle text.
    pub fn register(&self, secret: &SecretString) {
        let value = secret.expose_secret();
        if value.len() < 4 {
            return;
        }
        // A backend may quote just the password of a connection string.
        if let Some(password) = url_password(value)
            && password.len() >= 4
            && !password.contains('{')
        {
            self.register(&SecretString::from(password.to_owned()));
        }
        let mut secrets = self.secrets.write().expect("lock");
        if !secrets.iter().any(|s| s.expose_secret() == value) {
            secrets.push(secret.clone());
            // Longest first, so a secret containing another is masked whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.expose_secret().len()));
        }
    }

    /// `text` with every registered secret and credential pattern masked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in self.secrets.read().expect("lock").iter() {
            let v = s.expose_secret();
            if out.contains(v) {
                out = out.replace(v, MASK);
            }
        }
        mask_url_credentials(&mask_key_values(&out))
    }
}

/// The password of `scheme://user:password@host…`, if any.
fn url_password(value: &str) -> Option<&str> {
    let rest = &value[value.find("://")? + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    Some(&userinfo[userinfo.find(':')? + 1..])
}

/// Masks the password of `scheme://user:password@host` (and a bare token in
/// `scheme://token@host`).
fn mask_url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace, quote or end of text.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'' || c == '>')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon]);
                        out.push(':');
                        out.push_str(MASK);
                    }
                    None => out.push_str(MASK),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Masks values of `password=`, `token=`, `secret=`, `routing_key=` and `apikey=` pairs.
fn mask_key_values(text: &str) -> String {
    const KEYS: [&str; 6] = [
        "password=",
        "passwd=",
        "token=",
        "secret=",
        "routing_key=",
        "apikey=",
    ];
    let lower = text.to_ascii_lowercase();
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    for key in KEYS {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(key) {
            let start = from + pos + key.len();
            let end = text[start..]
                .find(|c: char| {
                    c == '&' || c == ';' || c == ',' || c.is_whitespace() || c == '"' || c == '\''
                })
                .map_or(text.len(), |e| start + e);
            if end > start {
                cuts.push((start, end));
            }
            from = end.max(start);
        }
    }
    if cuts.is_empty() {
        return text.to_owned();
    }
    cuts.sort_unstable();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (s, e) in cuts {
        if s < at {
            continue;
        }
        out.push_str(&text[at..s]);
        out.push_str(MASK);
        at = e;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
