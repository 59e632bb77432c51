//! Group commit for the writes nearly every event makes: its person noted in `contacts` (and
//! their opt-out read back), its decision row in `activity`, and how each of its actions
//! ended (the action row's outcome, under the attempt's claim). Events in flight together
//! hand these to a few flusher tasks, each of which writes everything waiting in one statement
//! and one commit; every caller still waits for the commit that holds its row, so nothing is
//! acknowledged before it is durable. Under load this turns one round trip and one WAL flush
//! per write into one per batch; alone, an event pays one channel hop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::future::join_all;
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::{ActionRecord, DecisionRecord, StoreError};

/// The most writes one statement carries.
const MAX_BATCH: usize = 128;
/// Batches written at once; the pool's other connections serve the events' other statements.
const FLUSHERS: usize = 4;

/// A contact noted without a consent change: the person's row created or its last sighting
/// and username updated.
pub(super) struct Touch {
    pub account_id: Uuid,
    pub igsid: String,
    pub username: Option<String>,
}

/// A decision row, owned so it can wait for its batch.
struct DecisionRow {
    tenant_id: Option<Uuid>,
    ig_user_id: String,
    event_id: String,
    event_kind: String,
    campaign_id: Option<Uuid>,
    contact: Option<String>,
    outcome: &'static str,
    detail: Option<String>,
    excerpt: Option<String>,
}

impl From<&DecisionRecord<'_>> for DecisionRow {
    fn from(d: &DecisionRecord<'_>) -> Self {
        Self {
            tenant_id: d.tenant_id,
            ig_user_id: d.ig_user_id.to_owned(),
            event_id: d.event_id.to_owned(),
            event_kind: d.event_kind.to_owned(),
            campaign_id: d.campaign_id,
            contact: d.contact.map(str::to_owned),
            outcome: d.outcome.as_str(),
            detail: d.detail.clone(),
            excerpt: d.excerpt.map(str::to_owned),
        }
    }
}

/// How an action ended, for the row this attempt claimed.
pub(super) struct Finish {
    ig_user_id: String,
    event_id: String,
    step: &'static str,
    attempt: Uuid,
    record: ActionRecord,
}

impl Finish {
    pub fn new(d: &DecisionRecord<'_>, step: &'static str, r: &ActionRecord) -> Self {
        Self {
            ig_user_id: d.ig_user_id.to_owned(),
            event_id: d.event_id.to_owned(),
            step,
            attempt: d.attempt,
            record: r.clone(),
        }
    }

    /// The action and the attempt: two attempts at one action (one taken over by the other)
    /// may share a batch, and only the one holding the claim is recorded.
    fn key(&self) -> (&str, &str, &str, Uuid) {
        (&self.ig_user_id, &self.event_id, self.step, self.attempt)
    }
}

enum Job {
    Touch(Touch, oneshot::Sender<Result<bool, StoreError>>),
    Decide(DecisionRow, oneshot::Sender<Result<(), StoreError>>),
    Finish(Finish, oneshot::Sender<Result<bool, StoreError>>),
}

/// The writers' queue; cloned with the [`super::Store`]. The flushers end once every clone is
/// dropped and the queue is empty.
#[derive(Clone)]
pub(super) struct Batches {
    jobs: mpsc::Sender<Job>,
}

impl Batches {
    /// Starts the flusher tasks on the current Tokio runtime.
    pub fn start(pool: PgPool) -> Self {
        let (jobs, rx) = mpsc::channel(MAX_BATCH * FLUSHERS);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..FLUSHERS {
            tokio::spawn(flush_while_open(pool.clone(), Arc::clone(&rx)));
        }
        Self { jobs }
    }

    /// Notes the person; returns whether they have opted out.
    pub async fn touch(&self, touch: Touch) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Touch(touch, reply), answer).await
    }

    /// Records the decision once; a redelivered event keeps the first record.
    pub async fn decide(&self, d: &DecisionRecord<'_>) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Decide(d.into(), reply), answer).await
    }

    /// Records the action's outcome; false when the claim is no longer this attempt's.
    pub async fn finish(&self, finish: Finish) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Finish(finish, reply), answer).await
    }

    async fn submit<T>(
        &self,
        job: Job,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        // Only a flusher that stopped (its runtime shutting down) drops a job unanswered.
        let gone = || StoreError::Db(sqlx::Error::PoolClosed);
        self.jobs.send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn flush_while_open(pool: PgPool, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let mut jobs = Vec::with_capacity(MAX_BATCH);
        if rx.lock().await.recv_many(&mut jobs, MAX_BATCH).await == 0 {
            return;
        }
        flush(&pool, jobs).await;
    }
}

