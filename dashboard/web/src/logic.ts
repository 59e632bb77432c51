// Logic of the dashboard that is not drawing: the campaign form <-> the API's campaign shape,
// field errors placed next to their inputs, the results funnel, and the live feed's parser.

export type MatchMode = "whole_word" | "phrase" | "prefix" | "contains" | "exact";

/** A campaign as the API (and campaign files) spell it. */
export interface CampaignSpec {
  slug: string;
  name: string;
  trigger: "comment" | "message";
  status: "active" | "paused" | "archived";
  priority: number;
  cooldown_seconds: number;
  media_ids: string[];
  starts_at: string | null;
  ends_at: string | null;
  rules: {
    keywords: string[];
    match: MatchMode;
    require: "any" | "all";
    exclude: string[];
    fold_accents: boolean;
    stretch: boolean;
  }[];
  intents: { name: string; description: string; examples: string[] }[];
  actions: {
    private_reply: string | null;
    public_replies: string[];
    dm: string | null;
    quick_replies: string[];
  };
}

/** What the editor shows: one text box per idea. */
export interface CampaignForm {
  name: string;
  slug: string;
  keywords: string;
  match: MatchMode;
  exclude: string;
  privateReply: string;
  publicReplies: string;
  quickReplies: string;
  mediaIds: string;
  priority: string;
  cooldownHours: string;
}

export const emptyForm: CampaignForm = {
  name: "",
  slug: "",
  keywords: "",
  match: "whole_word",
  exclude: "",
  privateReply: "Hi @{username}! Here you go: ",
  publicReplies: "Sent you a DM 📩",
  quickReplies: "",
  mediaIds: "",
  priority: "0",
  cooldownHours: "24",
};

const list = (text: string, sep: RegExp = /,/): string[] =>
  text
    .split(sep)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

/** A slug from a name: "Black Friday 2026!" -> "black-friday-2026". */
export function slugify(name: string): string {
  return name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64);
}

export function specFromForm(form: CampaignForm, status: CampaignSpec["status"] = "active"): CampaignSpec {
  const hours = Number(form.cooldownHours);
  return {
    slug: form.slug.trim() || slugify(form.name),
    name: form.name.trim(),
    trigger: "comment",
    status,
    priority: Number.parseInt(form.priority, 10) || 0,
    cooldown_seconds: Number.isFinite(hours) && hours > 0 ? Math.round(hours * 3600) : 0,
    media_ids: list(form.mediaIds),
    starts_at: null,
    ends_at: null,
    rules: [
      {
        keywords: list(form.keywords),
        match: form.match,
        require: "any",
        exclude: list(form.exclude),
        fold_accents: true,
        stretch: false,
      },
    ],
    intents: [],
    actions: {
      private_reply: form.privateReply.trim() ? form.privateReply : null,
      public_replies: list(form.publicReplies, /\n/),
      dm: null,
      quick_replies: list(form.quickReplies),
    },
  };
}

export function formFromSpec(spec: CampaignSpec): CampaignForm {
  const rule = spec.rules[0];
  return {
    name: spec.name,
    slug: spec.slug,
    keywords: (rule?.keywords ?? []).join(", "),
    match: rule?.match ?? "whole_word",
    exclude: (rule?.exclude ?? []).join(", "),
    privateReply: spec.actions.private_reply ?? "",
    publicReplies: spec.actions.public_replies.join("\n"),
    quickReplies: spec.actions.quick_replies.join(", "),
    mediaIds: spec.media_ids.join(", "),
    priority: String(spec.priority),
    cooldownHours: String(spec.cooldown_seconds / 3600),
  };
}

export interface FieldError {
  field: string;
  message: string;
}

/** The form input an API field error belongs to ("rules[0].keywords[2]" -> "keywords"). */
export function inputFor(field: string): keyof CampaignForm | "general" {
  const table: [RegExp, keyof CampaignForm][] = [
    [/^slug/, "slug"],
    [/^name/, "name"],
    [/^rules\[\d+\]\.keywords/, "keywords"],
    [/^rules\[\d+\]\.exclude/, "exclude"],
    [/^rules/, "keywords"],
    [/^actions\.private_reply/, "privateReply"],
    [/^actions\.public_replies/, "publicReplies"],
    [/^actions\.quick_replies/, "quickReplies"],
    [/^media_ids/, "mediaIds"],
    [/^priority/, "priority"],
    [/^cooldown_seconds/, "cooldownHours"],
  ];
  return table.find(([re]) => re.test(field))?.[1] ?? "general";
}

