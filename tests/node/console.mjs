// The operator console (GET /inspector) in headless Chromium, against a real gateway. One
// scenario per run; each prints one JSON line of what the page showed, then exits 0, and
// saves a screenshot of the part it exercised in ARTIFACTS/console-<scenario>.png.
//
//   node console.mjs charts BASE_URL ADMIN_TOKEN ARTIFACTS
//     waits until the published/s and delivered/s charts rise above 0 (the test publishes
//     meanwhile) and hold 4 samples (8 s).
//   node console.mjs connections BASE_URL ADMIN_TOKEN ARTIFACTS USER USER_TOKEN
//     opens three socket.io-client connections as USER, filters the list by USER two at a
//     time (so a next page shows), then disconnects one with its button; the client must be
//     told ADMIN_DISCONNECT and be disconnected by the server.
//   node console.mjs room BASE_URL ADMIN_TOKEN ARTIFACTS ROOM EVENT_ID XSS
//     opens ROOM (#room= in the fragment), shows event EVENT_ID's payload, says "ready",
//     then waits for the id of an event published afterwards on stdin and for it to show
//     live; finally types XSS into the room and filter inputs: the API's 422s must show as
//     text.
//   node console.mjs tokens BASE_URL ADMIN_TOKEN ARTIFACTS USER_TOKEN
//     gives the login form a token that is none (401), then a user's (403: not an admin),
//     then the admin's; reloads the page, which keeps the token for the tab.
//
// Whatever the scenario: a dialog (alert() from an injected handler) fails the run, and the
// output lists script errors, console errors and CSP violations as `problems` (failed loads
// of the statuses a scenario causes on purpose are listed apart, as `refused_loads`).
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";
import io from "socket.io-client";

const [scenario, baseUrl, token, artifacts, ...rest] = process.argv.slice(2);
const TIMEOUT = { timeout: 20000 };
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
const problems = [];
const refusedLoads = [];
const dialogs = [];
page.on("pageerror", (error) => problems.push(`pageerror: ${error}`));
page.on("crash", () => { console.error("the page crashed"); process.exit(2); });
// Every URL the page asks for, its fragment left out (a fragment is never sent): none may
// carry a token.
const urls = [];
page.on("request", (request) => urls.push(request.url().split("#")[0]));
page.on("websocket", (socket) => urls.push(socket.url()));
page.on("dialog", async (dialog) => {
  dialogs.push(`${dialog.type()}: ${dialog.message()}`);
  await dialog.dismiss();
});
page.on("console", (message) => {
  if (message.type() !== "error") return;
  // Chromium reports every answered-but-failed fetch on the console; those the scenario
  // provokes (a 422 for a bad room) are expected, any other is a problem.
  const refused = /^Failed to load resource: the server responded with a status of (\d+)/.exec(message.text());
  if (refused) refusedLoads.push(Number(refused[1]));
  else problems.push(`console: ${message.text()}`);
});
// A CSP violation fires an event in the page before (or without) a console line: count it too.
await page.addInitScript(() => {
  window.__violations = [];
  document.addEventListener("securitypolicyviolation", (v) => window.__violations.push(`${v.violatedDirective} ${v.blockedURI}`));
});

async function finish(shown) {
  const violations = await page.evaluate(() => window.__violations);
  const images = await page.evaluate(() => document.querySelectorAll("img").length);
  problems.push(...violations.map((v) => `csp: ${v}`));
  const tokens = [token, ...(shown.tokens || [])];
  const leaks = urls.filter((url) => tokens.some((t) => url.includes(t) || url.includes(encodeURIComponent(t))));
  console.log(JSON.stringify({ ...shown, images, dialogs, problems, refused_loads: refusedLoads,
                               address: page.url(), urls: urls.length, token_in_urls: leaks }));
  await browser.close();
  process.exit(0); // stdin and client sockets would keep node alive otherwise
}

async function open(extra = "") {
  await page.goto(`${baseUrl}/inspector#token=${encodeURIComponent(token)}${extra}`);
  await page.waitForFunction(() => document.querySelector("#instances tbody").children.length > 0, null, TIMEOUT);
}

const texts = (selector) => page.$$eval(selector, (nodes) => nodes.map((n) => n.textContent));

// The peak of each series drawn, by its data-series name (metric:instance).
const peaks = () => page.$$eval("polyline.series", (lines) =>
  Object.fromEntries(lines.map((l) => [l.dataset.series, Number(l.dataset.peak)])));

