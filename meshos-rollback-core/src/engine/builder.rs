//! Builds an [`Engine`]: providers, journal, lock, clock, secrets, observer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use super::api::{Engine, Inner};
use super::journal::{FileJournal, InMemoryJournal, Journal};
use super::progress::ProgressObserver;
use super::providers::Providers;
use crate::clock::{SharedClock, SystemClock};
use crate::provider::{InMemoryLock, RollbackLock};
use crate::redact::Redactor;
use crate::{Error, Result};

/// Builds an [`Engine`]. The journal is an explicit choice: a durable one
/// ([`with_journal_dir`](Self::with_journal_dir), [`with_journal`](Self::with_journal))
/// or [`ephemeral`](Self::ephemeral) for tests and demos, so `resume` never silently
/// has nothing to resume from.
#[derive(Debug)]
pub struct EngineBuilder {
    pub(super) providers: Providers,
    journal: Option<Arc<dyn Journal>>,
    journal_dir: Option<PathBuf>,
    ephemeral: bool,
    lock: Option<Arc<dyn RollbackLock>>,
    clock: Option<SharedClock>,
    secrets: BTreeMap<String, SecretString>,
    observer: Option<Arc<dyn ProgressObserver>>,
    holder: Option<String>,
    lock_ttl: Duration,
    redactor: Option<Redactor>,
    notify_timeout: Duration,
}

impl EngineBuilder {
    pub(super) fn new(providers: Providers) -> Self {
        EngineBuilder {
            providers,
            journal: None,
            journal_dir: None,
            ephemeral: false,
            lock: None,
            clock: None,
            secrets: BTreeMap::new(),
            observer: None,
            holder: None,
            lock_ttl: Duration::from_secs(300),
            redactor: None,
            notify_timeout: Duration::from_secs(30),
        }
    }

    /// Keeps the journal here.
    pub fn with_journal(mut self, journal: Arc<dyn Journal>) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Keeps a durable [`FileJournal`] in `dir`.
    pub fn with_journal_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.journal_dir = Some(dir.into());
        self
    }

    /// Keeps the journal in memory, lost with the process: for tests and demos only,
    /// since a crashed run then cannot be resumed.
    pub fn ephemeral(mut self) -> Self {
        self.ephemeral = true;
        self
    }

    /// Uses this lock (default: in-process).
    pub fn with_lock(mut self, lock: Arc<dyn RollbackLock>) -> Self {
        self.lock = Some(lock);
        self
    }

    /// Uses this clock (default: the system clock).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Gives the engine a secret, such as a connection-string template, by name.
    pub fn with_secret(mut self, name: impl Into<String>, value: SecretString) -> Self {
        self.secrets.insert(name.into(), value);
        self
    }

    /// Reports progress to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn ProgressObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Names this process in locks (default: host name and process id). Each run
    /// holds its locks as `<holder> run <run id>`.
    pub fn with_holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = Some(holder.into());
        self
    }

    /// Masks secrets with `redactor` (share it with the tracing layer).
    pub fn with_redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = Some(redactor);
        self
    }

    /// How long a lock lasts unless renewed (renewed every third of it while running).
    pub fn with_lock_ttl(mut self, ttl: Duration) -> Self {
        self.lock_ttl = ttl;
        self
    }

    /// How long one message or page may take before it is given up (default 30 s): a
    /// hung chat API must not hold a run, and its locks, open.
    pub fn with_notify_timeout(mut self, timeout: Duration) -> Self {
        self.notify_timeout = timeout;
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Result<Engine> {
        if self.lock_ttl < Duration::from_secs(3) {
            return Err(Error::invalid("lock_ttl", "must be at least 3 seconds"));
        }
        if self.notify_timeout.is_zero() {
            return Err(Error::invalid("notify_timeout", "must be longer than zero"));
        }
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let journal: Arc<dyn Journal> = match (self.journal, self.journal_dir, self.ephemeral) {
            (Some(j), None, false) => j,
            (None, Some(dir), false) => Arc::new(FileJournal::new(dir)?),
            (None, None, true) => Arc::new(InMemoryJournal::new()),
            (None, None, false) => {
                return Err(Error::invalid(
                    "journal",
                    "no journal chosen: call with_journal_dir(..) (or with_journal(..)) for a run that can be resumed, or ephemeral() for tests and demos",
                ));
            }
            _ => {
                return Err(Error::invalid(
                    "journal",
                    "more than one journal chosen: call only one of with_journal, with_journal_dir and ephemeral",
                ));
            }
        };
        let holder = self.holder.unwrap_or_else(|| {
            let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "meshos-rollback".into());
            format!("{host}-{}", std::process::id())
        });
        let redactor = self.redactor.unwrap_or_default();
        for s in self.secrets.values() {
            redactor.register(s);
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                lock: self
                    .lock
                    .unwrap_or_else(|| Arc::new(InMemoryLock::new(clock.clone()))),
                providers: self.providers,
                journal,
                clock,
                redactor,
                secrets: self.secrets,
                observer: self.observer,
                holder,
                lock_ttl: self.lock_ttl,
                notify_timeout: self.notify_timeout,
                active: std::sync::Mutex::new(std::collections::HashSet::new()),
                incident_ids: tokio::sync::Mutex::new(std::collections::BTreeSet::new()),
            }),
        })
    }
}
