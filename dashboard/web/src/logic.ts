// Logic of the dashboard that is not drawing: the campaign form <-> the API's campaign shape,
// field errors placed next to their inputs, the results funnel, and the live feed's parser.

export type MatchMode = "whole_word" | "phrase" | "prefix" | "contains" | "exact";

export type Trigger = "comment" | "message" | "story_mention" | "story_reply" | "postback" | "referral";

/** What each trigger means to a marketer, and which inputs it uses. */
export const triggers: { value: Trigger; label: string; uses: (keyof CampaignForm)[] }[] = [
  { value: "comment", label: "comments on a post or reel", uses: ["keywords", "match", "exclude", "mediaIds", "nextPost", "privateReply", "publicReplies"] },
  { value: "message", label: "sends a DM", uses: ["keywords", "match", "exclude", "dm"] },
  { value: "story_mention", label: "mentions you in their story", uses: ["dm"] },
  { value: "story_reply", label: "replies to your story", uses: ["keywords", "match", "exclude", "mediaIds", "dm"] },
  { value: "postback", label: "taps a button", uses: ["payloads", "dm"] },
  { value: "referral", label: "arrives from a link or ad", uses: ["refs", "adIds", "dm"] },
];

/** Whether the form shows `input` for `trigger`. */
export function shows(trigger: Trigger, input: keyof CampaignForm): boolean {
  return triggers.find((t) => t.value === trigger)?.uses.includes(input) ?? false;
}

/** A campaign as the API (and campaign files) spell it. */
export interface CampaignSpec {
  slug: string;
  name: string;
  trigger: Trigger;
  status: "active" | "paused" | "archived";
  priority: number;
  cooldown_seconds: number;
  shadow: boolean;
  media_ids: string[];
  /** Comments on the first post published after the campaign is saved. */
  next_post?: boolean;
  payloads: string[];
  refs: string[];
  ad_ids: string[];
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
    /** One text, or variants (one is chosen per event and recorded). */
    private_reply: Texts;
    public_replies: string[];
    dm: Texts;
    quick_replies: string[];
    buttons: Button[];
    public_reply_when: "private_reply_sent" | "always";
  };
  steps: Step[];
}

/** A template button: a tap leads to a step of the flow, or opens a URL. */
export interface Button { title: string; step?: string; url?: string }
export interface FollowGate { not_following: string; retry_title?: string; max_retries?: number }
export interface Capture {
  field: "email" | "phone";
  invalid: string;
  next?: string;
  thanks?: string;
  max_attempts?: number;
  skip_if_known?: boolean;
}
export interface Step {
  name: string;
  dm: Texts;
  buttons: Button[];
  quick_replies?: string[];
  follow_gate?: FollowGate;
  capture?: Capture;
  only_if?: Condition;
  otherwise?: string;
}

/** What a step asks of the person before it goes out. */
export type Condition = { known: "email" | "phone" } | { unknown: "email" | "phone" };

/** A condition as the editor's select holds it: "", "known:email", "unknown:phone"… */
export function conditionKey(condition: Condition | undefined): string {
  if (!condition) return "";
  return "known" in condition ? `known:${condition.known}` : `unknown:${condition.unknown}`;
}

export function conditionOf(key: string): Condition | undefined {
  const [how, field] = key.split(":");
  if ((field !== "email" && field !== "phone") || (how !== "known" && how !== "unknown")) return undefined;
  return how === "known" ? { known: field } : { unknown: field };
}

/** A step as the editor shows it: its message in one text box (variants split by ---). */
export interface StepForm {
  name: string;
  dm: string;
  buttons: Button[];
  quickReplies: string;
  followGate: FollowGate | null;
  capture: Capture | null;
  /** `conditionKey` of the step's condition; "" for none. */
  onlyIf: string;
  /** The step sent instead when the condition does not hold; "" for nothing. */
  otherwise: string;
}

export const emptyStep = (n: number): StepForm => ({
  name: `step-${n}`,
  dm: "",
  buttons: [],
  quickReplies: "",
  followGate: null,
  capture: null,
  onlyIf: "",
  otherwise: "",
});

export function stepToForm(step: Step): StepForm {
  return {
    name: step.name,
    dm: textsToBox(step.dm),
    buttons: step.buttons ?? [],
    quickReplies: (step.quick_replies ?? []).join(", "),
    followGate: step.follow_gate ?? null,
    capture: step.capture ?? null,
    onlyIf: conditionKey(step.only_if),
    otherwise: step.otherwise ?? "",
  };
}

export function formToStep(form: StepForm): Step {
  const step: Step = { name: form.name.trim(), dm: boxToTexts(form.dm), buttons: form.buttons };
  const quick = list(form.quickReplies);
  if (quick.length > 0) step.quick_replies = quick;
  if (form.followGate) step.follow_gate = form.followGate;
  if (form.capture) step.capture = form.capture;
  const condition = conditionOf(form.onlyIf);
  if (condition) {
    step.only_if = condition;
    if (form.otherwise) step.otherwise = form.otherwise;
  }
  return step;
}

export type Texts = string | string[] | null;

