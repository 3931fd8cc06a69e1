//! Telling people: every message and page goes to the contacts of its route, each
//! bounded by the notify timeout and journalled with who was told. A contact that
//! cannot be reached never holds the rollback up.

use std::collections::BTreeMap;

use super::super::journal::JournalEvent;
use super::super::progress::ProgressEvent;
use super::super::routing::{Channel, CommsEvent, Target};
use super::Run;
use crate::model::{Region, Severity};
use crate::provider::{ChangeEvent, Escalation, Escalator, Message, MessageKind, Notifier};
use crate::{Error, ErrorKind, Result};

/// What a pager needs beyond the text.
pub(super) struct Alert {
    pub(super) dedup_key: String,
    pub(super) summary: String,
    pub(super) severity: Severity,
    pub(super) source: String,
}

impl Run {
    /// Tells the contacts of `event`'s route: chat contacts get the text (with their
    /// mentions), pagers the alert. Routes without an alert reach no pager (the plan
    /// refuses a pager there).
    pub(super) async fn tell(
        &self,
        event: CommsEvent,
        kind: MessageKind,
        text: String,
        alert: Option<Alert>,
    ) {
        self.tell_targets(self.routing.targets(event), kind, text, None, alert)
            .await;
    }

    /// A resumed run: every chat contact continues the thread its announcement began,
    /// as the journal recorded it.
    pub(super) fn continue_threads(&self) {
        let Ok(threads) = self.with_report(|r| r.threads.clone()) else {
            return;
        };
        let mut done = std::collections::BTreeSet::new();
        for event in [
            CommsEvent::Announcement,
            CommsEvent::StatusUpdate,
            CommsEvent::Resolution,
        ] {
            for t in self.routing.targets(event) {
                if let (Channel::Chat(n), Some(thread)) = (&t.channel, threads.get(&t.name))
                    && done.insert(t.name.clone())
                {
                    n.continue_thread(&self.request.incident.id, thread);
                }
            }
        }
    }

    /// The status-update route, for the chat messages that are not an event of
    /// their own ("step failed" in the incident channel).
    pub(super) async fn say(&self, kind: MessageKind, text: String) {
        let event = match kind {
            MessageKind::Announcement => CommsEvent::Announcement,
            MessageKind::Resolution => CommsEvent::Resolution,
            _ => CommsEvent::StatusUpdate,
        };
        self.tell(event, kind, text, None).await;
    }

    async fn tell_targets(
        &self,
        targets: &[Target],
        kind: MessageKind,
        text: String,
        subject: Option<String>,
        alert: Option<Alert>,
    ) {
        let text = self.redact(&text);
        let alert = alert.map(|a| Alert {
            summary: self.redact(&a.summary),
            ..a
        });
        // One slow contact must not delay the others: all at once, each bounded.
        let sends = targets.iter().map(|t| async {
            match &t.channel {
                Channel::Chat(n) => {
                    self.send_to(t, n.as_ref(), kind, &text, subject.clone())
                        .await
                }
                Channel::Pager(e) => {
                    if let Some(a) = &alert {
                        self.page_to(t, e.as_ref(), a).await;
                    }
                }
            }
        });
        futures::future::join_all(sends).await;
        self.emit(|| ProgressEvent::MessageSent { kind, text });
    }

    async fn send_to(
        &self,
        target: &Target,
        notifier: &dyn Notifier,
        kind: MessageKind,
        text: &str,
        subject: Option<String>,
    ) {
        let mut message = Message::new(kind, self.request.incident.id.clone(), text)
            .with_mentions(target.mention.iter().cloned());
        message.subject = subject;
        let sent = self
            .bounded(|| format!("{notifier}: send"), notifier.send(&message))
            .await;
        let event = match sent {
            Ok(()) => JournalEvent::MessageSent {
                thread: (kind == MessageKind::Announcement)
                    .then(|| notifier.thread(&message.incident_id))
                    .flatten(),
                kind,
                text: message.text,
                to: target.name.clone(),
            },
            Err(e) => {
                let error = self.redact(&e.to_string());
                tracing::warn!(to = %target.name, %error, "could not send a message; the rollback goes on");
                JournalEvent::MessageFailed {
                    kind,
                    error,
                    to: target.name.clone(),
                }
            }
        };
        self.record(event).await;
    }

