//! The customer impact from data, for runs whose checklist gave none (automatic
//! rollbacks): "~150 customers experienced elevated error rates" from numbers. The
//! count is of customer reports (one customer may report twice: the customer-reports
//! source is the playbook's own measure of it); the failed requests are the metrics
//! source's error rate and request rate over the time since the incident began.

use jiff::Timestamp;

use super::super::checklist::CustomerImpact;
use super::super::journal::JournalEvent;
use super::Run;
use crate::model::ServiceRef;

impl Run {
    /// Measures and journals the impact, when the checklist did not assess it and
    /// there is something to measure with. What cannot be read is left out, never
    /// guessed: no source at all means no measurement (the report says "Not yet
    /// assessed").
    pub(super) async fn measure_impact(&self) {
        let assessed = self
            .with_report(|r| r.customer_impact().is_some())
            .unwrap_or(true);
        if assessed {
            return;
        }
        let providers = &self.engine.providers;
        let since = self.request.incident.started_at;
        let now = self.engine.clock.now();
        let mut customers: Option<u32> = None;
        if let Some(reports) = &providers.reports {
            for rp in &self.plan.regions {
                let limit = self.engine.notify_timeout;
                let counted = tokio::time::timeout(limit, reports.count_since(&rp.region, since))
                    .await
                    .unwrap_or_else(|_| {
                        Err(crate::Error::Timeout {
                            operation: format!("{reports}: count_since"),
                            after: limit,
                        })
                    });
                match counted {
                    Ok(n) => customers = Some(customers.unwrap_or(0) + n),
                    Err(e) => {
                        tracing::warn!(region = %rp.region, error = %self.redact(&e.to_string()), "cannot count customer reports for the impact");
                        customers = None;
                        break;
                    }
                }
            }
        }
        let failed = match &providers.metrics {
            Some(m) => failed_requests(self, m.as_ref(), since, now).await,
            None => None,
        };
        let effect = match failed {
            Some((n, pct)) => format!(
                "elevated error rates (~{n} failed requests since {} UTC, {pct:.2}% of requests)",
                since.strftime("%H:%M")
            ),
            None if customers.is_some() => "problems they reported".to_owned(),
            None => return,
        };
        let impact = CustomerImpact::new(customers, effect);
        self.record(JournalEvent::ImpactMeasured { impact }).await;
    }
}

/// Failed requests since the incident began, summed over the plan's services:
/// average error rate × request rate × the time since. `None` when any service
/// lacks either number: a partial sum would understate the impact.
async fn failed_requests(
    run: &Run,
    metrics: &dyn crate::provider::MetricsSource,
    since: Timestamp,
    now: Timestamp,
) -> Option<(u64, f64)> {
    if now <= since {
        return None;
    }
    let window = now.duration_since(since).unsigned_abs();
    let (mut failed, mut total) = (0f64, 0f64);
    for rp in &run.plan.regions {
        let service = ServiceRef::new(rp.region.clone(), rp.service.clone());
        // Bounded like a message: the run is over, and a hung source must not keep
        // it from being recorded as finished.
        let m = tokio::time::timeout(run.engine.notify_timeout, metrics.observe(&service, window))
            .await
            .ok()?
            .ok()?;
        let (err, rps) = (m.error_rate_pct?, m.request_rate_rps?);
        let requests = rps * window.as_secs_f64();
        total += requests;
        failed += requests * err / 100.0;
    }
    (total > 0.0).then(|| (failed.round() as u64, 100.0 * failed / total))
}
