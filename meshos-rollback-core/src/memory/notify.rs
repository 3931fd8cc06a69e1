//! In-memory [`Notifier`] and [`Escalator`] that record what they were given.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::Result;
use crate::provider::{ChangeEvent, Escalation, Escalator, Message, Notifier};

/// Records every message, in order.
#[derive(Debug, Default)]
pub struct InMemoryNotifier {
    messages: Mutex<Vec<Message>>,
}

impl InMemoryNotifier {
    /// No messages yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The messages sent so far.
    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().expect("lock").clone()
    }
}

impl fmt::Display for InMemoryNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemoryNotifier")
    }
}

#[async_trait]
impl Notifier for InMemoryNotifier {
    async fn send(&self, message: &Message) -> Result<()> {
        self.messages.lock().expect("lock").push(message.clone());
        Ok(())
    }
}

/// Pages in memory: triggers open a page per dedup key, resolves close it.
#[derive(Debug, Default)]
pub struct InMemoryEscalator {
    state: Mutex<EscalatorState>,
}

#[derive(Debug, Default)]
struct EscalatorState {
    open: BTreeMap<String, Escalation>,
    acknowledged: std::collections::BTreeSet<String>,
    history: Vec<(String, String)>,
    changes: Vec<ChangeEvent>,
}

impl InMemoryEscalator {
    /// No pages yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pages open now, by dedup key.
    pub fn open_pages(&self) -> BTreeMap<String, Escalation> {
        self.state.lock().expect("lock").open.clone()
    }

    /// Every event, as (`trigger`, `acknowledge` or `resolve`, dedup key).
    pub fn history(&self) -> Vec<(String, String)> {
        self.state.lock().expect("lock").history.clone()
    }

    /// Open pages a person has acknowledged.
    pub fn acknowledged(&self) -> Vec<String> {
        self.state
            .lock()
            .expect("lock")
            .acknowledged
            .iter()
            .cloned()
            .collect()
    }

    /// The change events recorded, in order.
    pub fn change_events(&self) -> Vec<ChangeEvent> {
        self.state.lock().expect("lock").changes.clone()
    }
}

impl fmt::Display for InMemoryEscalator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InMemoryEscalator")
    }
}

#[async_trait]
impl Escalator for InMemoryEscalator {
    async fn trigger(&self, escalation: &Escalation) -> Result<()> {
        if escalation.dedup_key.is_empty() {
            return Err(crate::Error::invalid(
                "escalation.dedup_key",
                "must not be empty",
            ));
        }
        let mut st = self.state.lock().expect("lock");
        st.history
            .push(("trigger".into(), escalation.dedup_key.clone()));
        st.open
            .insert(escalation.dedup_key.clone(), escalation.clone());
        Ok(())
    }

    async fn resolve(&self, dedup_key: &str) -> Result<()> {
        let mut st = self.state.lock().expect("lock");
        st.history.push(("resolve".into(), dedup_key.to_owned()));
        st.open.remove(dedup_key);
        st.acknowledged.remove(dedup_key);
        Ok(())
    }

    async fn acknowledge(&self, dedup_key: &str) -> Result<()> {
        let mut st = self.state.lock().expect("lock");
        st.history
            .push(("acknowledge".into(), dedup_key.to_owned()));
        // PagerDuty accepts an acknowledge of a key with no open incident and drops it.
        if st.open.contains_key(dedup_key) {
            st.acknowledged.insert(dedup_key.to_owned());
        }
        Ok(())
    }

    async fn change_event(&self, change: &ChangeEvent) -> Result<()> {
        if change.summary.is_empty() {
            return Err(crate::Error::invalid("change.summary", "must not be empty"));
        }
        self.state
            .lock()
            .expect("lock")
            .changes
            .push(change.clone());
        Ok(())
    }
}