/// Writes the jobs in one statement; if it fails, each job alone, so that one row Postgres
/// refuses fails only its own event.
#[tracing::instrument(name = "store.batch", level = "debug", skip_all, fields(jobs = jobs.len()))]
async fn flush(pool: &PgPool, jobs: Vec<Job>) {
    match write(pool, &jobs).await {
        Ok(written) => jobs.into_iter().for_each(|job| answer(job, Ok(&written))),
        Err(e) if jobs.len() == 1 => {
            if let Some(job) = jobs.into_iter().next() {
                answer(job, Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, jobs = jobs.len(), "batched write failed; writing each alone");
            join_all(jobs.into_iter().map(|job| async move {
                match write(pool, std::slice::from_ref(&job)).await {
                    Ok(written) => answer(job, Ok(&written)),
                    Err(e) => answer(job, Err(e)),
                }
            }))
            .await;
        }
    }
}

/// What a batch wrote: whether each person touched has opted out, and the actions whose
/// outcome was recorded (the claim still the attempt's).
#[derive(Default)]
struct Written {
    opted_out: BTreeMap<(Uuid, String), bool>,
    finished: BTreeSet<(String, String, String, Uuid)>,
}

fn answer(job: Job, written: Result<&Written, sqlx::Error>) {
    // A caller that gave up (its event cancelled at shutdown) no longer needs the answer.
    match job {
        Job::Decide(_, reply) => {
            let _ = reply.send(written.map(|_| ()).map_err(StoreError::Db));
        }
        Job::Touch(t, reply) => {
            let found = written.and_then(|w| {
                w.opted_out
                    .get(&(t.account_id, t.igsid))
                    .copied()
                    .ok_or(sqlx::Error::RowNotFound)
            });
            let _ = reply.send(found.map_err(StoreError::Db));
        }
        Job::Finish(f, reply) => {
            let (account, event, step, attempt) = f.key();
            let key = (
                account.to_owned(),
                event.to_owned(),
                step.to_owned(),
                attempt,
            );
            let _ = reply.send(
                written
                    .map(|w| w.finished.contains(&key))
                    .map_err(StoreError::Db),
            );
        }
    }
}

/// One statement: the decisions inserted (a row already there kept), the outcomes recorded
/// where the claim is still the attempt's, then the contacts upserted and their opt-outs
/// returned. Contacts and outcomes are sent once each and in key order, so two batches
/// touching the same rows lock them in the same order.
async fn write(pool: &PgPool, jobs: &[Job]) -> Result<Written, sqlx::Error> {
    let mut touched: BTreeMap<(Uuid, &str), Option<&str>> = BTreeMap::new();
    let mut finishes: BTreeMap<(&str, &str, &str, Uuid), &Finish> = BTreeMap::new();
    let mut rows = DecisionColumns::default();
    for job in jobs {
        match job {
            Job::Touch(t, _) => {
                let username = touched.entry((t.account_id, &t.igsid)).or_default();
                *username = t.username.as_deref().or(*username);
            }
            Job::Decide(d, _) => rows.push(d),
            Job::Finish(f, _) => {
                finishes.insert(f.key(), f);
            }
        }
    }
    let (mut accounts, mut igsids, mut usernames) = (vec![], vec![], vec![]);
    for ((account, igsid), username) in touched {
        accounts.push(account);
        igsids.push(igsid);
        usernames.push(username);
    }
    let mut outcomes = FinishColumns::default();
    finishes.into_values().for_each(|f| outcomes.push(f));
    let found: Vec<Found> = sqlx::query_as(
        "with decided as (
             insert into activity (tenant_id, ig_user_id, event_id, event_kind, step, campaign_id,
                                   contact_igsid, outcome, detail, excerpt)
             select d.tenant_id, d.ig_user_id, d.event_id, d.event_kind, 'decision', d.campaign_id,
                    d.contact, d.outcome, d.detail, left(d.excerpt, 140)
             from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], $6::text[],
                         $7::text[], $8::text[], $9::text[])
                  as d(tenant_id, ig_user_id, event_id, event_kind, campaign_id, contact, outcome,
                       detail, excerpt)
             on conflict (ig_user_id, event_id, step) do nothing
         ), finished as (
             update activity a
             set outcome = f.outcome, detail = f.detail, graph_status = f.graph_status,
                 graph_code = f.graph_code, graph_subcode = f.graph_subcode,
                 response_id = f.response_id, latency_ms = f.latency_ms, updated_at = now(),
                 lease_until = null
             from unnest($13::text[], $14::text[], $15::text[], $16::uuid[], $17::text[],
                         $18::text[], $19::int4[], $20::int4[], $21::int4[], $22::text[],
                         $23::int4[])
                  as f(ig_user_id, event_id, step, attempt, outcome, detail, graph_status,
                       graph_code, graph_subcode, response_id, latency_ms)
             where a.ig_user_id = f.ig_user_id and a.event_id = f.event_id and a.step = f.step
               and a.claim_token = f.attempt
             returning a.ig_user_id, a.event_id, a.step, a.claim_token
         ), touched as (
             insert into contacts (account_id, igsid, username)
             select * from unnest($10::uuid[], $11::text[], $12::text[])
             on conflict (account_id, igsid) do update
               set last_seen_at = now(),
                   username = coalesce(excluded.username, contacts.username)
             returning account_id, igsid, opted_out
         )
         select account_id, igsid, opted_out, null::text, null::text, null::text, null::uuid
         from touched
         union all
         select null, null, null, ig_user_id, event_id, step, claim_token from finished",
    )
    .bind(rows.tenant_ids)
    .bind(rows.ig_user_ids)
    .bind(rows.event_ids)
    .bind(rows.event_kinds)
    .bind(rows.campaign_ids)
    .bind(rows.contacts)
    .bind(rows.outcomes)
    .bind(rows.details)
    .bind(rows.excerpts)
    .bind(accounts)
    .bind(igsids)
    .bind(usernames)
    .bind(outcomes.ig_user_ids)
    .bind(outcomes.event_ids)
    .bind(outcomes.steps)
    .bind(outcomes.attempts)
    .bind(outcomes.outcomes)
    .bind(outcomes.details)
    .bind(outcomes.graph_statuses)
    .bind(outcomes.graph_codes)
    .bind(outcomes.graph_subcodes)
    .bind(outcomes.response_ids)
    .bind(outcomes.latencies)
    .fetch_all(pool)
    .await?;
    let mut written = Written::default();
    for row in found {
        match row {
            (Some(account), Some(igsid), Some(opted_out), ..) => {
                written.opted_out.insert((account, igsid), opted_out);
            }
            (.., Some(account), Some(event), Some(step), Some(attempt)) => {
                written.finished.insert((account, event, step, attempt));
            }
            _ => {}
        }
    }
    Ok(written)
}

