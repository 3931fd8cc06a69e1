//! Who is told what (playbook § Emergency Contacts): named contacts, each reached
//! through a channel the host registered, and the routes from each event to them.
//!
//! ```toml
//! [comms]
//! escalate_after = "15m"
//!
//! [comms.contacts]
//! incident-channel = { via = "slack" }
//! on-call = { via = "pagerduty" }                        # PagerDuty #mesh-os-oncall
//! eng-manager = { via = "slack", mention = ["<@U024BE7LH>"] }
//! vp-engineering = { via = "slack", mention = ["<@U0G9QF9C6>"] }
//! security-incidents = { via = "slack-security" }
//! customer-support = { via = "slack-support" }
//! stakeholders = { via = "email" }
//!
//! [comms.routes]
//! unresolved = ["eng-manager", "vp-engineering"]
//! data_corruption = ["security-incidents", "eng-manager"]
//! customer_reports = ["customer-support"]
//! stakeholder_email = ["stakeholders"]
//! ```
//!
//! Without contacts, `incident-channel` is the engine's notifier and `on-call` its
//! escalator, so a spec that names none keeps working as before.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::problem::PlanProblem;
use super::providers::Providers;
use crate::provider::{Escalator, Notifier};

/// The contact a spec means when it names none for chat messages.
pub const INCIDENT_CHANNEL: &str = "incident-channel";
/// The contact a spec means when it names none for pages.
pub const ON_CALL: &str = "on-call";

/// How one contact is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactSpec {
    /// The channel, by the name it was registered under
    /// ([`Providers::with_channel`]); `notifier` and `escalator` are the engine's
    /// default notifier and escalator.
    pub via: String,
    /// How that channel addresses the contact (Slack `<@U024BE7LH>` or
    /// `<!subteam^SAZ94GDB8>`): put first in every message to them, unescaped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mention: Vec<String>,
}

/// The routes: for each event, the contacts told. Every list names contacts of
/// `comms.contacts` (or the built-in `incident-channel` and `on-call`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutesSpec {
    /// "ROLLBACK IN PROGRESS".
    pub announcement: Vec<String>,
    /// The status update every `status_interval`.
    pub status_update: Vec<String>,
    /// The rollback's outcome.
    pub resolution: Vec<String>,
    /// A region's step failed, or the run halted: paged at once.
    pub region_failed: Vec<String>,
    /// The escalation ladder: still unresolved after `escalate_after`, the first is
    /// told; after twice that, the second; and so on.
    pub unresolved: Vec<String>,
    /// Data corruption: told at once.
    pub data_corruption: Vec<String>,
    /// Customers still reporting problems above the matrix's investigate threshold.
    pub customer_reports: Vec<String>,
    /// The stakeholder e-mail, sent when the run ends.
    pub stakeholder_email: Vec<String>,
}

impl Default for RoutesSpec {
    /// Chat messages to `incident-channel`; failures and data corruption to `on-call`;
    /// no ladder, no customer-support route, no e-mail.
    fn default() -> Self {
        let channel = || vec![INCIDENT_CHANNEL.to_owned()];
        RoutesSpec {
            announcement: channel(),
            status_update: channel(),
            resolution: channel(),
            region_failed: vec![ON_CALL.to_owned()],
            unresolved: Vec::new(),
            data_corruption: vec![ON_CALL.to_owned()],
            customer_reports: Vec::new(),
            stakeholder_email: Vec::new(),
        }
    }
}

/// An event people are told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommsEvent {
    /// The announcement.
    Announcement,
    /// A status update.
    StatusUpdate,
    /// The outcome.
    Resolution,
    /// A region failed.
    RegionFailed,
    /// Still unresolved (the ladder).
    Unresolved,
    /// Data corruption.
    DataCorruption,
    /// Customer reports above the investigate threshold.
    CustomerReports,
    /// The stakeholder e-mail.
    StakeholderEmail,
}

impl CommsEvent {
    /// The config key of its route.
    pub fn key(self) -> &'static str {
        match self {
            CommsEvent::Announcement => "announcement",
            CommsEvent::StatusUpdate => "status_update",
            CommsEvent::Resolution => "resolution",
            CommsEvent::RegionFailed => "region_failed",
            CommsEvent::Unresolved => "unresolved",
            CommsEvent::DataCorruption => "data_corruption",
            CommsEvent::CustomerReports => "customer_reports",
            CommsEvent::StakeholderEmail => "stakeholder_email",
        }
    }

    /// Whether a pager may be told: alerts yes; chat messages and the e-mail are
    /// words for people to read, not pages.
    fn may_page(self) -> bool {
        matches!(
            self,
            CommsEvent::RegionFailed
                | CommsEvent::Unresolved
                | CommsEvent::DataCorruption
                | CommsEvent::CustomerReports
        )
    }

    const ALL: [CommsEvent; 8] = [
        CommsEvent::Announcement,
        CommsEvent::StatusUpdate,
        CommsEvent::Resolution,
        CommsEvent::RegionFailed,
        CommsEvent::Unresolved,
        CommsEvent::DataCorruption,
        CommsEvent::CustomerReports,
        CommsEvent::StakeholderEmail,
    ];
}

