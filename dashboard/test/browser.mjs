// Drives Debian's Chromium (playwright-core, no bundled browser) through the dashboard for
// tests/dashboard.rs: opens the rollout's page, prints LOADED once the timeline is drawn, waits
// until the timeline shows `until` (the revert), saves a screenshot of the page, checks the
// list, and prints one JSON line with what the page showed.
//   node browser.mjs <rollout page URL> <until text> <screenshot dir>
import { chromium } from "playwright-core";

const [url, until, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(url);
  await page.waitForSelector("#timeline", { timeout: 30000 });
  console.log("LOADED");
  await page.waitForFunction(
    (text) => document.querySelector("#timeline")?.textContent.includes(text),
    until, { timeout: 240000, polling: "raf" });
  const seenAt = new Date().toISOString();
  // Let the plots of the last update settle before the picture.
  await page.waitForTimeout(500);
  const timeline = await page.$$eval("#timeline li", (items) => items.map((li) => li.textContent));
  const steps = await page.$$eval("#steps li", (items) => items.map((li) => `${li.className}:${li.textContent}`));
  const plots = await page.$$eval("#metrics .plot canvas", (canvases) => canvases.length);
  const buttons = await page.$$eval("#actions button", (items) => items.map((b) => b.dataset.action));
  const phase = await page.evaluate(() => document.body.dataset.phase);
  // The top of the page (summary, health, timeline, weight): under 300 KB for the README.
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.screenshot({
    path: `${shots}/dashboard-rollout.png`, fullPage: true,
    clip: { x: 0, y: 0, width: 1280, height: Math.min(height, 1650) },
  });
  await page.goto(new URL("/", url).href);
  await page.waitForSelector("#rollouts tbody tr[data-rollout]", { timeout: 30000 });
  const rows = await page.$$eval("#rollouts tbody tr", (items) => items.map((tr) => tr.textContent));
  console.log(JSON.stringify({ seenAt, timeline, steps, plots, buttons, phase, rows, errors }));
} finally {
  await browser.close();
}