// Each chart's sum line against its instance lines: at every t that every instance line has,
// the sum must be their total. Returns the number of points compared and the mismatches.
const sums = () => page.$$eval("polyline.series", (lines) => {
  const series = {};
  for (const line of lines) {
    const [metric, name] = line.dataset.series.split(":");
    (series[metric] ||= {})[name] = new Map(JSON.parse(line.dataset.points));
  }
  let compared = 0;
  const wrong = [];
  for (const [metric, byName] of Object.entries(series)) {
    const { all, ...instances } = byName;
    for (const [t, total] of all || []) {
      const parts = Object.values(instances).map((points) => points.get(t));
      if (!parts.length || parts.some((part) => part === undefined)) continue;
      compared += 1;
      const expected = parts.reduce((a, b) => a + b, 0);
      if (Math.abs(expected - total) > 1e-6) wrong.push({ metric, t, total, expected });
    }
  }
  return { compared, wrong };
});

async function charts() {
  await open();
  await page.waitForFunction(() => {
    const peak = (metric) => Math.max(0, ...[...document.querySelectorAll(`polyline[data-series^="${metric}:"]`)]
      .map((l) => Number(l.dataset.peak)));
    // and some history, for the screenshot to show lines rather than a first point
    const sum = document.querySelector('polyline[data-series="connections:all"]');
    return peak("published") > 0 && peak("delivered") > 0 && sum && sum.points.numberOfItems >= 4;
  }, null, { timeout: 40000, polling: 500 });
  await page.locator("#overview").screenshot({ path: `${artifacts}/console-charts.png` });
  await finish({
    peaks: await peaks(),
    sums: await sums(),
    max_labels: await texts("#charts text.max"),
    legends: await texts("#charts .legend li"),
    instances: await page.$$eval("#instances tbody tr", (rows) => rows.map((r) => [...r.children].map((c) => c.textContent))),
    totals: await page.textContent("#totals"),
  });
}

// A socket.io-client connection as the user; resolves once the gateway established it.
function client(userToken, log) {
  return new Promise((resolve, reject) => {
    const socket = io(`${baseUrl}/ws`, { auth: { token: userToken }, transports: ["websocket"] });
    socket.on("connection_established", () => resolve(socket));
    socket.on("connect_error", (error) => reject(error));
    socket.on("connection_error", (event) => log.push({ event: "connection_error", error_code: event.data ? event.data.error_code : event.error_code }));
    socket.on("disconnect", (reason) => log.push({ event: "disconnect", reason }));
    socket.io.on("reconnect_attempt", () => log.push({ event: "reconnect_attempt" }));
  });
}

async function connections() {
  const [user, userToken] = rest;
  const logs = [[], [], []];
  const sockets = await Promise.all(logs.map((log) => client(userToken, log)));
  const ids = sockets.map((s) => s.id).sort();
  await open();
  await page.waitForFunction(() => document.querySelector("#connections tbody").children.length > 0, null, TIMEOUT);
  const unfiltered = await page.$$eval("#connections tbody tr", (rows) => rows.map((r) => r.children[1].textContent));
  await page.fill("#filter-user", user);
  await page.fill("#filter-limit", "2");
  await page.click("#connection-filter button");
  await page.waitForFunction((first) => document.querySelector(`#connections tr[data-id="${first}"]`)
                                        && !document.querySelector("#next-page").hidden, ids[0], TIMEOUT);
  const firstPage = await page.$$eval("#connections tbody tr", (rows) => rows.map((r) => ({ id: r.dataset.id, user: r.children[1].textContent })));
  const total = await page.textContent("#connections-total");
  await page.locator("#connections-section").screenshot({ path: `${artifacts}/console-connections.png` });
  await page.click("#next-page");
  await page.waitForFunction((last) => document.querySelector(`#connections tr[data-id="${last}"]`), ids[2], TIMEOUT);
  const secondPage = await page.$$eval("#connections tbody tr", (rows) => rows.map((r) => r.dataset.id));
  const nextHidden = await page.$eval("#next-page", (b) => b.hidden);
  // Disconnect the last one: two clicks (the first only arms the button).
  const target = ids[2];
  const victim = logs[sockets.findIndex((s) => s.id === target)]; // before: a closed socket has no id
  const button = page.locator(`#connections tr[data-id="${target}"] button.disconnect`);
  await button.click();
  const armed = await button.textContent();
  await button.click();
  await page.waitForFunction((id) => document.querySelector("#status").textContent.startsWith(`disconnected ${id}`), target, TIMEOUT);
  const deadline = Date.now() + 10000;
  while (!victim.some((e) => e.event === "disconnect") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 1500)); // a reconnect attempt, if any, would come within this
  await page.waitForFunction((id) => !document.querySelector(`#connections tr[data-id="${id}"]`), target, TIMEOUT);
  await finish({
    ids,
    target,
    unfiltered_users: unfiltered,
    first_page: firstPage,
    second_page: secondPage,
    next_hidden_on_last_page: nextHidden,
    total,
    armed,
    status: await page.textContent("#status"),
    victim: victim,
    others: logs.filter((log) => log !== victim),
    others_connected: sockets.filter((s, index) => logs[index] !== victim).map((s) => s.connected),
  });
}

