// The marketer's journey through the dashboard, in Debian's Chromium driven by Playwright.
// Run by tests/tests/dashboard_browser.rs, which starts the fleet and passes its addresses.
import { env, run } from "./browser.mjs";

const base = env("DASHBOARD_URL");

await run(async ({ page, shot, step }) => {
  step("sign in");
  await page.goto(`${base}/`);
  await page.getByLabel("Work e-mail").fill(env("SIGN_IN_EMAIL"));
  await shot("01-sign-in");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Campaigns" }).waitFor();

  step("connect an account through Instagram's OAuth dialog (the test server consents)");
  await page.getByRole("link", { name: "Accounts" }).click();
  await page.getByRole("button", { name: "Connect an Instagram account" }).click();
  await page.getByText("@acme.outlet is connected").waitFor();
  await page.getByRole("heading", { name: "@acme.outlet" }).waitFor();
  await page.getByText("The token could not be renewed").waitFor();
  await shot("02-accounts");

  step("create a campaign, first with a mistake shown next to its field");
  await page.getByRole("link", { name: "Campaigns" }).click();
  await page.getByRole("button", { name: "New campaign" }).click();
  await page.locator("select").first().selectOption({ label: "@acme.outlet" });
  await page.locator('input[name="name"]').fill("Black Friday");
  await page.locator('textarea[name="privateReply"]').fill("Hi {username}! 30% off everything today: https://shop.example/bf");
  await page.locator('textarea[name="publicReplies"]').fill("Check your DMs 📩\nSent you the link!");
  await page.locator('input[name="quickReplies"]').fill("Shop now, Sizes");
  await page.getByRole("button", { name: "Create campaign" }).click();
  await page.getByText("must list at least one keyword").waitFor();
  await page.locator('input[name="keywords"]').fill("deal, black friday");
  await page.getByRole("button", { name: "Create campaign" }).click();
  await page.getByRole("heading", { name: "Black Friday" }).waitFor();

  step("test a keyword");
  await page.getByLabel("Test comment").fill("any deal on these? 😍");
  await page.getByRole("button", { name: "Test", exact: true }).click();
  await page.getByTestId("tester-result").getByText("black-friday").waitFor();
  await page.getByTestId("tester-result").getByText("30% off everything").waitFor();
  await shot("03-campaign-and-tester");
  const campaignUrl = page.url();

  step("a follower comments: a signed delivery to the local webhook");
  await page.getByRole("link", { name: "Live activity" }).click();
  const delivered = await fetch(env("WEBHOOK_URL"), {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": env("COMMENT_SIGNATURE") },
    body: env("COMMENT_BODY"),
  });
  if (delivered.status !== 200) throw new Error(`the webhook answered ${delivered.status}`);
  await page.getByTestId("feed").getByText("private reply sent · black-friday").waitFor({ timeout: 60_000 });
  await page.getByTestId("feed").getByText("comment matched · black-friday").waitFor();
  await page.getByTestId("feed").getByText("@user5550001: “Any DEAL on these? 😍”").first().waitFor();
  await shot("04-live-activity");

  step("results count it");
  await page.goto(campaignUrl);
  await page.getByTestId("funnel-Private replies sent").getByText("1", { exact: true }).waitFor();
  await page.getByTestId("funnel-Matched").getByText("1", { exact: true }).waitFor();
  await page.getByText("Public reply variants").waitFor();
  await page.getByTestId("results").scrollIntoViewIfNeeded();
  await shot("05-results");

  step("opt-outs and members");
  await page.getByRole("link", { name: "Opt-outs" }).click();
  await page.getByLabel("Show everyone").check();
  await page.getByText("@user5550001").waitFor();
  await shot("06-opt-outs");
  await page.getByRole("link", { name: "Members" }).click();
  await page.getByLabel("Invite e-mail").fill("sam@acme.test");
  await page.getByRole("button", { name: "Invite" }).click();
  await page.getByText("sam@acme.test").waitFor();
  await shot("07-members");

  step("a campaign for the link in bio: its own trigger, fields and tester");
  await page.getByRole("link", { name: "Campaigns" }).click();
  await page.getByRole("button", { name: "New campaign" }).click();
  await page.locator("select").first().selectOption({ label: "@acme.outlet" });
  await page.locator('input[name="name"]').fill("Link in bio");
  await page.locator('select[name="trigger"]').selectOption({ label: "arrives from a link or ad" });
  if (await page.locator('textarea[name="privateReply"]').count()) throw new Error("a link campaign shows the private reply");
  await page.locator('input[name="refs"]').fill("bio");
  await page.locator('textarea[name="dm"]').fill("Welcome! Here is 10% off your first order: BIO10");
  // A flow: a button under the DM leading to a step for followers only.
  await page.getByRole("button", { name: "Add a step" }).click();
  await page.getByLabel("step 1 name").fill("deals");
  await page.getByLabel("step 1 message").fill("This week: 20% off with LAUNCH20");
  await page.getByLabel("step 1 followers only").check();
  await page.getByLabel("step 1 only if").selectOption({ label: "email on record" });
  await page.getByLabel("step 1 otherwise").waitFor();
  await page.getByTestId("buttons").getByRole("button", { name: "Add a button" }).click();
  await page.getByLabel("buttons 1 title").fill("See the deals");
  await page.getByRole("button", { name: "Create campaign" }).click();
  await page.getByRole("heading", { name: "Link in bio" }).waitFor();
  await page.getByLabel("Test comment").fill("bio");
  await page.getByRole("button", { name: "Test", exact: true }).click();
  await page.getByTestId("tester-result").getByText("link-in-bio").waitFor();
  await page.getByTestId("tester-result").getByText("BIO10").waitFor();
  await page.getByTestId("tester-result").getByText("→ step deals").waitFor();
  // Read back as saved: the step and the button that leads to it.
  if ((await page.getByLabel("step 1 name").inputValue()) !== "deals") throw new Error("the step did not read back");
  if ((await page.getByLabel("buttons 1 title").inputValue()) !== "See the deals") throw new Error("the button did not read back");
  if (!(await page.getByLabel("step 1 followers only").isChecked())) throw new Error("the follow gate did not read back");
  if ((await page.getByLabel("step 1 only if").inputValue()) !== "known:email") throw new Error("the condition did not read back");
  await shot("09-link-campaign");

  step("a campaign for the next post: no post ids, and it says what it waits for");
  await page.getByRole("link", { name: "Campaigns", exact: true }).click();
  await page.getByRole("button", { name: "New campaign" }).click();
  await page.locator("select").first().selectOption({ label: "@acme.outlet" });
  await page.locator('input[name="name"]').fill("Next drop");
  await page.locator('input[name="keywords"]').fill("drop");
  await page.getByLabel("Only the next post I publish").check();
  if (await page.locator('input[name="mediaIds"]').count()) throw new Error("a next-post campaign shows the post ids");
  await page.getByRole("button", { name: "Create campaign" }).click();
  await page.getByRole("heading", { name: "Next drop" }).waitFor();
  await page.getByText("Waiting for your next post").waitFor();
  if (!(await page.getByLabel("Only the next post I publish").isChecked())) throw new Error("next post did not read back");
  await shot("11-next-post-campaign");
});
