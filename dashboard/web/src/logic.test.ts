import { describe, expect, it } from "vitest";
import {
  conditionKey,
  conditionOf,
  describeEntry,
  emptyStep,
  emptyForm,
  errorsByInput,
  fillBuckets,
  formFromSpec,
  formToStep,
  funnelSteps,
  groupVariants,
  inputFor,
  mergeFeed,
  nextPostStatus,
  followFeed,
  passwordProblem,
  reloadDelay,
  parseSse,
  quoteEntry,
  shows,
  slugify,
  specFromForm,
  stepToForm,
  testerBody,
} from "./logic";

describe("campaign form", () => {
  it("turns the form into the API's campaign and back", () => {
    const form = {
      ...emptyForm,
      name: "Black Friday",
      keywords: "deal, sale ,  ",
      publicReplies: "Check your DMs\n\nSent!",
      quickReplies: "Shop now, Later",
      cooldownHours: "1.5",
    };
    const spec = specFromForm(form);
    expect(spec.slug).toBe("black-friday");
    expect(spec.rules[0].keywords).toEqual(["deal", "sale"]);
    expect(spec.actions.public_replies).toEqual(["Check your DMs", "Sent!"]);
    expect(spec.actions.quick_replies).toEqual(["Shop now", "Later"]);
    expect(spec.cooldown_seconds).toBe(5400);
    const back = formFromSpec(spec);
    expect(back.keywords).toBe("deal, sale");
    expect(specFromForm(back)).toEqual(spec);
  });

  it("sends only what the chosen trigger uses, and keeps the trigger on edit", () => {
    const form = {
      ...emptyForm,
      name: "Bio link",
      trigger: "referral" as const,
      keywords: "left from comment",
      refs: "bio, story-link",
      adIds: "120210000000000001",
      dm: "Welcome!",
    };
    const spec = specFromForm(form);
    expect(spec.trigger).toBe("referral");
    expect(spec.rules).toEqual([]);
    expect(spec.refs).toEqual(["bio", "story-link"]);
    expect(spec.ad_ids).toEqual(["120210000000000001"]);
    expect(spec.actions).toEqual({ private_reply: null, public_replies: [], dm: "Welcome!", quick_replies: [], buttons: [], public_reply_when: "private_reply_sent" });
    expect(specFromForm(formFromSpec(spec))).toEqual(spec);
    // A story reply campaign without keywords answers every reply; with them, only those.
    const story = specFromForm({ ...emptyForm, name: "Story", trigger: "story_reply", keywords: "", dm: "Thanks" });
    expect(story.rules).toEqual([]);
    expect(specFromForm({ ...emptyForm, name: "Story", trigger: "story_reply", keywords: "win", dm: "Thanks" }).rules[0].keywords).toEqual(["win"]);
    expect(shows("postback", "payloads")).toBe(true);
    // Comments may post their public reply whatever became of the DM; the default waits for it.
    expect(specFromForm({ ...emptyForm, name: "C", keywords: "x" }).actions.public_reply_when).toBe("private_reply_sent");
    const always = specFromForm({ ...emptyForm, name: "C", keywords: "x", publicFollowsPrivate: false });
    expect(always.actions.public_reply_when).toBe("always");
    expect(formFromSpec(always).publicFollowsPrivate).toBe(false);
    // Variants of a DM in one box, one per "---" line; one text stays a string.
    const variants = specFromForm({ ...emptyForm, name: "C", keywords: "x", privateReply: "Hi!\nHere you go\n---\nHello!\n --- \n" });
    expect(variants.actions.private_reply).toEqual(["Hi!\nHere you go", "Hello!"]);
    expect(specFromForm(formFromSpec(variants))).toEqual(variants);
    expect(specFromForm({ ...emptyForm, name: "C", keywords: "x", privateReply: " Hi! " }).actions.private_reply).toBe("Hi!");
    // Buttons and steps: what the editor holds becomes the API's flow, and back.
    const withFlow = specFromForm({
      ...emptyForm,
      name: "C",
      keywords: "x",
      buttons: [{ title: "Send me the link", step: "link" }],
      steps: [
        { ...emptyStep(1), name: "link", dm: "Here it is\n---\nThere you go", followGate: { not_following: "Follow us first" } },
        { ...emptyStep(2), name: "email", dm: "Your email?", quickReplies: "Not now", capture: { field: "email", invalid: "Again?", next: "link" } },
      ],
    });
    expect(withFlow.actions.buttons).toEqual([{ title: "Send me the link", step: "link" }]);
    expect(withFlow.steps).toEqual([
      { name: "link", dm: ["Here it is", "There you go"], buttons: [], follow_gate: { not_following: "Follow us first" } },
      { name: "email", dm: "Your email?", buttons: [], quick_replies: ["Not now"], capture: { field: "email", invalid: "Again?", next: "link" } },
    ]);
    expect(specFromForm(formFromSpec(withFlow))).toEqual(withFlow);
    const shadow = specFromForm({ ...emptyForm, name: "C", keywords: "x", shadow: true });
    expect(shadow.shadow).toBe(true);
    expect(formFromSpec(shadow).shadow).toBe(true);
    expect(shows("comment", "dm")).toBe(false);
  });

  it("keeps a step's condition and where it leads otherwise", () => {
    const step = { ...emptyStep(1), name: "sent", dm: "Sent!", onlyIf: "known:email", otherwise: "ask" };
    expect(formToStep(step)).toEqual({ name: "sent", dm: "Sent!", buttons: [], only_if: { known: "email" }, otherwise: "ask" });
    expect(stepToForm(formToStep(step))).toEqual(step);
    expect(formToStep({ ...step, onlyIf: "" })).toEqual({ name: "sent", dm: "Sent!", buttons: [] });
    expect(conditionOf(conditionKey({ unknown: "phone" }))).toEqual({ unknown: "phone" });
    expect(conditionOf("known:fax")).toBeUndefined();
  });

  it("listens on the next post instead of given posts, for comments only", () => {
    const next = specFromForm({ ...emptyForm, name: "Drop", keywords: "price", mediaIds: "1790", nextPost: true });
    expect(next.next_post).toBe(true);
    expect(next.media_ids).toEqual([]);
    expect(formFromSpec(next).nextPost).toBe(true);
    const story = specFromForm({ ...emptyForm, name: "S", trigger: "story_reply", dm: "Hi", nextPost: true });
    expect(story.next_post).toBe(false);
    expect(inputFor("next_post")).toBe("nextPost");
    expect(nextPostStatus(null)).toMatch(/^Waiting for your next post/);
    expect(nextPostStatus("1790")).toBe("Listening on post 1790, the first you published after saving.");
  });

  it("asks the tester what the person did", () => {
    expect(testerBody("a1", "comment", "price?")).toEqual({ account_id: "a1", trigger: "comment", text: "price?" });
    expect(testerBody("a1", "postback", "PRICES")).toEqual({ account_id: "a1", trigger: "postback", payload: "PRICES" });
    expect(testerBody("a1", "referral", "bio")).toEqual({ account_id: "a1", trigger: "referral", ref: "bio" });
    expect(testerBody("a1", "story_mention", "ignored")).toEqual({ account_id: "a1", trigger: "story_mention" });
  });

  it("makes slugs the validator accepts", () => {
    expect(slugify("Été Promo 2026 — Réels!")).toBe("ete-promo-2026-reels");
  });

  it("puts the API's field errors next to their inputs", () => {
    const byInput = errorsByInput([
      { field: "rules[0].keywords", message: "must list at least one keyword" },
      { field: "rules[0].keywords[1]", message: "\"!!\" has no letters" },
      { field: "actions.private_reply", message: "is 1001 bytes" },
      { field: "actions", message: "set private_reply, public_replies or both" },
    ]);
    expect(byInput.keywords).toHaveLength(2);
    expect(byInput.privateReply).toEqual(["is 1001 bytes"]);
    expect(byInput.general).toEqual(["set private_reply, public_replies or both"]);
  });
});

