//! Delivery: what an upstream error means for a submission, one attempt (at once or
//! by the worker; after an unknown outcome, a look before any new send), the worker
//! that delivers what is due in order of arrival, and the pruner that forgets old
//! delivered records.

use super::*;

/// `base × 2^attempt`, at most `max`, with jitter (a random point in its upper half).
pub(super) fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let full = base
        .saturating_mul(1u32 << attempt.min(20))
        .min(max)
        .max(Duration::from_millis(1));
    let half = full / 2;
    half + Duration::from_millis(rand::thread_rng().gen_range(0..=ms(half).max(0) as u64))
}

/// What an upstream error means for a submission.
pub(super) enum Outcome {
    /// Refused: `FAILED`, never sent again.
    Refused(Vec<FieldError>),
    /// Nothing was created; `overloaded`: ActionKit asks us to slow down.
    NotCreated { overloaded: bool, pause: bool },
    /// Sent, no answer: the action may exist.
    Unknown,
}

pub(super) fn classify(e: &UpstreamError) -> Outcome {
    match e {
        UpstreamError::BadRequest { messages } => Outcome::Refused(field_errors(messages)),
        UpstreamError::InvalidInput(_) => Outcome::Refused(vec![FieldError {
            field: String::new(),
            code: "REFUSED".into(),
            message: "The gateway could not send this submission to ActionKit.".into(),
        }]),
        // `Timeout` from `submit_action`: no slot under the client's cap in time,
        // nothing was sent (sent-and-unanswered is `WriteOutcomeUnknown`).
        UpstreamError::RateLimited | UpstreamError::CircuitOpen | UpstreamError::Timeout => {
            Outcome::NotCreated {
                overloaded: true,
                pause: true,
            }
        }
        UpstreamError::Transport(_) | UpstreamError::Unauthorized | UpstreamError::NotFound => {
            Outcome::NotCreated {
                overloaded: false,
                pause: true,
            }
        }
        // Another 4xx (405, 409, 413, ...): nothing was created. More likely a setting
        // than the input, so it is retried with backoff (and shows in the record).
        UpstreamError::Status { status } if (400..500).contains(status) => Outcome::NotCreated {
            overloaded: false,
            pause: false,
        },
        // Sent and not answered, or answered in a way that does not say: look first.
        UpstreamError::WriteOutcomeUnknown
        | UpstreamError::Status { .. }
        | UpstreamError::Decode { .. } => Outcome::Unknown,
    }
}

/// Which path made a delivery attempt (a metrics label).
#[derive(Clone, Copy)]
pub(super) enum Path {
    AtOnce,
    Worker,
}

impl Path {
    pub(super) fn label(self) -> &'static str {
        match self {
            Path::AtOnce => "at_once",
            Path::Worker => "worker",
        }
    }
}

pub(super) fn count_attempt(path: Path, result: &'static str) {
    metrics::counter!("gateway_outbox_delivery_attempts_total", "path" => path.label(), "result" => result)
        .increment(1);
}

impl Shared {
    pub(super) fn claim(&self, id: &str) -> bool {
        lock(&self.claims).insert(id.to_owned())
    }

    pub(super) fn unclaim(&self, id: &str) {
        lock(&self.claims).remove(id);
    }

    pub(super) fn claimed(&self) -> Vec<String> {
        lock(&self.claims).iter().cloned().collect()
    }

    pub(super) fn paused_until(&self) -> Option<Instant> {
        let mut p = lock(&self.pause);
        match p.until {
            Some(t) if t > Instant::now() => Some(t),
            Some(_) => {
                p.until = None;
                None
            }
            None => None,
        }
    }

    /// Runs `f` unless the outbox is abandoned first (`None` then).
    pub(super) async fn unless_abandoned<T>(
        &self,
        f: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        let mut abandon = self.abandon.subscribe();
        if *abandon.borrow_and_update() {
            return None;
        }
        tokio::select! {
            v = f => Some(v),
            _ = abandon.wait_for(|a| *a) => None,
        }
    }

    pub(super) fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub(super) fn gauge(&self) {
        metrics::gauge!("gateway_outbox_queue_depth").set(self.store.queue_depth() as f64);
    }