impl fmt::Display for CommsEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl RoutesSpec {
    /// The contacts of one event's route.
    pub fn route(&self, event: CommsEvent) -> &[String] {
        match event {
            CommsEvent::Announcement => &self.announcement,
            CommsEvent::StatusUpdate => &self.status_update,
            CommsEvent::Resolution => &self.resolution,
            CommsEvent::RegionFailed => &self.region_failed,
            CommsEvent::Unresolved => &self.unresolved,
            CommsEvent::DataCorruption => &self.data_corruption,
            CommsEvent::CustomerReports => &self.customer_reports,
            CommsEvent::StakeholderEmail => &self.stakeholder_email,
        }
    }
}

/// A channel the host registers by name: a chat (or e-mail) notifier, or a pager.
#[derive(Debug, Clone)]
pub enum Channel {
    /// Messages: Slack, Teams, e-mail.
    Chat(Arc<dyn Notifier>),
    /// Pages: PagerDuty.
    Pager(Arc<dyn Escalator>),
}

/// One contact, resolved: its name, how it is reached, how it is addressed.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) channel: Channel,
    pub(crate) mention: Vec<String>,
}

/// Every route resolved against the providers, once per run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Routing {
    routes: BTreeMap<&'static str, Vec<Target>>,
}

impl Routing {
    /// Resolves the routes. A name that resolves to nothing is a plan problem
    /// ([`check`]); here it is left out, so a resumed run of an old plan still runs.
    pub(crate) fn resolve(
        contacts: &BTreeMap<String, ContactSpec>,
        routes: &RoutesSpec,
        providers: &Providers,
    ) -> Self {
        let mut out = BTreeMap::new();
        for event in CommsEvent::ALL {
            let targets = routes
                .route(event)
                .iter()
                .filter_map(|name| {
                    let (channel, mention) = lookup(contacts, providers, name).ok()?;
                    Some(Target {
                        name: name.clone(),
                        channel,
                        mention,
                    })
                })
                .collect();
            out.insert(event.key(), targets);
        }
        Routing { routes: out }
    }

    /// The contacts told of `event`.
    pub(crate) fn targets(&self, event: CommsEvent) -> &[Target] {
        self.routes.get(event.key()).map_or(&[], Vec::as_slice)
    }

    /// The pager of the contact with this name, on any route.
    pub(crate) fn pager(&self, name: &str) -> Option<Arc<dyn Escalator>> {
        self.routes
            .values()
            .flatten()
            .find_map(|t| match &t.channel {
                Channel::Pager(e) if t.name == name => Some(e.clone()),
                _ => None,
            })
    }

    /// Every distinct pager of any route, by contact name: change events go to each.
    pub(crate) fn pagers(&self) -> Vec<(String, Arc<dyn Escalator>)> {
        let mut seen: Vec<(String, Arc<dyn Escalator>)> = Vec::new();
        for t in self.routes.values().flatten() {
            if let Channel::Pager(e) = &t.channel
                && !seen.iter().any(|(_, s)| Arc::ptr_eq(s, e))
            {
                seen.push((t.name.clone(), e.clone()));
            }
        }
        seen
    }
}

/// Why a contact name resolves to nothing.
enum Unresolved {
    /// No such contact.
    Contact,
    /// The contact's channel is not registered.
    Channel(String),
    /// A built-in contact whose default provider is not configured: quietly nobody.
    Unconfigured,
}

fn lookup(
    contacts: &BTreeMap<String, ContactSpec>,
    providers: &Providers,
    name: &str,
) -> Result<(Channel, Vec<String>), Unresolved> {
    let (via, mention, builtin) = match contacts.get(name) {
        Some(c) => (c.via.as_str(), c.mention.clone(), false),
        None if name == INCIDENT_CHANNEL => ("notifier", Vec::new(), true),
        None if name == ON_CALL => ("escalator", Vec::new(), true),
        None => return Err(Unresolved::Contact),
    };
    let channel = match (providers.channels.get(via), via) {
        (Some(c), _) => Some(c.clone()),
        (None, "notifier") => providers.notifier.clone().map(Channel::Chat),
        (None, "escalator") => providers.escalator.clone().map(Channel::Pager),
        (None, _) => None,
    };
    match channel {
        Some(c) => Ok((c, mention)),
        None if builtin => Err(Unresolved::Unconfigured),
        None => Err(Unresolved::Channel(via.to_owned())),
    }
}

