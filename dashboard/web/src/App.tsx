import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { FormEvent, ReactNode } from "react";
import { ApiError, api, openFeed } from "./api";
import { type AuthRedirect, type SignInMode, acceptLink, accessToken, choosePassword, sendPasswordLink, signIn, signInModeNow, signOut } from "./auth";
import {
  type CampaignForm,
  type CampaignSpec,
  type Trigger,
  type FeedEntry,
  type FeedStream,
  followFeed,
  type FieldError,
  type Funnel,
  describeEntry,
  emptyForm,
  mergeFeed,
  passwordProblem,
  reloadDelay,
  errorsByInput,
  fillBuckets,
  formFromSpec,
  nextPostStatus,
  type Button,
  type StepForm,
  emptyStep,
  funnelSteps,
  groupVariants,
  parseSse,
  quoteEntry,
  shows,
  specFromForm,
  testerBody,
  testerPrompt,
  triggers,
} from "./logic";

interface Workspace { id: string; slug: string; name: string; role: "owner" | "editor" | "viewer" }
interface Me { user_id: string; email: string | null; workspaces: Workspace[] }
interface Account {
  id: string; tenant_id: string; ig_user_id: string; username: string; status: string;
  status_reason: string | null; token_expires_at: string | null; webhook_fields: string[]; last_event_at: string | null;
  token_refresh_error: string | null; token_refresh_failed_at: string | null;
  subscription_error: string | null; subscription_checked_at: string | null;
}
interface CampaignView { id: string; account_id: string; managed_by: "file" | "dashboard"; source: string | null; updated_at: string; next_post_media: string | null; campaign: CampaignSpec }
interface TestResult {
  fired: {
    campaign_slug: string;
    matched_by: string;
    actions: { kind: string; text: string; quick_replies: string[]; buttons: { title: string; step: string | null; url: string | null }[] }[];
  } | null;
  skipped: string | null;
  notes: string[];
}
interface Results {
  from: string; to: string; bucket: string; funnel: Funnel;
  failures: { step: string; outcome: string; reason: string; count: number }[];
  variants: { step: string; variant: number; text: string | null; count: number }[];
  series: { at: string; matched: number; sent: number }[];
}
interface Contact { id: string; igsid: string; username: string | null; opted_out: boolean; last_seen_at: string }
interface Member { user_id: string; email: string | null; role: string }

function useRoute(): [string[], URLSearchParams] {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const on = () => setHash(window.location.hash);
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  const [path, query] = hash.replace(/^#\/?/, "").split("?");
  return [path.split("/").filter(Boolean), new URLSearchParams(query ?? "")];
}

const go = (path: string) => { window.location.hash = `#/${path}`; };
const when = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : "—");

function Badge({ tone, children }: { tone: string; children: ReactNode }) {
  return <span className={`badge badge-${tone}`}>{children}</span>;
}

function Notice({ tone, children }: { tone: "error" | "ok"; children: ReactNode }) {
  return <div className={`notice notice-${tone}`} role={tone === "error" ? "alert" : "status"}>{children}</div>;
}

function SignIn({ onSignedIn, linkError }: { onSignedIn: () => void; linkError?: string }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [mode, setMode] = useState<SignInMode | null>(null);
  const [error, setError] = useState(linkError ? `${linkError}: ask the workspace owner for a new invitation, or reset your password below.` : "");
  const [sent, setSent] = useState("");
  useEffect(() => { signInModeNow().then(setMode).catch((e) => { setMode("none"); setError(e.message); }); }, []);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    try {
      await signIn(email, password);
      onSignedIn();
    } catch (err) { setError((err as Error).message); }
  };
  const forgot = async () => {
    if (!email) { setError("Type your work e-mail first."); return; }
    try {
      await sendPasswordLink(email);
      setError("");
      setSent(`If ${email} has an account, a link to choose a new password is on its way.`);
    } catch (err) { setError((err as Error).message); }
  };
  return (
    <div className="signin">
      <form className="card signin-card" onSubmit={submit}>
        <div className="brand brand-large"><span className="logo">ig</span>flow</div>
        <p className="muted">Comments into conversations, automatically.</p>
        {mode === "none" && <Notice tone="error">No sign-in is configured: set IGFLOW_SUPABASE_URL and IGFLOW_SUPABASE_ANON_KEY.</Notice>}
        {(mode === "dev" || mode === "supabase") && (
          <label>Work e-mail<input name="email" type="email" required autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} placeholder="you@brand.com" /></label>
        )}
        {mode === "supabase" && (
          <label>Password<input name="password" type="password" required autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} /></label>
        )}
        {(mode === "dev" || mode === "supabase") && <button className="primary" type="submit">Sign in</button>}
        {mode === "supabase" && <button className="link-button" type="button" onClick={forgot}>Forgot your password?</button>}
        {mode === "dev" && <p className="hint">Development sign-in: enabled on this machine only.</p>}
        {sent && <Notice tone="ok">{sent}</Notice>}
        {error && <Notice tone="error">{error}</Notice>}
      </form>
    </div>
  );
}

/** After an invitation or a password-recovery link: the person is signed in and picks the
 * password they will sign in with from now on. */