/** Variants in one text box, separated by a line holding only "---". */
const VARIANT_SEPARATOR = /^\s*---\s*$/m;

export function textsToBox(texts: Texts): string {
  if (texts === null) return "";
  return typeof texts === "string" ? texts : texts.join("\n---\n");
}

export function boxToTexts(box: string): Texts {
  const variants = box
    .split(VARIANT_SEPARATOR)
    .map((t) => t.trim())
    .filter((t) => t.length > 0);
  if (variants.length === 0) return null;
  return variants.length === 1 ? variants[0] : variants;
}

/** What the editor shows: one text box per idea. */
export interface CampaignForm {
  name: string;
  slug: string;
  trigger: Trigger;
  keywords: string;
  match: MatchMode;
  exclude: string;
  privateReply: string;
  publicReplies: string;
  /** Post the public reply only once the private reply went out. */
  publicFollowsPrivate: boolean;
  dm: string;
  quickReplies: string;
  mediaIds: string;
  /** Listen on the next post published instead of on `mediaIds`. */
  nextPost: boolean;
  payloads: string;
  refs: string;
  adIds: string;
  priority: string;
  cooldownHours: string;
  /** Record what would be sent; send nothing. */
  shadow: boolean;
  /** Template buttons under the private reply or DM, and the flow's steps. */
  buttons: Button[];
  steps: StepForm[];
}

export const emptyForm: CampaignForm = {
  name: "",
  slug: "",
  trigger: "comment",
  keywords: "",
  match: "whole_word",
  exclude: "",
  privateReply: "Hi @{username}! Here you go: ",
  publicReplies: "Sent you a DM 📩",
  publicFollowsPrivate: true,
  dm: "",
  quickReplies: "",
  mediaIds: "",
  nextPost: false,
  payloads: "",
  refs: "",
  adIds: "",
  priority: "0",
  cooldownHours: "24",
  shadow: false,
  buttons: [],
  steps: [],
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
  // Only what the trigger uses is sent: a field left from another trigger is not an error.
  const used = (input: keyof CampaignForm, value: string, sep: RegExp = /,/) => (shows(form.trigger, input) ? list(value, sep) : []);
  const text = (input: keyof CampaignForm, value: string) => (shows(form.trigger, input) ? boxToTexts(value) : null);
  const keywords = used("keywords", form.keywords);
  const nextPost = shows(form.trigger, "nextPost") && form.nextPost;
  const buttons = form.buttons;
  const steps = form.steps.map(formToStep);
  return {
    slug: form.slug.trim() || slugify(form.name),
    name: form.name.trim(),
    trigger: form.trigger,
    status,
    priority: Number.parseInt(form.priority, 10) || 0,
    cooldown_seconds: Number.isFinite(hours) && hours > 0 ? Math.round(hours * 3600) : 0,
    shadow: form.shadow,
    media_ids: nextPost ? [] : used("mediaIds", form.mediaIds),
    next_post: nextPost,
    payloads: used("payloads", form.payloads),
    refs: used("refs", form.refs),
    ad_ids: used("adIds", form.adIds),
    starts_at: null,
    ends_at: null,
    // Keywords are optional for story replies (none: any reply) and required elsewhere.
    rules:
      keywords.length > 0 || form.trigger === "comment" || form.trigger === "message"
        ? [{ keywords, match: form.match, require: "any", exclude: list(form.exclude), fold_accents: true, stretch: false }]
        : [],
    intents: [],
    steps,
    actions: {
      private_reply: text("privateReply", form.privateReply),
      public_replies: used("publicReplies", form.publicReplies, /\n/),
      dm: text("dm", form.dm),
      quick_replies: list(form.quickReplies),
      buttons,
      public_reply_when: form.publicFollowsPrivate || form.trigger !== "comment" ? "private_reply_sent" : "always",
    },
  };
}

export function formFromSpec(spec: CampaignSpec): CampaignForm {
  const rule = spec.rules[0];
  return {
    name: spec.name,
    slug: spec.slug,
    trigger: spec.trigger,
    keywords: (rule?.keywords ?? []).join(", "),
    match: rule?.match ?? "whole_word",
    exclude: (rule?.exclude ?? []).join(", "),
    privateReply: textsToBox(spec.actions.private_reply),
    publicReplies: spec.actions.public_replies.join("\n"),
    publicFollowsPrivate: spec.actions.public_reply_when !== "always",
    dm: textsToBox(spec.actions.dm),
    quickReplies: spec.actions.quick_replies.join(", "),
    mediaIds: spec.media_ids.join(", "),
    nextPost: spec.next_post ?? false,
    payloads: (spec.payloads ?? []).join(", "),
    refs: (spec.refs ?? []).join(", "),
    adIds: (spec.ad_ids ?? []).join(", "),
    priority: String(spec.priority),
    cooldownHours: String(spec.cooldown_seconds / 3600),
    shadow: spec.shadow ?? false,
    buttons: spec.actions.buttons ?? [],
    steps: (spec.steps ?? []).map(stepToForm),
  };
}