export function errorsByInput(errors: FieldError[]): Partial<Record<keyof CampaignForm | "general", string[]>> {
  const out: Partial<Record<keyof CampaignForm | "general", string[]>> = {};
  for (const e of errors) {
    const key = inputFor(e.field);
    (out[key] ??= []).push(e.message);
  }
  return out;
}

export interface Funnel {
  comments_seen: number;
  matched: number;
  private_replies_sent: number;
  public_replies_sent: number;
  dms_sent: number;
  buttons_tapped: number;
}

export interface FunnelStep {
  label: string;
  value: number;
  /** Share of the first step, 0..100, rounded. */
  percent: number;
}

export function funnelSteps(f: Funnel): FunnelStep[] {
  const steps: [string, number][] = [
    ["Comments seen", f.comments_seen],
    ["Matched", f.matched],
    ["Private replies sent", f.private_replies_sent],
    ["DMs sent", f.dms_sent],
    ["Buttons tapped", f.buttons_tapped],
  ];
  const top = Math.max(f.comments_seen, f.matched, 1);
  return steps.map(([label, value]) => ({ label, value, percent: Math.round((value / top) * 100) }));
}

/** Server-sent events from a fetch body: complete blocks parsed, the rest kept for later. */
export function parseSse(buffer: string): { events: { event: string; data: string }[]; rest: string } {
  const blocks = buffer.split("\n\n");
  const rest = blocks.pop() ?? "";
  const events = blocks
    .map((block) => {
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      return { event, data: data.join("\n") };
    })
    .filter((e) => e.data.length > 0);
  return { events, rest };
}

export interface FeedEntry {
  id: number;
  at: string;
  ig_user_id: string;
  event_kind: string;
  step: string;
  outcome: string;
  detail: string | null;
  campaign_slug: string | null;
  contact_igsid: string | null;
  contact_username: string | null;
  excerpt: string | null;
}

/** Who wrote it and what, on one short line: `@ana: "any deal on these?"`. */
/** The feed after `fresh` entries arrived (oldest first): newest first, each row once with its
 * latest state. A row is notified on insert and again on update, and both may arrive in one
 * chunk of the stream. */
export function mergeFeed(old: FeedEntry[], fresh: FeedEntry[], max = 200): FeedEntry[] {
  const latest = new Map<number, FeedEntry>();
  for (const e of fresh) latest.set(e.id, e);
  return [...[...latest.values()].reverse(), ...old.filter((o) => !latest.has(o.id))].slice(0, max);
}

export function quoteEntry(e: FeedEntry, max = 80): string {
  const who = e.contact_username ? `@${e.contact_username}` : e.contact_igsid;
  if (!e.excerpt) return who ?? "";
  const chars = [...e.excerpt];
  const text = chars.length > max ? `${chars.slice(0, max - 1).join("")}…` : e.excerpt;
  return who ? `${who}: “${text}”` : `“${text}”`;
}

/** One line a marketer reads: what happened and why. */
export function describeEntry(e: FeedEntry): { title: string; reason: string; tone: "good" | "bad" | "neutral" } {
  const step = e.step.replace(/_/g, " ");
  const campaign = e.campaign_slug ? ` · ${e.campaign_slug}` : "";
  if (e.step === "decision") {
    const tone = e.outcome === "matched" ? "good" : "neutral";
    return { title: `${e.event_kind} ${e.outcome.replace(/_/g, " ")}${campaign}`, reason: e.detail ?? "", tone };
  }
  const tone = e.outcome === "sent" || e.outcome === "already_done" ? "good" : e.outcome === "pending" || e.outcome === "claimed" ? "neutral" : "bad";
  return { title: `${step} ${e.outcome.replace(/_/g, " ")}${campaign}`, reason: e.detail ?? "", tone };
}

export interface Bucket { at: string; matched: number; sent: number }

/** Every hour (or day) of the period, zero where nothing happened, so the chart is a timeline. */
export function fillBuckets(series: Bucket[], from: string, to: string, bucket: "hour" | "day"): Bucket[] {
  const step = bucket === "hour" ? 3600_000 : 86_400_000;
  const start = Math.floor(Date.parse(from) / step) * step;
  const end = Date.parse(to);
  const byTime = new Map(series.map((b) => [Date.parse(b.at), b]));
  const out: Bucket[] = [];
  for (let t = start; t < end && out.length < 400; t += step) {
    const found = byTime.get(t);
    out.push({ at: new Date(t).toISOString(), matched: found?.matched ?? 0, sent: found?.sent ?? 0 });
  }
  return out;
}