function ChoosePassword({ kind, onDone }: { kind: "invite" | "recovery"; onDone: () => void }) {
  const [password, setPassword] = useState("");
  const [again, setAgain] = useState("");
  const [error, setError] = useState("");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const problem = passwordProblem(password, again);
    if (problem) { setError(problem); return; }
    try {
      await choosePassword(password);
      onDone();
    } catch (err) { setError((err as Error).message); }
  };
  return (
    <div className="signin">
      <form className="card signin-card" onSubmit={submit}>
        <div className="brand brand-large"><span className="logo">ig</span>flow</div>
        <h1>{kind === "invite" ? "Welcome! Choose your password" : "Choose a new password"}</h1>
        <p className="muted">{kind === "invite" ? "You were invited to a workspace. You will sign in with your e-mail and this password." : "Your old password stops working once you save this one."}</p>
        <label>New password<input name="new-password" type="password" required autoComplete="new-password" value={password} onChange={(e) => setPassword(e.target.value)} /></label>
        <label>Type it again<input name="new-password-again" type="password" required autoComplete="new-password" value={again} onChange={(e) => setAgain(e.target.value)} /></label>
        <button className="primary" type="submit">Save password</button>
        {error && <Notice tone="error">{error}</Notice>}
      </form>
    </div>
  );
}

function AccountsPage({ workspace, accounts, reload, query }: { workspace: Workspace; accounts: Account[]; reload: () => void; query: URLSearchParams }) {
  const [error, setError] = useState("");
  const connect = async () => {
    try {
      const { url } = await api<{ url: string }>("POST", "/api/accounts/connect", { tenant_id: workspace.id });
      window.location.assign(url);
    } catch (e) { setError((e as Error).message); }
  };
  const setStatus = async (a: Account, status: string) => {
    try { await api("POST", `/api/accounts/${a.id}/status`, { status }); reload(); } catch (e) { setError((e as Error).message); }
  };
  return (
    <section>
      <header className="page-head">
        <div><h1>Instagram accounts</h1><p className="muted">The professional accounts igflow answers for.</p></div>
        {workspace.role === "owner" && <button className="primary" onClick={connect}>Connect an Instagram account</button>}
      </header>
      {query.get("connected") && <Notice tone="ok">@{query.get("connected")} is connected and subscribed to comments and messages.</Notice>}
      {query.get("error") && <Notice tone="error">{query.get("error")}</Notice>}
      {error && <Notice tone="error">{error}</Notice>}
      <div className="grid">
        {accounts.map((a) => (
          <article className="card account" key={a.id}>
            <div className="account-head">
              <div className="avatar">{a.username.slice(0, 1).toUpperCase()}</div>
              <div><h3>@{a.username}</h3><span className="muted small">{a.ig_user_id}</span></div>
              <Badge tone={a.status === "active" ? "good" : a.status === "paused" ? "warn" : "bad"}>{a.status}</Badge>
            </div>
            {a.status_reason && <p className="small muted">{a.status_reason}</p>}
            {a.token_refresh_error && (
              <Notice tone="error">
                The token could not be renewed ({when(a.token_refresh_failed_at)}): {a.token_refresh_error}. igflow tries again every hour;
                reconnect the account before the token expires.
              </Notice>
            )}
            {a.subscription_error && (
              <Notice tone="error">
                Meta stopped sending this account's comments and messages, and subscribing again failed ({when(a.subscription_checked_at)}): {a.subscription_error}. Reconnect the account.
              </Notice>
            )}
            <dl className="facts">
              <dt>Token expires</dt><dd>{when(a.token_expires_at)}</dd>
              <dt>Webhooks</dt><dd>{a.webhook_fields.length ? `${a.webhook_fields.length} fields subscribed` : "set up by file"}</dd>
              <dt>Last event</dt><dd>{when(a.last_event_at)}</dd>
            </dl>
            {workspace.role === "owner" && (
              <div className="row">
                {a.status === "active" ? <button onClick={() => setStatus(a, "paused")}>Pause</button> : a.status === "paused" ? <button onClick={() => setStatus(a, "active")}>Resume</button> : null}
                <button onClick={connect}>Reconnect</button>
              </div>
            )}
          </article>
        ))}
        {accounts.length === 0 && <div className="card empty">No account yet. Connect one to start answering comments.</div>}
      </div>
    </section>
  );
}

function CampaignsPage({ workspace, campaigns }: { workspace: Workspace; campaigns: CampaignView[] }) {
  const canEdit = workspace.role !== "viewer";
  return (
    <section>
      <header className="page-head">
        <div><h1>Campaigns</h1><p className="muted">Keywords people comment, and what they get back.</p></div>
        {canEdit && <button className="primary" onClick={() => go("campaigns/new")}>New campaign</button>}
      </header>
      <div className="list">
        {campaigns.filter((c) => c.campaign.status !== "archived").map((c) => (
          <a className="card campaign-row" key={c.id} href={`#/campaigns/${c.id}`}>
            <div>
              <h3>{c.campaign.name}</h3>
              <p className="muted small">{c.campaign.rules.flatMap((r) => r.keywords).slice(0, 6).map((k) => <span className="chip" key={k}>{k}</span>)}</p>
            </div>
            <div className="row">
              {c.managed_by === "file" && <Badge tone="neutral">file · read-only</Badge>}
              <Badge tone={c.campaign.status === "active" ? "good" : "warn"}>{c.campaign.status}</Badge>
            </div>
          </a>
        ))}
      </div>
    </section>
  );
}

