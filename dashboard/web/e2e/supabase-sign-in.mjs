// Signing in through Supabase Auth with supabase-js, in Debian's Chromium: a wrong password is
// refused with Auth's message, the right one opens the workspace (the API verifies the token
// with the project's JWKS), a reload keeps the session (refreshing the token), signing out
// ends it. An owner invites a teammate, who opens the mailed link, chooses a password (too
// short is refused) and is in; the link works once; a forgotten password is reset by a mailed
// link. Run by tests/tests/dashboard_browser.rs against the Supabase Auth test server.
import { env, run } from "./browser.mjs";

/** The newest link of `kind` mailed to `address` (the test server's mailbox). */
async function mailedLink(address, kind) {
  const mails = await (await fetch(`${env("AUTH_URL")}/mailbox/${encodeURIComponent(address)}`)).json();
  const mail = mails.filter((m) => m.kind === kind).at(-1);
  if (!mail) throw new Error(`no ${kind} mail for ${address}: ${JSON.stringify(mails)}`);
  return mail.link;
}

async function choose(page, password) {
  await page.getByLabel("New password").fill(password);
  await page.getByLabel("Type it again").fill(password);
  await page.getByRole("button", { name: "Save password" }).click();
}

await run(async ({ page, shot, step, newPage }) => {
  step("a wrong password is refused");
  await page.goto(`${env("DASHBOARD_URL")}/`);
  await page.getByLabel("Work e-mail").fill(env("SIGN_IN_EMAIL"));
  await page.getByLabel("Password").fill("not-the-password");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByText("Invalid login credentials").waitFor();
  await shot("08-supabase-sign-in-refused");

  step("the right password opens the workspace");
  await page.getByLabel("Password").fill(env("SIGN_IN_PASSWORD"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Campaigns" }).waitFor();
  await page.getByText(`Sign out ${env("SIGN_IN_EMAIL")}`).waitFor();

  step("a reload keeps the session");
  await page.reload();
  await page.getByRole("heading", { name: "Campaigns" }).waitFor();
  const urls = await page.evaluate(() => performance.getEntriesByType("resource").map((e) => e.name));
  if (urls.some((u) => u.includes("eyJ"))) throw new Error("a token appeared in a URL");

  step("an owner invites a teammate, who chooses a password from the mailed link");
  const invitee = env("INVITEE_EMAIL");
  await page.getByRole("link", { name: "Members" }).click();
  await page.getByLabel("Invite e-mail").fill(invitee);
  await page.getByRole("button", { name: "Invite" }).click();
  await page.getByText(invitee).waitFor();
  const link = await mailedLink(invitee, "invite");
  const teammate = await newPage();
  await teammate.goto(link);
  await teammate.getByRole("heading", { name: "Welcome! Choose your password" }).waitFor();
  if (teammate.url().includes("access_token")) throw new Error(`the link's tokens stayed in the address bar: ${teammate.url()}`);
  await choose(teammate, "short");
  await teammate.getByText("Use at least 8 characters.").waitFor();
  await shot("10-choose-password", teammate);
  await choose(teammate, env("INVITEE_PASSWORD"));
  await teammate.getByRole("heading", { name: "Campaigns" }).waitFor();
  await teammate.getByText(`Sign out ${invitee}`).waitFor();

  step("the link works once");
  const again = await newPage();
  await again.goto(link);
  await again.getByText("Email link is invalid or has expired").waitFor();

  step("the chosen password signs in; a forgotten one is reset by a mailed link");
  await teammate.getByRole("button", { name: /^Sign out/ }).click();
  await teammate.getByLabel("Work e-mail").fill(invitee);
  await teammate.getByLabel("Password").fill(env("INVITEE_PASSWORD"));
  await teammate.getByRole("button", { name: "Sign in" }).click();
  await teammate.getByRole("heading", { name: "Campaigns" }).waitFor();
  await teammate.getByRole("button", { name: /^Sign out/ }).click();
  await teammate.getByLabel("Work e-mail").fill(invitee);
  await teammate.getByRole("button", { name: "Forgot your password?" }).click();
  await teammate.getByText("a link to choose a new password is on its way").waitFor();
  await teammate.goto(await mailedLink(invitee, "recovery"));
  await teammate.getByRole("heading", { name: "Choose a new password" }).waitFor();
  await choose(teammate, `${env("INVITEE_PASSWORD")} 2`);
  await teammate.getByRole("heading", { name: "Campaigns" }).waitFor();

  step("signing out ends the session");
  await page.getByRole("button", { name: /^Sign out/ }).click();
  await page.getByLabel("Password").waitFor();
  await page.reload();
  await page.getByLabel("Password").waitFor();
});