describe("results", () => {
  it("shows each step as a share of the comments seen", () => {
    const steps = funnelSteps({
      seen: 200,
      matched: 50,
      private_replies_sent: 48,
      public_replies_sent: 45,
      dms_sent: 0,
      buttons_tapped: 12,
    });
    expect(steps.map((s) => s.percent)).toEqual([100, 25, 24, 0, 6]);
    const none = { seen: 0, matched: 0, private_replies_sent: 0, public_replies_sent: 0, dms_sent: 0, buttons_tapped: 0 };
    expect(funnelSteps(none)[0].percent).toBe(0);
    // A messaging campaign counts the DMs seen, and has no private replies.
    expect(funnelSteps(none, "referral").map((s) => s.label)).toEqual(["Messages seen", "Matched", "DMs sent", "Buttons tapped"]);
  });
});

describe("live feed", () => {
  it("parses complete server-sent events and keeps the rest", () => {
    const { events, rest } = parseSse('event: activity\ndata: {"id":1}\nid: 1\n\n: keep-alive\n\nevent: activity\ndata: {"id"');
    expect(events).toEqual([{ event: "activity", data: '{"id":1}' }]);
    expect(rest).toBe('event: activity\ndata: {"id"');
  });

  it("says what happened and why", () => {
    const sent = describeEntry({
      id: 1, at: "", ig_user_id: "1", event_kind: "comment", step: "private_reply", outcome: "sent",
      detail: null, campaign_slug: "price-list", contact_igsid: "9", contact_username: null, excerpt: null,
    });
    expect(sent).toMatchObject({ title: "private reply sent · price-list", tone: "good" });
    const skipped = describeEntry({
      id: 2, at: "", ig_user_id: "1", event_kind: "comment", step: "private_reply", outcome: "skipped",
      detail: "cooldown: one DM per 3600 s", campaign_slug: null, contact_igsid: "9", contact_username: null, excerpt: null,
    });
    expect(skipped.tone).toBe("bad");
    expect(skipped.reason).toContain("cooldown");
    const shadow = describeEntry({
      id: 3, at: "", ig_user_id: "1", event_kind: "comment", step: "private_reply", outcome: "shadow",
      detail: "shadow mode, not sent: Hi!", campaign_slug: "trial", contact_igsid: "9", contact_username: null, excerpt: null,
    });
    expect(shadow).toMatchObject({ title: "private reply not sent (shadow) · trial", tone: "neutral" });
  });
});