function Field({ label, errors, children, hint, group }: { label: string; errors?: string[]; children: ReactNode; hint?: string; group?: boolean }) {
  const inner = (
    <>
      <span>{label}</span>
      {children}
      {hint && <small className="hint">{hint}</small>}
      {errors?.map((e) => <small className="error-text" key={e}>{e}</small>)}
    </>
  );
  const className = errors?.length ? "field field-error" : "field";
  // A label names one control; several (a list of buttons) get a group.
  return group ? <div role="group" aria-label={label} className={className}>{inner}</div> : <label className={className}>{inner}</label>;
}

function Tester({ accountId, trigger }: { accountId: string; trigger: Trigger }) {
  const [text, setText] = useState("");
  const [kind, setKind] = useState<Trigger>(trigger);
  useEffect(() => setKind(trigger), [trigger]);
  const [result, setResult] = useState<TestResult | null>(null);
  const [error, setError] = useState("");
  const run = async (e: FormEvent) => {
    e.preventDefault();
    try { setResult(await api<TestResult>("POST", "/api/tester", testerBody(accountId, kind, text))); setError(""); } catch (err) { setError((err as Error).message); }
  };
  return (
    <div className="card tester">
      <h2>Keyword tester</h2>
      <p className="muted small">Do what a follower would. This is exactly what the worker would decide.</p>
      <form className="row" onSubmit={run}>
        <select aria-label="Test as" value={kind} onChange={(e) => setKind(e.target.value as Trigger)}>{triggers.map((t) => <option key={t.value} value={t.value}>{t.label}</option>)}</select>
        <input aria-label="Test comment" value={text} disabled={kind === "story_mention"} onChange={(e) => setText(e.target.value)} placeholder={testerPrompt(kind)} />
        <button className="primary" type="submit">Test</button>
      </form>
      {error && <Notice tone="error">{error}</Notice>}
      {result && (
        <div className="test-result" data-testid="tester-result">
          {result.notes.map((n) => <p className="muted small" key={n}>{n}</p>)}
          {result.fired ? (
            <>
              <p><Badge tone="good">fires</Badge> <strong>{result.fired.campaign_slug}</strong> · {result.fired.matched_by}</p>
              {result.fired.actions.map((a) => (
                <div className="bubble" key={a.kind}><span className="small muted">{a.kind.replace("_", " ")}</span><p>{a.text}</p>
                  {a.buttons.length > 0 && (
                    <div className="bubble-buttons">
                      {a.buttons.map((b) => (
                        <div className="bubble-button" key={b.title} title={b.step ? `sends step “${b.step}”` : `opens ${b.url}`}>
                          {b.title}<span className="small muted">{b.step ? ` → step ${b.step}` : " ↗"}</span>
                        </div>
                      ))}
                    </div>
                  )}
                  {a.quick_replies.length > 0 && <div className="row">{a.quick_replies.map((q) => <span className="chip" key={q}>{q}</span>)}</div>}
                </div>
              ))}
            </>
          ) : <p><Badge tone="neutral">no campaign fires</Badge> {result.skipped}</p>}
        </div>
      )}
    </div>
  );
}

function Chart({ results }: { results: Results }) {
  const buckets = fillBuckets(results.series, results.from, results.to, results.bucket === "day" ? "day" : "hour");
  const w = 560, h = 170, pad = 22, top = 26;
  const max = Math.max(1, ...buckets.map((b) => Math.max(b.matched, b.sent)));
  const slot = (w - 2 * pad) / Math.max(buckets.length, 1);
  const bar = Math.max(2, slot * 0.36);
  const y = (v: number) => h - pad - (v / max) * (h - pad - top);
  const label = (iso: string) => results.bucket === "day" ? new Date(iso).toLocaleDateString(undefined, { month: "short", day: "numeric" }) : new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit" });
  const every = Math.max(1, Math.ceil(buckets.length / 8));
  return (
    <svg className="chart" viewBox={`0 0 ${w} ${h}`} role="img" aria-label="Matched and sent over time">
      <defs><linearGradient id="sent" x1="0" x2="0" y1="0" y2="1"><stop offset="0" stopColor="#e1306c" /><stop offset="1" stopColor="#7b3fe4" /></linearGradient></defs>
      <text x={pad} y={14} className="legend"><tspan className="legend-matched">■ matched</tspan>  <tspan className="legend-sent">■ sent</tspan>  · peak {max} per {results.bucket}</text>
      <line x1={pad} x2={w - pad} y1={h - pad} y2={h - pad} className="axis" />
      {buckets.map((b, i) => (
        <g key={b.at}>
          <rect x={pad + i * slot + slot / 2 - bar} y={y(b.matched)} width={bar} height={h - pad - y(b.matched)} rx={2} className="bar-matched" />
          <rect x={pad + i * slot + slot / 2} y={y(b.sent)} width={bar} height={h - pad - y(b.sent)} rx={2} fill="url(#sent)" />
          {i % every === 0 && <text x={pad + i * slot + slot / 2} y={h - 6} textAnchor="middle" className="tick">{label(b.at)}</text>}
        </g>
      ))}
    </svg>
  );
}

