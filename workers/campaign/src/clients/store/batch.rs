//! Group commit for the two writes nearly every event makes: its person noted in `contacts`
//! (and their opt-out read back) and its decision row in `activity`. Events in flight together
//! hand these to a few flusher tasks, each of which writes everything waiting in one statement
//! and one commit; every caller still waits for the commit that holds its row, so nothing is
//! acknowledged before it is durable. Under load this turns one round trip and one WAL flush
//! per write into one per batch; alone, an event pays one channel hop.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::join_all;
use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::{DecisionRecord, StoreError};

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

enum Job {
    Touch(Touch, oneshot::Sender<Result<bool, StoreError>>),
    Decide(DecisionRow, oneshot::Sender<Result<(), StoreError>>),
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
        Ok(opted_out) => jobs.into_iter().for_each(|job| answer(job, Ok(&opted_out))),
        Err(e) if jobs.len() == 1 => {
            if let Some(job) = jobs.into_iter().next() {
                answer(job, Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, jobs = jobs.len(), "batched write failed; writing each alone");
            join_all(jobs.into_iter().map(|job| async move {
                match write(pool, std::slice::from_ref(&job)).await {
                    Ok(opted_out) => answer(job, Ok(&opted_out)),
                    Err(e) => answer(job, Err(e)),
                }
            }))
            .await;
        }
    }
}

/// Whether each person touched has opted out.
type OptedOut = BTreeMap<(Uuid, String), bool>;

fn answer(job: Job, written: Result<&OptedOut, sqlx::Error>) {
    // A caller that gave up (its event cancelled at shutdown) no longer needs the answer.
    match job {
        Job::Decide(_, reply) => {
            let _ = reply.send(written.map(|_| ()).map_err(StoreError::Db));
        }
        Job::Touch(t, reply) => {
            let found = written.and_then(|o| {
                o.get(&(t.account_id, t.igsid))
                    .copied()
                    .ok_or(sqlx::Error::RowNotFound)
            });
            let _ = reply.send(found.map_err(StoreError::Db));
        }
    }
}

/// One statement: the decisions inserted (a row already there kept), then the contacts upserted
/// and their opt-outs returned. Contacts are sent once each and in key order, so two batches
/// touching the same people lock them in the same order.
async fn write(pool: &PgPool, jobs: &[Job]) -> Result<OptedOut, sqlx::Error> {
    let mut touched: BTreeMap<(Uuid, &str), Option<&str>> = BTreeMap::new();
    let mut rows = DecisionColumns::default();
    for job in jobs {
        match job {
            Job::Touch(t, _) => {
                let username = touched.entry((t.account_id, &t.igsid)).or_default();
                *username = t.username.as_deref().or(*username);
            }
            Job::Decide(d, _) => rows.push(d),
        }
    }
    let (mut accounts, mut igsids, mut usernames) = (vec![], vec![], vec![]);
    for ((account, igsid), username) in touched {
        accounts.push(account);
        igsids.push(igsid);
        usernames.push(username);
    }
    let found: Vec<(Uuid, String, bool)> = sqlx::query_as(
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
         )
         insert into contacts (account_id, igsid, username)
         select * from unnest($10::uuid[], $11::text[], $12::text[])
         on conflict (account_id, igsid) do update
           set last_seen_at = now(),
               username = coalesce(excluded.username, contacts.username)
         returning account_id, igsid, opted_out",
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
    .fetch_all(pool)
    .await?;
    Ok(found
        .into_iter()
        .map(|(account, igsid, opted_out)| ((account, igsid), opted_out))
        .collect())
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