    async fn page_to(&self, target: &Target, escalator: &dyn Escalator, alert: &Alert) {
        let escalation = Escalation {
            dedup_key: alert.dedup_key.clone(),
            summary: alert.summary.clone(),
            severity: alert.severity,
            source: alert.source.clone(),
            details: BTreeMap::from([
                ("incident".to_owned(), self.request.incident.id.clone()),
                ("run".to_owned(), self.plan.run_id.to_string()),
            ]),
        };
        let paged = self
            .bounded(
                || format!("{escalator}: trigger"),
                escalator.trigger(&escalation),
            )
            .await;
        let event = match paged {
            Ok(()) => JournalEvent::Escalated {
                dedup_key: escalation.dedup_key,
                summary: escalation.summary,
                to: target.name.clone(),
            },
            Err(e) => {
                let error = self.redact(&e.to_string());
                tracing::error!(to = %target.name, %error, "could not page");
                JournalEvent::EscalationFailed {
                    dedup_key: escalation.dedup_key,
                    error,
                    to: target.name.clone(),
                }
            }
        };
        self.record(event).await;
    }

    /// A message or a page, given up after the notify timeout.
    pub(super) async fn bounded(
        &self,
        operation: impl FnOnce() -> String,
        call: impl std::future::Future<Output = Result<()>>,
    ) -> Result<()> {
        let limit = self.engine.notify_timeout;
        tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
            Err(Error::Timeout {
                operation: operation(),
                after: limit,
            })
        })
    }

    /// A region failed: its route is told (pagers are paged). One page per incident
    /// and region, so a retried or re-planned run re-triggers the same page.
    pub(super) async fn region_failed(&self, region: &Region, summary: String, severity: Severity) {
        let alert = Alert {
            dedup_key: format!("meshos-rollback/{}/{region}", self.request.incident.id),
            summary: summary.clone(),
            severity,
            source: format!("meshos-rollback/{region}"),
        };
        self.tell(
            CommsEvent::RegionFailed,
            MessageKind::Escalation,
            format!("🚨 {summary}"),
            Some(alert),
        )
        .await;
    }

    /// The run stopped because its lock was lost: the region-failed route is told
    /// (on-call paged), once per incident.
    pub(super) async fn run_halted_by_lost_lease(&self) {
        let incident = &self.request.incident;
        let summary = format!(
            "Rollback {} halted: its lock was lost (another run may hold it); check, then resume",
            self.plan.run_id
        );
        let alert = Alert {
            dedup_key: format!("meshos-rollback/{}/lock-lost", incident.id),
            summary: summary.clone(),
            severity: Severity::Critical,
            source: "meshos-rollback".into(),
        };
        self.tell(
            CommsEvent::RegionFailed,
            MessageKind::Escalation,
            format!("🚨 {summary}"),
            Some(alert),
        )
        .await;
    }

    /// Rung `rung` of the escalation ladder (0 = the first contact of
    /// `routes.unresolved`), still unresolved after `after_minutes`.
    pub(super) async fn escalate_unresolved(&self, rung: usize, after_minutes: u64) {
        let Some(target) = self.routing.targets(CommsEvent::Unresolved).get(rung) else {
            return;
        };
        let incident = &self.request.incident;
        let summary = format!(
            "Rollback for {} still unresolved after {after_minutes} minutes: {}",
            incident.id, incident.summary
        );
        let alert = Alert {
            dedup_key: format!("meshos-rollback/{}/unresolved/{}", incident.id, target.name),
            summary: summary.clone(),
            severity: incident.severity,
            source: "meshos-rollback".into(),
        };
        self.tell_targets(
            std::slice::from_ref(target),
            MessageKind::Escalation,
            format!("⏰ {summary}\nRun: {}", self.plan.run_id),
            None,
            Some(alert),
        )
        .await;
    }

    /// Customers still report problems after the rollback: the customer-reports route.
    pub(super) async fn customers_reporting(&self, region: &Region, reports: u32, limit: u32) {
        let summary = format!(
            "{region}: customers are still reporting problems after the rollback ({reports} report(s), investigate above {limit})"
        );
        let alert = Alert {
            dedup_key: format!(
                "meshos-rollback/{}/{region}/customer-reports",
                self.request.incident.id
            ),
            summary: summary.clone(),
            severity: self.request.incident.severity,
            source: format!("meshos-rollback/{region}"),
        };
        self.tell(
            CommsEvent::CustomerReports,
            MessageKind::Escalation,
            summary,
            Some(alert),
        )
        .await;
    }

    /// The rollback succeeded and was verified: every page this run (or an earlier,
    /// unfinished run of the same incident) opened is resolved, by the pager that
    /// opened it.
    pub(super) async fn resolve_pages(&self) {
        let mut open = match self.with_report(|r| r.open_pages()) {
            Ok(o) => o,
            Err(_) => return,
        };
        // And the pages earlier runs of this incident opened (a re-planned run after
        // a failed one): the same incident, now fixed.
        let prefix = format!("meshos-rollback/{}/", self.request.incident.id);
        for page in &self.plan.earlier_pages {
            if page.1.starts_with(&prefix) && !open.contains(page) {
                open.push(page.clone());
            }
        }
        for (to, dedup_key) in open {
            let Some(escalator) = self.routing.pager(&to) else {
                tracing::warn!(%to, %dedup_key, "the page's contact is no longer routed: resolve it by hand");
                continue;
            };
            let resolved = self
                .bounded(
                    || format!("{escalator}: resolve"),
                    escalator.resolve(&dedup_key),
                )
                .await;
            let event = match resolved {
                Ok(()) => JournalEvent::PageResolved { dedup_key, to },
                Err(e) => {
                    let error = self.redact(&e.to_string());
                    tracing::warn!(%to, %error, "could not resolve the page; resume tries again, or resolve it by hand");
                    JournalEvent::PageResolveFailed {
                        dedup_key,
                        to,
                        error,
                    }
                }
            };
            self.record(event).await;
        }
    }

    /// A change event on every pager's service timeline. A pager that has no
    /// timeline (`Unsupported`) is skipped quietly: a change event pages nobody.
    pub(super) async fn change_event(&self, summary: String) {
        let summary = self.redact(&summary);
        let change = ChangeEvent {
            summary,
            source: "meshos-rollback".into(),
            timestamp: self.engine.clock.now(),
            details: BTreeMap::from([
                ("incident".to_owned(), self.request.incident.id.clone()),
                ("run".to_owned(), self.plan.run_id.to_string()),
            ]),
        };
        for (to, escalator) in self.routing.pagers() {
            let sent = self
                .bounded(
                    || format!("{escalator}: change event"),
                    escalator.change_event(&change),
                )
                .await;
            let event = match sent {
                Ok(()) => JournalEvent::ChangeEventSent {
                    summary: change.summary.clone(),
                    to,
                },
                Err(e) if e.kind() == ErrorKind::Unsupported => continue,
                Err(e) => {
                    let error = self.redact(&e.to_string());
                    tracing::warn!(%to, %error, "could not record the change event");
                    JournalEvent::MessageFailed {
                        kind: MessageKind::Info,
                        error: format!("change event: {error}"),
                        to,
                    }
                }
            };
            self.record(event).await;
        }
    }

    /// The stakeholder e-mail, as the report renders it now: `[RESOLVED]` or
    /// `[ONGOING]` in its subject.
    pub(super) async fn email_stakeholders(&self) {
        let targets = self.routing.targets(CommsEvent::StakeholderEmail);
        if targets.is_empty() {
            return;
        }
        let Ok(email) = self.with_report(|r| r.stakeholder_email()) else {
            return;
        };
        let (subject, body) = split_subject(&email);
        self.tell_targets(
            targets,
            MessageKind::StakeholderEmail,
            body.to_owned(),
            subject.map(str::to_owned),
            None,
        )
        .await;
    }
}