/// A contact's opt-out (the first three) or a recorded outcome's action and attempt (the
/// last four).
type Found = (
    Option<Uuid>,
    Option<String>,
    Option<bool>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Uuid>,
);

/// Outcomes as the statement's arrays, one per column.
#[derive(Default)]
struct FinishColumns<'a> {
    ig_user_ids: Vec<&'a str>,
    event_ids: Vec<&'a str>,
    steps: Vec<&'a str>,
    attempts: Vec<Uuid>,
    outcomes: Vec<&'a str>,
    details: Vec<Option<&'a str>>,
    graph_statuses: Vec<Option<i32>>,
    graph_codes: Vec<Option<i32>>,
    graph_subcodes: Vec<Option<i32>>,
    response_ids: Vec<Option<&'a str>>,
    latencies: Vec<Option<i32>>,
}

impl<'a> FinishColumns<'a> {
    fn push(&mut self, f: &'a Finish) {
        let r = &f.record;
        self.ig_user_ids.push(&f.ig_user_id);
        self.event_ids.push(&f.event_id);
        self.steps.push(f.step);
        self.attempts.push(f.attempt);
        self.outcomes.push(r.outcome.as_str());
        self.details.push(r.detail.as_deref());
        self.graph_statuses.push(r.graph_status.map(i32::from));
        self.graph_codes
            .push(r.graph_code.and_then(|c| i32::try_from(c).ok()));
        self.graph_subcodes
            .push(r.graph_subcode.and_then(|c| i32::try_from(c).ok()));
        self.response_ids.push(r.response_id.as_deref());
        self.latencies
            .push(r.latency.and_then(|l| i32::try_from(l.as_millis()).ok()));
    }
}

/// Decision rows as the statement's arrays, one per column.
#[derive(Default)]
struct DecisionColumns<'a> {
    tenant_ids: Vec<Option<Uuid>>,
    ig_user_ids: Vec<&'a str>,
    event_ids: Vec<&'a str>,
    event_kinds: Vec<&'a str>,
    campaign_ids: Vec<Option<Uuid>>,
    contacts: Vec<Option<&'a str>>,
    outcomes: Vec<&'a str>,
    details: Vec<Option<&'a str>>,
    excerpts: Vec<Option<&'a str>>,
}

impl<'a> DecisionColumns<'a> {
    fn push(&mut self, d: &'a DecisionRow) {
        self.tenant_ids.push(d.tenant_id);
        self.ig_user_ids.push(&d.ig_user_id);
        self.event_ids.push(&d.event_id);
        self.event_kinds.push(&d.event_kind);
        self.campaign_ids.push(d.campaign_id);
        self.contacts.push(d.contact.as_deref());
        self.outcomes.push(d.outcome);
        self.details.push(d.detail.as_deref());
        self.excerpts.push(d.excerpt.as_deref());
    }
}