describe("followFeed", () => {
  const at = (s: number) => `2026-12-07T14:00:0${s}.000Z`;
  const entry = (id: number, s: number) =>
    ({ id, at: at(s), ig_user_id: "1", event_kind: "comment", step: "decision", outcome: "matched",
       detail: null, campaign_id: null, campaign_slug: null, contact_igsid: null, contact_username: null, excerpt: null });

  it("resumes each stream from the newest change seen, and backs off after failures", async () => {
    const abort = new AbortController();
    const opened: (string | undefined)[] = [];
    const waits: number[] = [];
    const seen: number[] = [];
    const streams = [
      [entry(2, 3), entry(1, 5)],
      "network down",
      "network down",
      [entry(3, 7)],
    ];
    await followFeed(
      async (since, onEntries) => {
        opened.push(since);
        const next = streams.shift();
        if (next === undefined) { abort.abort(); return; }
        if (typeof next === "string") throw new Error(next);
        onEntries(next);
      },
      (entries) => seen.push(...entries.map((e) => e.id)),
      abort.signal,
      async (ms) => { waits.push(ms); },
    );
    expect(opened).toEqual([undefined, at(5), at(5), at(5), at(7)]);
    expect(waits).toEqual([500, 1000, 2000, 500]);
    expect(seen).toEqual([2, 1, 3]);
  });

  it("stops when the sign-in is refused", async () => {
    let opens = 0;
    await followFeed(
      async () => { opens += 1; throw Object.assign(new Error("expired"), { status: 401 }); },
      () => undefined,
      new AbortController().signal,
      async () => undefined,
    );
    expect(opens).toBe(1);
  });
});