/** Where a "next post" campaign stands: the post it found, or that it waits for one. Meta
 * says nothing when a post is published: the first comment on it tells the worker. */
export function nextPostStatus(found: string | null): string {
  return found
    ? `Listening on post ${found}, the first you published after saving.`
    : "Waiting for your next post: comments on the first post or reel you publish after saving get these answers.";
}

/** The tester's request: what the person did, with the one value the box holds for it. */
export function testerBody(accountId: string, trigger: Trigger, value: string): Record<string, string> {
  const body: Record<string, string> = { account_id: accountId, trigger };
  const key = { postback: "payload", referral: "ref", story_mention: "" }[trigger as string] ?? "text";
  if (key) body[key] = value;
  return body;
}

/** What the tester's box asks for, per trigger. */
export function testerPrompt(trigger: Trigger): string {
  switch (trigger) {
    case "postback": return "the button's payload, e.g. PRICES";
    case "referral": return "the link's ref, e.g. bio";
    case "story_mention": return "(a story mention has no text)";
    case "story_reply": return "a reply to your story";
    case "message": return "a DM, e.g. do you ship to Spain?";
    default: return "how much is this? 😍";
  }
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
    [/^actions\.public_repl/, "publicReplies"],
    [/^actions\.quick_replies/, "quickReplies"],
    [/^actions\.dm/, "dm"],
    [/^actions\.buttons/, "buttons"],
    [/^steps/, "steps"],
    [/^media_ids/, "mediaIds"],
    [/^next_post/, "nextPost"],
    [/^payloads/, "payloads"],
    [/^refs/, "refs"],
    [/^ad_ids/, "adIds"],
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
  seen: number;
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

export function funnelSteps(f: Funnel, trigger: Trigger = "comment"): FunnelStep[] {
  const comments = trigger === "comment";
  const steps: [string, number][] = [
    [comments ? "Comments seen" : "Messages seen", f.seen],
    ["Matched", f.matched],
    ...(comments ? [["Private replies sent", f.private_replies_sent] as [string, number]] : []),
    ["DMs sent", f.dms_sent],
    ["Buttons tapped", f.buttons_tapped],
  ];
  const top = Math.max(f.seen, f.matched, 1);
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

/** Opens one feed stream from `since`, handing over its entries as they come; resolves when
 * the server ends the stream. */
export type FeedStream = (since: string | undefined, onEntries: (entries: FeedEntry[]) => void) => Promise<void>;

/** Follows the live feed across streams: each ends after its lifetime (or a dropped
 * connection) and the next resumes from the newest change seen. Failures back off (1 s
 * doubling to 30 s); a refused sign-in (401) ends it. */
export async function followFeed(
  open: FeedStream,
  onEntries: (entries: FeedEntry[]) => void,
  signal: AbortSignal,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
): Promise<void> {
  let since: string | undefined;
  let failures = 0;
  while (!signal.aborted) {
    try {
      await open(since, (entries) => {
        for (const e of entries) if (!since || e.at > since) since = e.at;
        onEntries(entries);
      });
      failures = 0;
    } catch (e) {
      if ((e as { status?: number }).status === 401) return;
      failures += 1;
    }
    if (signal.aborted) return;
    await sleep(failures ? Math.min(30_000, 1000 * 2 ** (failures - 1)) : 500);
  }
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
  if (e.outcome === "shadow") return { title: `${step} not sent (shadow)${campaign}`, reason: e.detail ?? "", tone: "neutral" };
  const tone = e.outcome === "sent" || e.outcome === "already_done" ? "good" : e.outcome === "pending" || e.outcome === "claimed" ? "neutral" : "bad";
  return { title: `${step} ${e.outcome.replace(/_/g, " ")}${campaign}`, reason: e.detail ?? "", tone };
}

export interface VariantCount { step: string; variant: number; text: string | null; count: number }

/** The results' variants by text (private reply, public reply, DM), each with its share. */
export function groupVariants(variants: VariantCount[]): { step: string; title: string; variants: (VariantCount & { share: number })[] }[] {
  const titles: Record<string, string> = { private_reply: "Private reply variants", public_reply: "Public reply variants", dm: "DM variants" };
  return Object.keys(titles)
    .map((step) => {
      const mine = variants.filter((v) => v.step === step);
      const total = mine.reduce((n, v) => n + v.count, 0);
      return { step, title: titles[step], variants: mine.map((v) => ({ ...v, share: total ? Math.round((v.count / total) * 100) : 0 })) };
    })
    .filter((g) => g.variants.length > 0);
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

/** What is wrong with a chosen password, or null: at least 8 characters (Supabase's own
 * minimum is 6), typed the same twice. */
export function passwordProblem(password: string, again: string): string | null {
  if ([...password].length < 8) return "Use at least 8 characters.";
  if (password !== again) return "The two passwords differ.";
  return null;
}

/** How long to wait before reloading the results after live activity: at once if the last
 * reload is `every` ms old, else when it will be (a throttle: a busy feed reloads every
 * `every` ms, never on each entry). */
export function reloadDelay(lastMs: number, nowMs: number, every = 3000): number {
  return Math.max(0, lastMs + every - nowMs);
}