    /// ActionKit is overloaded or unreachable: pause the worker (doubling each time
    /// until a success). Overloaded (429, breaker open, no slot) is a limit on how many
    /// at once, so the pause is short (100 ms doubling to 2 s) and the worker halves
    /// its window; unreachable pauses longer (250 ms doubling to 30 s).
    pub(super) fn upstream_trouble(&self, overloaded: bool) {
        let (base, cap) = if overloaded {
            (Duration::from_millis(100), Duration::from_secs(2))
        } else {
            (Duration::from_millis(250), Duration::from_secs(30))
        };
        let cap = self.settings.max_backoff.min(cap);
        let mut p = lock(&self.pause);
        let delay = backoff(p.level, base, cap);
        p.level = (p.level + 1).min(20);
        let until = Instant::now() + delay;
        p.until = Some(p.until.map_or(until, |t| t.max(until)));
        drop(p);
        if overloaded {
            let w = self.window.load(Ordering::Acquire);
            self.window.store((w / 2).max(1), Ordering::Release);
        }
    }

    pub(super) fn upstream_fine(&self) {
        lock(&self.pause).level = 0;
        let max = self.settings.worker_concurrency.max(1);
        let w = self.window.load(Ordering::Acquire);
        if w < max {
            self.window.store(w + 1, Ordering::Release);
        }
    }

    /// One delivery attempt of a claimed submission: look first if its outcome is
    /// unknown (unless `marked`: this call stored it in flight itself and has not sent
    /// it yet), then send, then record the answer. Returns the record after it.
    pub(super) async fn attempt(
        &self,
        sub: StoredSubmission,
        marked: bool,
        path: Path,
    ) -> Result<(StoredSubmission, Option<Action>), OutboxError> {
        let mut sub = sub;
        let settings = &self.settings;
        if sub.outcome_unknown && !marked {
            let since = ms_to_system_time(sub.first_sent_at_ms.unwrap_or(sub.created_at_ms));
            match self
                .sender
                .find_submitted_action(&sub.submission, since)
                .await
            {
                Ok(Some(action)) => {
                    count_attempt(path, "found");
                    tracing::info!(
                        submission = %sub.id,
                        action = %action.id,
                        "outbox: the action of an unanswered send exists; not sending again"
                    );
                    let id = action.id;
                    return self
                        .finish(
                            &sub,
                            Resolution::Processed {
                                action_id: id,
                                redirect_url: None,
                            },
                            Some(action),
                        )
                        .await;
                }
                Ok(None) => count_attempt(path, "not_found"),
                Err(e) => {
                    count_attempt(path, "lookup_failed");
                    if let Outcome::NotCreated { overloaded, .. } = classify(&e) {
                        self.upstream_trouble(overloaded);
                    }
                    let wait = backoff(sub.attempts, Duration::from_secs(1), settings.max_backoff);
                    tracing::debug!(submission = %sub.id, error = %e, "outbox: lookup failed");
                    return self
                        .finish(
                            &sub,
                            Resolution::Retry {
                                outcome_unknown: true,
                                next_attempt_at_ms: now_ms() + ms(wait),
                                error: format!("lookup_{}", e.kind()),
                            },
                            None,
                        )
                        .await;
                }
            }
        }
        if !marked {
            let now = now_ms();
            sub = self
                .store
                .mark_sending(&sub.id, now, now + ms(settings.unknown_settle))
                .await?;
            if sub.state != SubmissionState::Queued {
                return Ok((sub, None));
            }
        }
        let sent_at = now_ms();
        match self.sender.submit_action(&sub.submission).await {
            Ok(processed) => {
                count_attempt(path, "processed");
                self.upstream_fine();
                let resolution = Resolution::Processed {
                    action_id: processed.action.id,
                    redirect_url: processed.redirect_url.clone(),
                };
                self.finish(&sub, resolution, Some(processed.action)).await
            }
            Err(e) => {
                let resolution = match classify(&e) {
                    Outcome::Refused(errors) => {
                        count_attempt(path, "refused");
                        Resolution::Failed {
                            field_errors: errors,
                        }
                    }
                    Outcome::NotCreated { overloaded, pause } => {
                        count_attempt(path, "not_created");
                        if pause {
                            self.upstream_trouble(overloaded);
                        }
                        // ActionKit asks for less: due again at once, behind the pause.
                        let wait = if overloaded {
                            Duration::ZERO
                        } else {
                            backoff(sub.attempts, Duration::from_secs(1), settings.max_backoff)
                        };
                        Resolution::Retry {
                            outcome_unknown: false,
                            next_attempt_at_ms: now_ms() + ms(wait),
                            error: e.kind().to_owned(),
                        }
                    }
                    Outcome::Unknown => {
                        count_attempt(path, "outcome_unknown");
                        let wait =
                            backoff(sub.attempts, Duration::from_secs(1), settings.max_backoff);
                        let next = (sent_at + ms(settings.unknown_settle)).max(now_ms() + ms(wait));
                        tracing::info!(
                            submission = %sub.id,
                            error = e.kind(),
                            "outbox: sent without an answer; will look before sending again"
                        );
                        Resolution::Retry {
                            outcome_unknown: true,
                            next_attempt_at_ms: next,
                            error: e.kind().to_owned(),
                        }
                    }
                };
                self.finish(&sub, resolution, None).await
            }
        }
    }