describe("variants", () => {
  it("groups each text's variants with their share", () => {
    const groups = groupVariants([
      { step: "public_reply", variant: 0, text: "Check your DMs", count: 3 },
      { step: "private_reply", variant: 1, text: "B", count: 1 },
      { step: "private_reply", variant: 0, text: "A", count: 3 },
    ]);
    expect(groups.map((g) => g.title)).toEqual(["Private reply variants", "Public reply variants"]);
    expect(groups[0].variants.map((v) => v.share)).toEqual([25, 75]);
  });
});

describe("chart", () => {
  it("fills the period's empty hours with zeros", () => {
    const filled = fillBuckets(
      [{ at: "2026-11-29T10:00:00Z", matched: 3, sent: 2 }],
      "2026-11-29T08:30:00Z",
      "2026-11-29T11:10:00Z",
      "hour",
    );
    expect(filled.map((b) => b.sent)).toEqual([0, 0, 2, 0]);
    expect(filled[2].at).toBe("2026-11-29T10:00:00.000Z");
  });

  it("quotes the comment and its author, cut to fit", () => {
    const base = {
      id: 3, at: "", ig_user_id: "1", event_kind: "comment", step: "decision", outcome: "matched",
      detail: null, campaign_slug: "bf", contact_igsid: "5550001", contact_username: "ana", excerpt: "Any DEAL? 😍",
    };
    expect(quoteEntry(base)).toBe("@ana: “Any DEAL? 😍”");
    expect(quoteEntry({ ...base, contact_username: null })).toBe("5550001: “Any DEAL? 😍”");
    expect(quoteEntry({ ...base, excerpt: "😍".repeat(100) }, 10)).toBe(`@ana: “${"😍".repeat(9)}…”`);
    expect(quoteEntry({ ...base, excerpt: null })).toBe("@ana");
  });
});

describe("mergeFeed", () => {
  const entry = (id: number, outcome: string) =>
    ({ id, at: "2026-11-30T00:00:00.000Z", ig_user_id: "1", event_kind: "comment", step: "private_reply", outcome,
       detail: null, campaign_id: null, campaign_slug: "bf", contact_igsid: null, contact_username: null, excerpt: null });
  it("keeps one row per id, in its latest state, newest first", () => {
    const old = [entry(1, "sent")];
    const merged = mergeFeed(old, [entry(2, "pending"), entry(3, "pending"), entry(2, "sent")]);
    expect(merged.map((e) => [e.id, e.outcome])).toEqual([[3, "pending"], [2, "sent"], [1, "sent"]]);
    expect(mergeFeed(merged, [entry(3, "sent")]).map((e) => [e.id, e.outcome])).toEqual([[3, "sent"], [2, "sent"], [1, "sent"]]);
  });
});

describe("passwordProblem", () => {
  it("wants 8 characters, typed the same twice", () => {
    expect(passwordProblem("short", "short")).toBe("Use at least 8 characters.");
    expect(passwordProblem("long enough", "long enougH")).toBe("The two passwords differ.");
    expect(passwordProblem("🔑🔑🔑🔑🔑🔑🔑🔑", "🔑🔑🔑🔑🔑🔑🔑🔑")).toBeNull();
  });
});

describe("reloadDelay", () => {
  it("reloads at once when the last reload is old, else when it is due", () => {
    expect(reloadDelay(0, 10_000)).toBe(0);
    expect(reloadDelay(9_000, 10_000)).toBe(2_000);
    expect(reloadDelay(10_000, 10_000, 5_000)).toBe(5_000);
  });
});
