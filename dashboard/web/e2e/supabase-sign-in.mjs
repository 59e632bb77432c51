// Signing in through Supabase Auth with supabase-js, in Debian's Chromium: a wrong password is
// refused with Auth's message, the right one opens the workspace (the API verifies the token
// with the project's JWKS), a reload keeps the session (refreshing the token), signing out
// ends it. Run by tests/tests/dashboard_browser.rs against the Supabase Auth test server.
import { env, run } from "./browser.mjs";

await run(async ({ page, shot, step }) => {
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

  step("signing out ends the session");
  await page.getByRole("button", { name: /^Sign out/ }).click();
  await page.getByLabel("Password").waitFor();
  await page.reload();
  await page.getByLabel("Password").waitFor();
});