    pub(super) async fn finish(
        &self,
        sub: &StoredSubmission,
        resolution: Resolution,
        action: Option<Action>,
    ) -> Result<(StoredSubmission, Option<Action>), OutboxError> {
        let processed = matches!(resolution, Resolution::Processed { .. });
        let result = self.store.resolve(&sub.id, resolution, now_ms()).await;
        self.gauge();
        let stored = result?;
        if processed {
            // No receiver (nobody watches progress) is fine.
            let _ = self.processed.send(stored.submission.page.clone());
            let delay = (now_ms() - stored.created_at_ms).max(0) as f64 / 1000.0;
            metrics::histogram!("gateway_outbox_delivery_delay_seconds").record(delay);
        }
        Ok((stored, action))
    }
}

/// The worker: delivers due submissions, oldest first, `window` at a time.
pub(super) async fn worker(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    loop {
        if *stop.borrow() {
            break;
        }
        if let Some(until) = shared.paused_until() {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let window = shared.window.load(Ordering::Acquire).max(1);
        let active = shared.active.load(Ordering::Acquire);
        if active >= window {
            tokio::select! {
                _ = shared.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let due = shared
            .store
            .due(now_ms(), window - active, shared.claimed())
            .await;
        let due = match due {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(error = %e, "outbox worker: cannot read the queue");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
        };
        if due.is_empty() {
            let next = shared
                .store
                .next_attempt_at(shared.claimed())
                .await
                .ok()
                .flatten();
            let wait = next
                .map(|t| (t - now_ms()).clamp(0, 5_000))
                .unwrap_or(5_000);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(wait as u64)) => {}
                _ = shared.wake.notified() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        for sub in due {
            if !shared.claim(&sub.id) {
                continue;
            }
            let Ok(track) = shared.tracker.clone().acquire_owned().await else {
                shared.unclaim(&sub.id);
                break;
            };
            shared.active.fetch_add(1, Ordering::AcqRel);
            let sh = shared.clone();
            tokio::spawn(async move {
                let id = sub.id.clone();
                if let Some(Err(e)) = sh
                    .unless_abandoned(sh.attempt(sub, false, Path::Worker))
                    .await
                {
                    tracing::error!(submission = %id, error = %e, "outbox worker");
                }
                sh.unclaim(&id);
                sh.active.fetch_sub(1, Ordering::AcqRel);
                drop(track);
                sh.wake.notify_one();
            });
        }
    }
}

/// Forgets delivered and failed submissions past the retention, at start and hourly.
pub(super) async fn pruner(shared: Arc<Shared>) {
    let Some(retention) = shared.settings.retention else {
        return;
    };
    let mut stop = shared.stop.subscribe();
    loop {
        if *stop.borrow() {
            break;
        }
        match shared.store.prune(now_ms() - ms(retention)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "outbox: forgot submissions past the retention"),
            Err(e) => tracing::warn!(error = %e, "outbox: pruning failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
            _ = stop.changed() => {}
        }
    }
}