async function room() {
  const [name, eventId, xss] = rest;
  await open(`&room=${encodeURIComponent(name)}`);
  await page.waitForFunction((r) => document.querySelector("#watching").textContent === `watching ${r}`, name, TIMEOUT);
  await page.waitForSelector(`#room-events tr[data-id="${eventId}"]`, TIMEOUT);
  await page.click(`#room-events tr[data-id="${eventId}"]`);
  const payload = await page.textContent("#payload");
  const facts = {
    members: await page.textContent("#room-members"),
    per_instance: await page.textContent("#room-instances"),
    position: await page.textContent("#room-position"),
    events: await page.$$eval("#room-events tbody tr", (rows) => rows.map((r) => r.dataset.id)),
    connections: await page.$$eval("#room-connections tbody tr", (rows) => rows.map((r) => r.children[1].textContent)),
  };
  await page.locator("#room-section").screenshot({ path: `${artifacts}/console-room.png` });
  console.log("ready");
  let liveId = "";
  for await (const line of createInterface({ input: process.stdin })) {
    liveId = line.trim();
    break;
  }
  await page.waitForSelector(`li.event[data-id="${liveId}"]`, TIMEOUT);
  const live = await page.$$eval("li.event pre", (pres) => pres.map((p) => JSON.parse(p.textContent)));
  // A user's strings: as a room filter, as a user filter, as a room to open. The status line
  // is blanked before each, so that each wait sees its own answer.
  const blank = () => page.$eval("#status", (status) => { status.textContent = ""; });
  await blank();
  await page.fill("#filter-room", xss);
  await page.click("#connection-filter button");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("connections: 422"), null, TIMEOUT);
  const filterStatus = await page.textContent("#status");
  await page.fill("#filter-room", "");
  await blank();
  await page.fill("#filter-user", xss);
  await page.click("#connection-filter button");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("connections: 422"), null, TIMEOUT);
  const userStatus = await page.textContent("#status");
  await blank();
  await page.fill("#room", xss);
  await page.click("#watch button");
  await page.waitForFunction(() => document.querySelector("#status").textContent.startsWith("room: 422"), null, TIMEOUT);
  await page.waitForFunction((r) => document.querySelector("#watching").textContent !== `watching ${r}`, name, TIMEOUT);
  await finish({
    ...facts,
    payload,
    live,
    watching: await page.textContent("#watching"),
    filter_status: filterStatus,
    user_status: userStatus,
    room_status: await page.textContent("#status"),
    publisher: await page.$eval("#publisher", (p) => !p.hidden),
  });
}

async function tokens() {
  const [userToken] = rest;
  const statusMatches = (pattern) => page.waitForFunction((p) => new RegExp(p).test(document.querySelector("#status").textContent),
                                                          pattern, TIMEOUT);
  const login = async (value) => {
    await page.fill("#token", value);
    await page.click("#login button");
  };
  await page.goto(`${baseUrl}/inspector`);
  const before = await page.textContent("#state");
  const field = await page.getAttribute("#token", "type");
  await login("not-a-token");
  await statusMatches("^(instances|rooms|connections): 401 AUTH_FAILED");
  const unauthenticated = await page.textContent("#status");
  // A refused token stops the polling: no call of the instances in the next two ticks.
  const calls = () => urls.filter((url) => url.includes("/api/v1/instances")).length;
  const afterRefusal = calls();
  await page.waitForTimeout(4500); // two polling periods, in which nothing may be asked
  const callsWhileRefused = calls() - afterRefusal;
  await page.waitForFunction(() => document.querySelector("#state").textContent.startsWith("refused: "), null, TIMEOUT);
  const socketState = await page.textContent("#state");
  await login(userToken);
  await statusMatches("^(instances|rooms|connections): 403 PERMISSION_DENIED");
  const forbidden = await page.textContent("#status");
  await login(token);
  await page.waitForFunction(() => document.querySelector("#instances tbody").children.length > 0, null, TIMEOUT);
  const fieldAfter = await page.inputValue("#token");
  await page.reload();
  await page.waitForFunction(() => document.querySelector("#instances tbody").children.length > 0, null, TIMEOUT);
  await page.waitForFunction(() => document.querySelector("#state").textContent === "connected", null, TIMEOUT);
  await finish({
    tokens: [userToken, "not-a-token"],
    before,
    field,
    unauthenticated,
    calls_while_refused: callsWhileRefused,
    socket_state: socketState,
    forbidden,
    field_after: fieldAfter,
    status_after_reload: await page.textContent("#status"),
    stored: await page.evaluate(() => Object.keys(sessionStorage)),
  });
}

const scenarios = { charts, connections, room, tokens };
if (!scenarios[scenario]) {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
await scenarios[scenario]();
