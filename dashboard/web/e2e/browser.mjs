// Debian's Chromium driven by Playwright, as both journeys use it.
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run scripts/test-dashboard.sh)`);
  return value;
};

/** Runs `journey({ page, shot, step })`; on failure saves `failure.png` and sets the exit code. */
export async function run(journey) {
  const shots = env("SCREENSHOTS");
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage({ viewport: { width: 1360, height: 860 }, deviceScaleFactor: 1 });
  page.setDefaultTimeout(20_000);
  page.on("pageerror", (e) => console.error("page error:", e.message));
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  const step = (what) => console.log(`journey: ${what}`);
  try {
    await journey({ page, shot, step });
    step("done");
  } catch (e) {
    await shot("failure").catch(() => undefined);
    console.error(e);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