function ResultsPanel({ campaignId, trigger, refresh }: { campaignId: string; trigger: Trigger; refresh: number }) {
  const [hours, setHours] = useState(24);
  const [results, setResults] = useState<Results | null>(null);
  // Live activity reloads the results at most every few seconds, however busy the account.
  const [tick, setTick] = useState(0);
  const lastReload = useRef(0);
  const seenRefresh = useRef(refresh);
  useEffect(() => {
    if (refresh === seenRefresh.current) return;
    seenRefresh.current = refresh;
    const t = setTimeout(() => { lastReload.current = Date.now(); setTick((n) => n + 1); }, reloadDelay(lastReload.current, Date.now()));
    return () => clearTimeout(t);
  }, [refresh]);
  useEffect(() => {
    const from = new Date(Date.now() - hours * 3600_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    api<Results>("GET", `/api/campaigns/${campaignId}/results?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`).then(setResults).catch(() => setResults(null));
  }, [campaignId, hours, tick]);
  if (!results) return null;
  const steps = funnelSteps(results.funnel, trigger);
  const variantGroups = groupVariants(results.variants);
  return (
    <div className="card results" data-testid="results">
      <div className="page-head"><h2>Results</h2>
        <select aria-label="Period" value={hours} onChange={(e) => setHours(Number(e.target.value))}>
          <option value={24}>Last 24 hours</option><option value={168}>Last 7 days</option><option value={720}>Last 30 days</option>
        </select>
      </div>
      <div className="funnel">
        {steps.map((s) => (
          <div className="funnel-step" key={s.label}>
            <span className="funnel-label">{s.label}</span>
            <div className="bar"><div style={{ width: `${Math.max(s.percent, s.value ? 2 : 0)}%` }} /></div>
            <strong data-testid={`funnel-${s.label}`}>{s.value}</strong>
          </div>
        ))}
      </div>
      <Chart results={results} />
      {variantGroups.map((g) => (
        <div key={g.step}><h3>{g.title}</h3>
          {g.variants.map((v) => <p key={v.variant} className="small">“{v.text}” — {v.share}% ({v.count})</p>)}
        </div>
      ))}
      {results.failures.length > 0 && (
        <div><h3>Not sent, and why</h3>
          {results.failures.map((f) => <p key={`${f.step}${f.outcome}${f.reason}`} className="small"><Badge tone="bad">{f.outcome}</Badge> {f.step.replace("_", " ")}: {f.reason || "no reason recorded"} ({f.count})</p>)}
        </div>
      )}
    </div>
  );
}

function CampaignPage({ id, workspace, accounts, campaigns, reload, refresh }: { id: string; workspace: Workspace; accounts: Account[]; campaigns: CampaignView[]; reload: () => void; refresh: number }) {
  const existing = campaigns.find((c) => c.id === id);
  const [form, setForm] = useState<CampaignForm>(existing ? formFromSpec(existing.campaign) : emptyForm);
  const [accountId, setAccountId] = useState(existing?.account_id ?? accounts[0]?.id ?? "");
  const [errors, setErrors] = useState<FieldError[]>([]);
  const [message, setMessage] = useState("");
  useEffect(() => { if (existing) setForm(formFromSpec(existing.campaign)); }, [existing]);
  const readOnly = workspace.role === "viewer" || existing?.managed_by === "file";
  const byInput = errorsByInput(errors);
  const set = (key: keyof CampaignForm) => (e: { target: { value: string } }) => setForm({ ...form, [key]: e.target.value });
  const save = async (e: FormEvent) => {
    e.preventDefault();
    try {
      if (existing) {
        await api("PUT", `/api/campaigns/${existing.id}`, { campaign: specFromForm(form, existing.campaign.status) });
        setMessage("Saved. The worker uses it for the next comment.");
      } else {
        const created = await api<CampaignView>("POST", "/api/campaigns", { account_id: accountId, campaign: specFromForm(form) });
        go(`campaigns/${created.id}`);
      }
      setErrors([]);
      reload();
    } catch (err) {
      if (err instanceof ApiError && err.fields.length) setErrors(err.fields);
      else setErrors([{ field: "general", message: (err as Error).message }]);
    }
  };
  const setStatus = async (status: string) => {
    if (!existing) return;
    try { await api("POST", `/api/campaigns/${existing.id}/status`, { status }); reload(); } catch (err) { setMessage((err as Error).message); }
  };
  return (
    <section>
      <header className="page-head">
        <div><a href="#/campaigns" className="small">← Campaigns</a><h1>{existing ? existing.campaign.name : "New campaign"}</h1></div>
        {existing && !readOnly && (
          <div className="row">
            {existing.campaign.status === "active" ? <button onClick={() => setStatus("paused")}>Pause</button> : <button onClick={() => setStatus("active")}>Resume</button>}
            <button className="danger" onClick={() => setStatus("archived")}>Archive</button>
          </div>
        )}
      </header>
      {existing?.managed_by === "file" && <Notice tone="ok">This campaign comes from the campaign file <code>{existing.source}</code>. Change it there and run <code>igflow-worker apply</code>.</Notice>}
      {message && <Notice tone="ok">{message}</Notice>}
      <div className="two-col">
        <form className="card editor" onSubmit={save}>
          <fieldset disabled={readOnly}>
            {!existing && accounts.length > 1 && (
              <Field label="Account"><select value={accountId} onChange={(e) => setAccountId(e.target.value)}>{accounts.map((a) => <option key={a.id} value={a.id}>@{a.username}</option>)}</select></Field>
            )}
            <Field label="Name" errors={byInput.name}><input name="name" value={form.name} onChange={set("name")} placeholder="Black Friday" /></Field>
            <Field label="When someone…">
              <select name="trigger" value={form.trigger} onChange={set("trigger")}>{triggers.map((t) => <option key={t.value} value={t.value}>{t.label}</option>)}</select>
            </Field>
            {shows(form.trigger, "keywords") && <Field label="Keywords" errors={byInput.keywords ?? byInput.slug} hint={form.trigger === "story_reply" ? "Comma-separated; leave empty to answer every reply." : "Comma-separated. Accents, case and emoji are handled for you."}><input name="keywords" value={form.keywords} onChange={set("keywords")} placeholder="deal, price, link" /></Field>}
            {shows(form.trigger, "match") && <Field label="Match" errors={byInput.match}>
              <select name="match" value={form.match} onChange={set("match")}>
                <option value="whole_word">Whole words</option><option value="phrase">Phrase</option><option value="prefix">Word starts with</option><option value="contains">Anywhere</option><option value="exact">Whole comment</option>
              </select>
            </Field>}
            {shows(form.trigger, "nextPost") && <label className="check"><input type="checkbox" name="nextPost" checked={form.nextPost} onChange={(e) => setForm({ ...form, nextPost: e.target.checked })} /> Only the next post I publish</label>}
            {shows(form.trigger, "nextPost") && form.nextPost && <Notice tone="ok">{nextPostStatus(existing?.campaign.next_post ? existing.next_post_media : null)}</Notice>}
            {byInput.nextPost?.map((m) => <Notice tone="error" key={m}>{m}</Notice>)}
            {shows(form.trigger, "mediaIds") && !(shows(form.trigger, "nextPost") && form.nextPost) && <Field label={form.trigger === "story_reply" ? "Only these stories (ids)" : "Only these posts (ids)"} errors={byInput.mediaIds} hint="Comma-separated; leave empty for all."><input name="mediaIds" value={form.mediaIds} onChange={set("mediaIds")} /></Field>}
            {shows(form.trigger, "payloads") && <Field label="Button payloads" errors={byInput.payloads} hint="Comma-separated, exactly as the button, ice breaker or menu sends them."><input name="payloads" value={form.payloads} onChange={set("payloads")} placeholder="PRICES" /></Field>}
            {shows(form.trigger, "refs") && <Field label="Link refs" errors={byInput.refs} hint="ig.me/m/you?ref=… values, comma-separated."><input name="refs" value={form.refs} onChange={set("refs")} placeholder="bio, newsletter" /></Field>}
            {shows(form.trigger, "adIds") && <Field label="Ad ids" errors={byInput.adIds} hint="Click-to-message ads, comma-separated."><input name="adIds" value={form.adIds} onChange={set("adIds")} /></Field>}
            {shows(form.trigger, "privateReply") && <Field label="Private reply (DM)" errors={byInput.privateReply} hint="{username} becomes the commenter's name. Variants: separate them with a line holding only ---."><textarea name="privateReply" rows={3} value={form.privateReply} onChange={set("privateReply")} /></Field>}
            {shows(form.trigger, "publicReplies") && <Field label="Public replies" errors={byInput.publicReplies} hint="One per line; each comment gets one of them."><textarea name="publicReplies" rows={2} value={form.publicReplies} onChange={set("publicReplies")} /></Field>}
            {shows(form.trigger, "publicReplies") && <label className="check"><input type="checkbox" name="publicFollowsPrivate" checked={form.publicFollowsPrivate} onChange={(e) => setForm({ ...form, publicFollowsPrivate: e.target.checked })} /> Post the public reply only when the DM went out</label>}
            {shows(form.trigger, "dm") && <Field label="DM" errors={byInput.dm} hint="Sent in the conversation, inside Meta's 24-hour window. Variants: separate them with a line holding only ---."><textarea name="dm" rows={3} value={form.dm} onChange={set("dm")} /></Field>}
            <Field label="Quick replies under the DM" errors={byInput.quickReplies}><input name="quickReplies" value={form.quickReplies} onChange={set("quickReplies")} placeholder="Shop now, Sizes" /></Field>
            <div className="row">
              <Field label="Priority" errors={byInput.priority}><input name="priority" value={form.priority} onChange={set("priority")} /></Field>
              <Field label="One DM per person every (hours)" errors={byInput.cooldownHours}><input name="cooldownHours" value={form.cooldownHours} onChange={set("cooldownHours")} /></Field>
            </div>
            <Field label="Buttons under the DM (tap → a step, or a link)" errors={byInput.buttons} group>
              <ButtonsEditor buttons={form.buttons} steps={form.steps} onChange={(buttons) => setForm({ ...form, buttons })} name="buttons" />
            </Field>
            <StepsEditor steps={form.steps} errors={byInput.steps} onChange={(steps) => setForm({ ...form, steps })} />
            <label className="check"><input type="checkbox" name="shadow" checked={form.shadow} onChange={(e) => setForm({ ...form, shadow: e.target.checked })} /> Shadow mode: record what would be sent, send nothing</label>
            {byInput.general?.map((m) => <Notice tone="error" key={m}>{m}</Notice>)}
            {!readOnly && <button className="primary" type="submit">{existing ? "Save changes" : "Create campaign"}</button>}
          </fieldset>
        </form>
        <div className="stack">
          {accountId && <Tester accountId={accountId} trigger={form.trigger} />}
          {existing && <ResultsPanel campaignId={existing.id} trigger={existing.campaign.trigger} refresh={refresh} />}
        </div>
      </div>
    </section>
  );
}

/** Template buttons: each a title and what a tap does (a step of the flow, or a link). */
function ButtonsEditor({ buttons, steps, onChange, name }: { buttons: Button[]; steps: StepForm[]; onChange: (b: Button[]) => void; name: string }) {
  const update = (i: number, b: Button) => onChange(buttons.map((x, j) => (j === i ? b : x)));
  return (
    <div className="stack" data-testid={name}>
      {buttons.map((b, i) => (
        <div className="row" key={i}>
          <input aria-label={`${name} ${i + 1} title`} value={b.title} maxLength={20} placeholder="Send me the link" onChange={(e) => update(i, { ...b, title: e.target.value })} />
          <select aria-label={`${name} ${i + 1} action`} value={b.url !== undefined ? "url" : `step:${b.step ?? ""}`}
            onChange={(e) => update(i, e.target.value === "url" ? { title: b.title, url: "https://" } : { title: b.title, step: e.target.value.slice(5) })}>
            {steps.map((s) => <option key={s.name} value={`step:${s.name}`}>goes to step {s.name}</option>)}
            <option value="url">opens a link</option>
          </select>
          {b.url !== undefined && <input aria-label={`${name} ${i + 1} link`} value={b.url} onChange={(e) => update(i, { title: b.title, url: e.target.value })} />}
          <button type="button" onClick={() => onChange(buttons.filter((_, j) => j !== i))}>Remove</button>
        </div>
      ))}
      {buttons.length < 3 && <button type="button" onClick={() => onChange([...buttons, steps[0] ? { title: "", step: steps[0].name } : { title: "", url: "https://" }])}>Add a button</button>}
    </div>
  );
}

/** The flow's steps: each a message, its buttons and quick replies, and what it checks. */
function StepsEditor({ steps, errors, onChange }: { steps: StepForm[]; errors?: string[]; onChange: (s: StepForm[]) => void }) {
  const update = (i: number, s: StepForm) => onChange(steps.map((x, j) => (j === i ? s : x)));
  return (
    <fieldset className="steps" data-testid="steps">
      <legend>Flow steps</legend>
      {errors?.map((m) => <Notice tone="error" key={m}>{m}</Notice>)}
      {steps.map((s, i) => (
        <div className="card step" key={i}>
          <div className="row">
            <Field label="Step name"><input aria-label={`step ${i + 1} name`} value={s.name} onChange={(e) => update(i, { ...s, name: e.target.value })} /></Field>
            <button type="button" onClick={() => onChange(steps.filter((_, j) => j !== i))}>Remove step</button>
          </div>
          <Field label="Message" hint="Variants: separate them with a line holding only ---."><textarea aria-label={`step ${i + 1} message`} rows={2} value={s.dm} onChange={(e) => update(i, { ...s, dm: e.target.value })} /></Field>
          <ButtonsEditor buttons={s.buttons} steps={steps} onChange={(buttons) => update(i, { ...s, buttons })} name={`step ${i + 1} buttons`} />
          <Field label="Quick replies"><input aria-label={`step ${i + 1} quick replies`} value={s.quickReplies} onChange={(e) => update(i, { ...s, quickReplies: e.target.value })} /></Field>
          <label className="check"><input type="checkbox" aria-label={`step ${i + 1} followers only`} checked={s.followGate !== null}
            onChange={(e) => update(i, { ...s, followGate: e.target.checked ? { not_following: "Follow us first, then tap below" } : null })} /> Followers only</label>
          {s.followGate && <Field label="Message to people who do not follow yet"><input aria-label={`step ${i + 1} not following`} value={s.followGate.not_following} onChange={(e) => update(i, { ...s, followGate: { ...s.followGate!, not_following: e.target.value } })} /></Field>}
          <Field label="Then ask for">
            <select aria-label={`step ${i + 1} capture`} value={s.capture?.field ?? ""} onChange={(e) => update(i, { ...s, capture: e.target.value ? { invalid: "That doesn't look right. Try again?", ...s.capture, field: e.target.value as "email" | "phone" } : null })}>
              <option value="">nothing</option><option value="email">their email</option><option value="phone">their phone number</option>
            </select>
          </Field>
          <div className="row">
            <Field label="Send only if">
              <select aria-label={`step ${i + 1} only if`} value={s.onlyIf} onChange={(e) => update(i, { ...s, onlyIf: e.target.value })}>
                <option value="">always</option>
                <option value="known:email">email on record</option><option value="unknown:email">no email on record</option>
                <option value="known:phone">phone on record</option><option value="unknown:phone">no phone on record</option>
              </select>
            </Field>
            {s.onlyIf && <Field label="Otherwise send">
              <select aria-label={`step ${i + 1} otherwise`} value={s.otherwise} onChange={(e) => update(i, { ...s, otherwise: e.target.value })}>
                <option value="">nothing</option>
                {steps.filter((o) => o.name !== s.name).map((o) => <option key={o.name} value={o.name}>step {o.name}</option>)}
              </select>
            </Field>}
          </div>
          {s.capture && (
            <div className="row">
              <Field label="If the answer is not valid"><input aria-label={`step ${i + 1} invalid`} value={s.capture.invalid} onChange={(e) => update(i, { ...s, capture: { ...s.capture!, invalid: e.target.value } })} /></Field>
              <Field label="Then go to">
                <select aria-label={`step ${i + 1} next`} value={s.capture.next ?? ""} onChange={(e) => update(i, { ...s, capture: { ...s.capture!, next: e.target.value || undefined } })}>
                  <option value="">no further step</option>
                  {steps.filter((o) => o.name !== s.name).map((o) => <option key={o.name} value={o.name}>step {o.name}</option>)}
                </select>
              </Field>
            </div>
          )}
        </div>
      ))}
      {steps.length < 10 && <button type="button" onClick={() => onChange([...steps, emptyStep(steps.length + 1)])}>Add a step</button>}
    </fieldset>
  );
}

function FeedPage({ entries }: { entries: FeedEntry[] }) {
  return (
    <section>
      <header className="page-head"><div><h1>Live activity</h1><p className="muted">Every decision and message, as it happens.</p></div><Badge tone="good">● live</Badge></header>
      <div className="card feed" data-testid="feed">
        {entries.length === 0 && <p className="muted">Waiting for the first comment…</p>}
        {entries.map((e) => {
          const d = describeEntry(e);
          return (
            <div className={`feed-row feed-${d.tone}`} key={`${e.id}-${e.outcome}`}>
              <span className="dot" />
              <div>
                <strong>{d.title}</strong>
                {quoteEntry(e) && <p className="small quote">{quoteEntry(e)}</p>}
                {d.reason && <p className="small muted">{d.reason}</p>}
              </div>
              <span className="small muted">{new Date(e.at).toLocaleTimeString()}</span>
            </div>
          );
        })}
      </div>
    </section>
  );
}

function OptOutsPage({ workspace }: { workspace: Workspace }) {
  const [q, setQ] = useState("");
  const [all, setAll] = useState(false);
  const [contacts, setContacts] = useState<Contact[]>([]);
  const [error, setError] = useState("");
  const load = useCallback(() => {
    api<Contact[]>("GET", `/api/contacts?all=${all}&q=${encodeURIComponent(q)}`).then(setContacts).catch((e) => setError(e.message));
  }, [q, all]);
  useEffect(load, [load]);
  const toggle = async (c: Contact) => {
    try { await api("POST", `/api/contacts/${c.id}`, { opted_out: !c.opted_out }); load(); } catch (e) { setError((e as Error).message); }
  };
  return (
    <section>
      <header className="page-head"><div><h1>Opted-out people</h1><p className="muted">They get no automated message. People can also reply STOP or START.</p></div></header>
      <div className="row"><input aria-label="Search" placeholder="Search a username" value={q} onChange={(e) => setQ(e.target.value)} />
        <label className="check"><input type="checkbox" checked={all} onChange={(e) => setAll(e.target.checked)} /> Show everyone</label></div>
      {error && <Notice tone="error">{error}</Notice>}
      <div className="card">
        {contacts.length === 0 && <p className="muted">Nobody here.</p>}
        {contacts.map((c) => (
          <div className="feed-row" key={c.id}>
            <div className="avatar small-avatar">{(c.username ?? "?").slice(0, 1).toUpperCase()}</div>
            <div><strong>{c.username ? `@${c.username}` : c.igsid}</strong><p className="small muted">last seen {when(c.last_seen_at)}</p></div>
            {workspace.role !== "viewer" && <button onClick={() => toggle(c)}>{c.opted_out ? "Opt back in" : "Opt out"}</button>}
          </div>
        ))}
      </div>
    </section>
  );
}

function MembersPage({ workspace, me }: { workspace: Workspace; me: Me }) {
  const [members, setMembers] = useState<Member[]>([]);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("editor");
  const [error, setError] = useState("");
  const load = useCallback(() => { api<Member[]>("GET", `/api/tenants/${workspace.id}/members`).then(setMembers).catch((e) => setError(e.message)); }, [workspace.id]);
  useEffect(load, [load]);
  const act = async (f: () => Promise<unknown>) => { try { await f(); setError(""); load(); } catch (e) { setError((e as Error).message); } };
  const owner = workspace.role === "owner";
  return (
    <section>
      <header className="page-head"><div><h1>Members</h1><p className="muted">Owners manage members and accounts; editors change campaigns; viewers read.</p></div></header>
      {owner && (
        <form className="card row" onSubmit={(e) => { e.preventDefault(); act(() => api("POST", `/api/tenants/${workspace.id}/members`, { email, role })); }}>
          <input type="email" required placeholder="colleague@brand.com" value={email} onChange={(e) => setEmail(e.target.value)} aria-label="Invite e-mail" />
          <select value={role} onChange={(e) => setRole(e.target.value)} aria-label="Role"><option>viewer</option><option>editor</option><option>owner</option></select>
          <button className="primary" type="submit">Invite</button>
        </form>
      )}
      {error && <Notice tone="error">{error}</Notice>}
      <div className="card">
        {members.map((m) => (
          <div className="feed-row" key={m.user_id}>
            <div className="avatar small-avatar">{(m.email ?? "?").slice(0, 1).toUpperCase()}</div>
            <div><strong>{m.email ?? m.user_id}</strong>{m.user_id === me.user_id && <span className="small muted"> (you)</span>}</div>
            {owner ? (
              <div className="row">
                <select value={m.role} aria-label="Change role" onChange={(e) => act(() => api("PUT", `/api/tenants/${workspace.id}/members/${m.user_id}`, { role: e.target.value }))}><option>viewer</option><option>editor</option><option>owner</option></select>
                <button className="danger" onClick={() => act(() => api("DELETE", `/api/tenants/${workspace.id}/members/${m.user_id}`))}>Remove</button>
              </div>
            ) : <Badge tone="neutral">{m.role}</Badge>}
          </div>
        ))}
      </div>
    </section>
  );
}

export function App({ redirect }: { redirect: AuthRedirect | null }) {
  const [signedIn, setSignedIn] = useState<boolean | null>(null);
  // A mailed link that signed the person in: the password comes first.
  const [choosing, setChoosing] = useState<"invite" | "recovery" | null>(null);
  const [linkError, setLinkError] = useState(redirect?.kind === "error" ? redirect.message : "");
  const [me, setMe] = useState<Me | null>(null);
  const [accounts, setAccounts] = useState<Account[]>([]);
  const [campaigns, setCampaigns] = useState<CampaignView[]>([]);
  const [feed, setFeed] = useState<FeedEntry[]>([]);
  // Counts arrivals (the feed itself stops growing at its cap): what refreshes the results.
  const [feedUpdates, setFeedUpdates] = useState(0);
  const [error, setError] = useState("");
  const [route, query] = useRoute();
  const reload = useCallback(() => {
    Promise.all([api<Me>("GET", "/api/me"), api<Account[]>("GET", "/api/accounts"), api<CampaignView[]>("GET", "/api/campaigns")])
      .then(([m, a, c]) => { setMe(m); setAccounts(a); setCampaigns(c); })
      .catch((e) => { if (e instanceof ApiError && e.status === 401) setSignedIn(false); else setError(e.message); });
  }, []);
  useEffect(() => {
    if (redirect && redirect.kind !== "error") {
      acceptLink(redirect.accessToken, redirect.refreshToken)
        .then(() => { setChoosing(redirect.kind); setSignedIn(true); })
        .catch((e) => { setLinkError((e as Error).message); setSignedIn(false); });
      return;
    }
    accessToken().then((t) => setSignedIn(Boolean(t))).catch(() => setSignedIn(false));
  }, [redirect]);
  useEffect(() => { if (signedIn) reload(); }, [signedIn, reload]);
  useEffect(() => {
    if (!signedIn) return;
    const abort = new AbortController();
    const stream: FeedStream = (since, onEntries) => {
      let buffer = "";
      return openFeed((chunk) => {
        const parsed = parseSse(buffer + chunk);
        buffer = parsed.rest;
        const fresh = parsed.events.filter((e) => e.event === "activity").map((e) => JSON.parse(e.data) as FeedEntry);
        if (fresh.length) onEntries(fresh);
      }, abort.signal, since);
    };
    followFeed(stream, (fresh) => { setFeed((old) => mergeFeed(old, fresh)); setFeedUpdates((n) => n + 1); }, abort.signal).catch(() => undefined);
    return () => abort.abort();
  }, [signedIn]);
  const workspace = me?.workspaces[0];
  const visibleAccounts = useMemo(() => accounts.filter((a) => a.tenant_id === workspace?.id), [accounts, workspace]);
  if (signedIn === null) return <div className="loading">Loading…</div>;
  if (!signedIn) return <SignIn onSignedIn={() => setSignedIn(true)} linkError={linkError} />;
  if (choosing) return <ChoosePassword kind={choosing} onDone={() => setChoosing(null)} />;
  if (!me) return <div className="loading">{error || "Loading…"}</div>;
  if (!workspace) return <div className="loading">You are not a member of any workspace yet: ask its owner to invite {me.email}.</div>;
  const page = route[0] ?? "campaigns";
  const nav: [string, string][] = [["campaigns", "Campaigns"], ["activity", "Live activity"], ["accounts", "Accounts"], ["opt-outs", "Opt-outs"], ["members", "Members"]];
  return (
    <div className="shell">
      <aside className="sidebar">
        <div className="brand"><span className="logo">ig</span>flow</div>
        <div className="workspace"><strong>{workspace.name}</strong><span className="small">{workspace.role}</span></div>
        <nav>{nav.map(([p, label]) => <a key={p} href={`#/${p}`} className={page === p ? "active" : ""}>{label}</a>)}</nav>
        <button className="signout" onClick={() => { signOut().catch(() => undefined).finally(() => { setSignedIn(false); setMe(null); }); }}>Sign out {me.email}</button>
      </aside>
      <main>
        {error && <Notice tone="error">{error}</Notice>}
        {page === "accounts" && <AccountsPage workspace={workspace} accounts={visibleAccounts} reload={reload} query={query} />}
        {page === "campaigns" && !route[1] && <CampaignsPage workspace={workspace} campaigns={campaigns.filter((c) => visibleAccounts.some((a) => a.id === c.account_id))} />}
        {page === "campaigns" && route[1] && <CampaignPage key={route[1]} id={route[1]} workspace={workspace} accounts={visibleAccounts} campaigns={campaigns} reload={reload} refresh={feedUpdates} />}
        {page === "activity" && <FeedPage entries={feed} />}
        {page === "opt-outs" && <OptOutsPage workspace={workspace} />}
        {page === "members" && <MembersPage workspace={workspace} me={me} />}
      </main>
    </div>
  );
}
