// The inspector page in headless Chromium: open it with an admin token and a room, say
// "ready" once it watches the room; then the test publishes and writes the event's id on
// stdin: wait for that event to show, take a screenshot and print what the page shows (JSON).
// Usage: node inspector.mjs BASE_URL ADMIN_TOKEN ROOM SCREENSHOT_PATH
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const [baseUrl, token, room, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
const problems = [];
page.on("pageerror", (error) => problems.push(String(error)));
page.on("crash", () => { console.error("the page crashed"); process.exit(2); });
page.on("console", (message) => { if (message.type() === "error") problems.push(message.text()); });
await page.goto(`${baseUrl}/inspector#token=${token}&room=${room}`);
await page.waitForFunction((r) => document.querySelector("#watching").textContent === `watching ${r}`, room,
                           { timeout: 15000 });
await page.waitForFunction(() => document.querySelector("#instances tbody").children.length > 0, null,
                           { timeout: 15000 });
console.log("ready");
let eventId = "";
for await (const line of createInterface({ input: process.stdin })) {
  eventId = line.trim();
  break;
}
await page.waitForSelector(`li.event[data-id="${eventId}"]`, { timeout: 15000 });
// The counts refresh every 2 s: the page's own connection shows up in them.
await page.waitForFunction(() => document.querySelector("#totals").textContent.startsWith("1 connection,"), null,
                           { timeout: 10000 });
await page.screenshot({ path: screenshot, fullPage: true });
const shown = await page.evaluate(() => ({
  watching: document.querySelector("#watching").textContent,
  totals: document.querySelector("#totals").textContent,
  instances: [...document.querySelectorAll("#instances tbody tr")].map((tr) => tr.children[0].textContent),
  events: [...document.querySelectorAll("li.event pre")].map((pre) => JSON.parse(pre.textContent)),
  publisher: !document.querySelector("#publisher").hidden,
  address: location.href,
}));
console.log(JSON.stringify({ ...shown, problems }));
await browser.close();
process.exit(0); // stdin stays open otherwise