impl Run {
    /// A run that succeeded, resumed: what it had to tell after `RunFinished` and
    /// may not have told before a crash — its open pages resolved, the stakeholder
    /// e-mail sent (once) — is done now. Nothing else runs.
    pub(in crate::engine) async fn finish_comms(&self) -> Result<super::super::report::RunReport> {
        self.resolve_pages().await;
        let emailed = self.with_report(|r| {
            r.notifications
                .iter()
                .any(|n| n.what == "stakeholder e-mail" && n.error.is_none())
        })?;
        if !emailed {
            self.email_stakeholders().await;
        }
        let builder = self.report.lock().expect("lock").take();
        let mut report = builder
            .map(super::super::report::ReportBuilder::finish)
            .ok_or_else(|| Error::failed("journal", "the run was never recorded as started"))?;
        let errors = self.journal_errors.lock().expect("lock").clone();
        if !errors.is_empty() {
            report.status = super::super::report::RunStatus::JournalFailed;
            report.journal_errors = errors;
        }
        Ok(report)
    }
}

/// `Subject: …` on the first line, a blank line, the body.
fn split_subject(email: &str) -> (Option<&str>, &str) {
    match email.split_once("\n\n") {
        Some((head, body)) if head.starts_with("Subject: ") && !head.contains('\n') => {
            (Some(&head["Subject: ".len()..]), body)
        }
        _ => (None, email),
    }
}

#[cfg(test)]
mod tests {
    use super::split_subject;

    #[test]
    fn the_subject_line_is_split_from_the_body() {
        assert_eq!(
            split_subject("Subject: [RESOLVED] Service Incident\n\nWe experienced…\n"),
            (Some("[RESOLVED] Service Incident"), "We experienced…\n")
        );
        assert_eq!(split_subject("no subject here"), (None, "no subject here"));
    }
}