/// Every problem of the routes: unknown contacts, unregistered channels, pages where
/// people must read words.
pub(crate) fn check(
    contacts: &BTreeMap<String, ContactSpec>,
    routes: &RoutesSpec,
    providers: &Providers,
) -> Vec<PlanProblem> {
    let mut problems = Vec::new();
    for event in CommsEvent::ALL {
        for name in routes.route(event) {
            let field = format!("comms.routes.{}", event.key());
            match lookup(contacts, providers, name) {
                Ok((Channel::Pager(_), _)) if !event.may_page() => {
                    problems.push(PlanProblem::BadRoute {
                        field,
                        contact: name.clone(),
                        why: "reaches a pager, and this event is a message for people to read: route it to a chat or e-mail contact".into(),
                    });
                }
                Ok(_) | Err(Unresolved::Unconfigured) => {}
                Err(Unresolved::Contact) => problems.push(PlanProblem::BadRoute {
                    field,
                    contact: name.clone(),
                    why: "is not a contact: add it under comms.contacts".into(),
                }),
                Err(Unresolved::Channel(via)) => problems.push(PlanProblem::BadRoute {
                    field: format!("comms.contacts.{name}.via"),
                    contact: name.clone(),
                    why: format!(
                        "is reached via \"{via}\", which is not a registered channel: register it with Providers::with_channel(\"{via}\", …)"
                    ),
                }),
            }
        }
    }
    problems.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    problems.dedup();
    problems
}

/// What one contact was told, and whether it reached them.
#[derive(Debug)]
pub struct Told {
    /// The contact.
    pub to: String,
    /// Whether it reached them.
    pub result: crate::Result<()>,
}

/// The events a decision is news for: data corruption and customer reports have
/// routes of their own; anything at "initiate rollback" or worse goes to the
/// region-failed route (on-call) as well.
fn events_for(decision: &crate::decision::Decision) -> Vec<CommsEvent> {
    use crate::decision::{Action, Rule};
    let mut events = Vec::new();
    let fired = |rule: Rule| decision.findings.iter().any(|f| f.rule == rule);
    if fired(Rule::DataCorruption) {
        events.push(CommsEvent::DataCorruption);
    }
    if fired(Rule::CustomerReportsInvestigate) || fired(Rule::CustomerReportsRollback) {
        events.push(CommsEvent::CustomerReports);
    }
    // On-call hears of anything at "initiate rollback" or worse, data corruption
    // included ("stop all deployments, escalate").
    if decision.at_least() >= Action::Rollback {
        events.push(CommsEvent::RegionFailed);
    }
    events
}

/// Tells a decision's routes about it, outside a run: pagers get
/// [`escalation_for_decision`](super::comms::escalation_for_decision), chat contacts
/// its summary and findings with their mentions. Each contact at most once, each
/// bounded by `timeout`.
pub(crate) async fn tell_decision(
    providers: &Providers,
    redactor: &crate::redact::Redactor,
    comms: &super::spec::CommsSpec,
    incident: &crate::model::Incident,
    region: &crate::model::Region,
    decision: &crate::decision::Decision,
    timeout: std::time::Duration,
) -> Vec<Told> {
    use crate::provider::{Message, MessageKind};
    let routing = Routing::resolve(&comms.contacts, &comms.routes, providers);
    let mut escalation = super::comms::escalation_for_decision(incident, region, decision);
    escalation.summary = redactor.redact(&escalation.summary);
    let mut text = format!("🚨 {}", escalation.summary);
    for f in decision.findings.iter() {
        text.push_str(&format!("\n- {f}"));
    }
    let text = redactor.redact(&text);
    let mut told = Vec::new();
    for event in events_for(decision) {
        for t in routing.targets(event) {
            if told.iter().any(|x: &Told| x.to == t.name) {
                continue;
            }
            let call = async {
                match &t.channel {
                    Channel::Chat(n) => {
                        let m = Message::new(MessageKind::Escalation, incident.id.clone(), &text)
                            .with_mentions(t.mention.iter().cloned());
                        n.send(&m).await
                    }
                    Channel::Pager(e) => e.trigger(&escalation).await,
                }
            };
            let result = tokio::time::timeout(timeout, call)
                .await
                .unwrap_or_else(|_| {
                    Err(crate::Error::Timeout {
                        operation: format!("telling {} of a decision", t.name),
                        after: timeout,
                    })
                });
            told.push(Told {
                to: t.name.clone(),
                result,
            });
        }
    }
    told
}
