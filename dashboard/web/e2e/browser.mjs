// Debian's Chromium driven by Playwright, as both journeys use it.
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

export const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (run scripts/test-dashboard.sh)`);
  return value;
};

/** Runs `journey({ page, shot, step, newPage })` (`newPage()`: another person's browser, with
 * its own storage); on failure saves `failure.png` and sets the exit code. */
export async function run(journey) {
  const shots = env("SCREENSHOTS");
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  const newPage = async () => {
    const p = await browser.newPage({ viewport: { width: 1360, height: 860 }, deviceScaleFactor: 1 });
    p.setDefaultTimeout(20_000);
    p.on("pageerror", (e) => console.error("page error:", e.message));
    return p;
  };
  const page = await newPage();
  const shot = (name, on = page) => on.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  const step = (what) => console.log(`journey: ${what}`);
  try {
    await journey({ page, shot, step, newPage });
    step("done");
  } catch (e) {
    await shot("failure").catch(() => undefined);
    console.error(e);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}
