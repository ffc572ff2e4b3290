// Drives the strata console in Debian's headless Chromium, as an operator would run a
// deployment from it: at 1366x900 and at 390x844 (a phone) every control is on screen
// and clickable; a dry run shows the SQL; a live run streams its steps and disables
// the buttons; a rollback that leaves a migration out of order is recovered from the
// console alone; the detail view opens from the graph; a viewer sees no button that
// changes anything; with the database down the page shows the health report and the
// migrations on disk. Screenshots of each go to SCREENSHOT_DIR.
// Usage: node console.mjs BASE_URL OPERATOR_TOKEN VIEWER_TOKEN DOWN_BASE_URL BIG_BASE_URL SCREENSHOT_DIR
// (BIG_BASE_URL serves a project of 60 migrations with dependencies, for the graph).
// Prints one JSON line of what it saw; exits non-zero on the first failed check.
import { chromium } from "playwright-core";

const [base, operator, viewer, downBase, bigBase, shots] = process.argv.slice(2);
const seen = { requests: [], errors: [], checks: 0 };

function check(ok, what) {
  seen.checks++;
  if (!ok) throw new Error("check failed: " + what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

// A page with `token` already in the tab's sessionStorage (null: asked for on load).
async function open(url, viewport, token) {
  const context = await browser.newContext({ viewport });
  if (token) await context.addInitScript((t) => sessionStorage.setItem("strata-token", t), token);
  const page = await context.newPage();
  page.on("request", (r) => seen.requests.push(r.url()));
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  // Expected answers the page handles: 401 before a token is given, 409 for the
  // rollback that needs a cascade, the 503s of the database-down page.
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of (401|409|503)/.test(m.text())) seen.errors.push(m.text());
  });
  await page.goto(url + "/");
  return page;
}

// Confirms the open dialog; where lint found errors, first ticks the override it asks for.
async function confirmOk(page) {
  if (await page.isVisible("#confirm-unsafe")) {
    check(await page.isDisabled("#confirm-ok"), "error-level findings block the button until overridden");
    await page.check("#confirm-unsafe-box");
  }
  await page.click("#confirm-ok");
}

const states = (page) => page.$$eval("#status-table tbody tr td:nth-child(3)", (tds) => tds.map((t) => t.textContent));
const stateOf = (page, v) => page.textContent(`#status-table tbody tr[data-version='${v}'] td:nth-child(3)`);

// Every visible control can be scrolled to and clicked where it is drawn (nothing
// covers or clips it), and the page itself never scrolls sideways.
async function everyControlReachable(page, label) {
  const width = page.viewportSize().width;
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  check(overflow <= width, `${label}: the page is ${overflow}px wide in a ${width}px viewport`);
  const controls = page.locator("header button:visible, main button:visible, main select:visible, header select:visible");
  const n = await controls.count();
  check(n >= 5, `${label}: found ${n} controls`);
  for (let i = 0; i < n; i++) {
    const c = controls.nth(i);
    if (await c.isDisabled()) continue;
    await c.scrollIntoViewIfNeeded();
    const box = await c.boundingBox();
    const name = (await c.textContent()) || (await c.getAttribute("id"));
    check(box && box.x >= 0 && box.x + box.width <= width + 0.5, `${label}: "${name}" lies outside the viewport (${JSON.stringify(box)})`);
    await c.click({ trial: true, timeout: 3000 }).catch((e) => check(false, `${label}: "${name}" cannot be clicked: ${e.message.split("\n")[0]}`));
  }
  return n;
}

try {
  // ---- the operator, on a desktop ----------------------------------------
  const page = await open(base, { width: 1366, height: 900 }, null);
  await page.locator("#token-dialog").waitFor({ state: "visible" });
  await page.fill("#token-input", operator);
  await page.click("#token-save");
  await page.locator("body[data-loaded=true]").waitFor();
  await page.waitForFunction(() => document.querySelector("#who").textContent === "deployer (operator)");
  const initial = await states(page);
  check(initial.length === 6 && initial.every((s) => s === "pending"), "six pending migrations: " + initial + " / " + (await page.textContent("#notice")));
  check((await page.locator("#graph svg g.node").count()) === 6, "the graph draws six nodes");
  const labels = await page.$$eval("#graph svg g.node text", (ts) => ts.map((t) => t.textContent));
  const longest = labels.reduce((a, b) => (b.length > a.length ? b : a), "");
  check(longest.startsWith("006 ") && longest.length > 40 && !longest.endsWith("…"), "graph labels are whole: " + labels);
  const fanIn = await page.$$eval("#graph svg path.edge[data-to='006']", (ps) => ps.map((p) => p.getAttribute("d").split(" ").pop()));
  check(fanIn.length === 2 && fanIn[0] !== fanIn[1], "two edges into 006 end at distinct points: " + fanIn);
  check((await page.textContent("#count-pending")) === "6", "the pending card says 6");
  check((await page.locator("#status-table tbody tr[data-version='005'] button.mutating").count()) === 0, "no Roll back for 005, which has no down section");
  const desktopControls = await everyControlReachable(page, "1366x900");

  // Dry run: the SQL on the page, nothing applied.
  await page.click("#dry-run");
  await page.locator("#plan-panel").waitFor({ state: "visible" });
  const planText = await page.textContent("#plan-body");
  check(planText.includes("CREATE TABLE accounts") && planText.includes("6 migration(s) would be applied"), "the dry run shows the SQL");
  check((await states(page)).every((s) => s === "pending"), "a dry run applies nothing");

  // Migrate to 003 first; cancelling the confirmation changes nothing.
  await page.selectOption("#target", "003");
  await page.click("#migrate");
  await page.locator("#confirm-dialog").waitFor({ state: "visible" });
  check((await page.textContent("#confirm-plan")).includes("CREATE INDEX"), "the confirmation shows the SQL");
  check((await page.textContent("#confirm-plan")).includes("index-not-concurrent"), "the confirmation shows lint's finding on the index");
  check(await page.isVisible("#confirm-unsafe"), "an error-level finding asks for an override");
  await page.screenshot({ path: shots + "/desktop-confirm.png" });
  await page.click("#confirm-cancel");
  await page.waitForTimeout(300);
  check((await states(page)).every((s) => s === "pending"), "cancel applies nothing");
  await page.click("#migrate");
  await page.locator("#confirm-dialog").waitFor({ state: "visible" });
  await confirmOk(page);
  await page.locator("#notice[data-kind=ok]").waitFor();
  await page.waitForFunction(() => document.querySelector("#current").textContent === "003");
  check((await page.textContent("#audit-table tbody")).includes("migrate to 003: 3 migration(s)"), "the audit shows the run");

  // The rest, live: 004 sleeps, so the page shows its step running and no button works.
  await page.click("#migrate");
  await page.locator("#confirm-dialog").waitFor({ state: "visible" });
  await confirmOk(page);
  await page.locator("#run-panel").waitFor({ state: "visible" });
  await page.locator("#run-steps li[data-version='004'][data-state=running]").waitFor({ timeout: 10000 });
  check(await page.isDisabled("#migrate"), "Migrate is disabled during the run");
  check(await page.isVisible("#lock-notice"), "the page says a run is in progress");
  check((await page.textContent("#run-state")).startsWith("step"), "the run panel shows the step: " + (await page.textContent("#run-state")));
  await page.screenshot({ path: shots + "/desktop-live-run.png", fullPage: true });
  await page.waitForFunction(() => document.querySelector("#run-state").textContent === "ok", null, { timeout: 30000 });
  check((await page.locator("#run-steps li[data-state=done]").count()) === 3, "three steps done");
  await page.waitForFunction(() => [...document.querySelectorAll("#status-table tbody tr td:nth-child(3)")].every((t) => t.textContent === "applied"));
  check(!(await page.isDisabled("#dry-run")), "actions come back after the run");

  // Roll back 002 (cascade: 006 depends on it): the confirmation warns that it will be
  // left below applied migrations; then the console itself offers the way back.
  await page.click("#status-table tbody tr[data-version='002'] button.mutating");
  await page.locator("#confirm-dialog").waitFor({ state: "visible" });
  const rollbackPlan = await page.textContent("#confirm-plan");
  check(rollbackPlan.includes("DROP TABLE profiles") && rollbackPlan.includes("pending below migrations that stay applied"), "the rollback warns it leaves 002 out of order: " + rollbackPlan);
  await confirmOk(page);
  await page.locator("#notice[data-kind=ok]").waitFor();
  await page.waitForFunction(() => document.querySelector("#status-table tbody tr[data-version='002'] td:nth-child(3)").textContent === "pending");
  await page.locator("#recover-out-of-order").waitFor({ state: "visible" });
  check((await page.textContent("#recovery-text")).includes("002"), "the recovery banner names 002");
  await page.screenshot({ path: shots + "/desktop-recovery.png", fullPage: true });
  await page.click("#recover-out-of-order");
  await page.locator("#confirm-dialog").waitFor({ state: "visible" });
  check((await page.textContent("#confirm-text")).includes("out of order"), "the confirmation says out of order");
  await confirmOk(page);
  await page.waitForFunction(() => [...document.querySelectorAll("#status-table tbody tr td:nth-child(3)")].every((t) => t.textContent === "applied"), null, { timeout: 20000 });
  await page.locator("#recovery").waitFor({ state: "hidden" });

  // The detail view, from the graph.
  await page.click("#graph svg g.node[data-version='002']");
  await page.locator("#detail-dialog").waitFor({ state: "visible" });
  const detail = await page.textContent("#detail-body");
  check(detail.includes("CREATE TABLE profiles") && detail.includes("DROP TABLE profiles") && detail.includes("deployer"), "the detail shows both scripts and who applied it");
  await page.screenshot({ path: shots + "/desktop-detail.png" });
  await page.click("#detail-close");
  await page.screenshot({ path: shots + "/desktop.png", fullPage: true });

  // ---- the operator, on a phone --------------------------------------------
  const phone = await open(base, { width: 390, height: 844 }, operator);
  await phone.locator("body[data-loaded=true]").waitFor();
  const phoneControls = await everyControlReachable(phone, "390x844");
  await phone.click("#status-table tbody tr[data-version='003'] button.mutating");
  await phone.locator("#confirm-dialog").waitFor({ state: "visible" });
  const ok = await phone.locator("#confirm-ok").boundingBox();
  check(ok && ok.x + ok.width <= 390, "the confirmation's button fits a phone");
  await phone.screenshot({ path: shots + "/phone-confirm.png" });
  await phone.click("#confirm-cancel");
  await phone.screenshot({ path: shots + "/phone.png", fullPage: true });

  // ---- a viewer ---------------------------------------------------------------
  const view = await open(base, { width: 1366, height: 900 }, viewer);
  await view.locator("body[data-loaded=true]").waitFor();
  await view.waitForFunction(() => document.body.dataset.role === "viewer");
  const mutating = await view.locator("button.mutating:visible").count();
  check(mutating === 0, `a viewer sees no button that changes anything (${mutating})`);
  check(await view.isVisible("#dry-run"), "a viewer may dry-run");
  await view.click("#dry-run");
  await view.locator("#plan-panel").waitFor({ state: "visible" });
  check((await view.textContent("#plan-body")).includes("Nothing to do"), "the viewer's dry run answers");
  await view.screenshot({ path: shots + "/viewer.png", fullPage: true });

  // ---- the database is down -------------------------------------------------
  const down = await open(downBase, { width: 1366, height: 900 }, operator);
  await down.locator("body[data-loaded=true]").waitFor();
  check((await down.textContent("#health-badge")) === "unhealthy", "the badge says unhealthy");
  check((await down.textContent("#health")).includes("Problem"), "the health report explains why");
  check((await down.textContent("#notice")).includes("does not answer"), "the notice says the database does not answer");
  const offline = await states(down);
  check(offline.length === 6 && offline.every((s) => s === "unknown"), "the migrations on disk are listed: " + offline);
  check((await down.textContent("#lock-holder")) !== "none", "no claim that nobody holds the lock");
  await down.screenshot({ path: shots + "/database-down.png", fullPage: true });

  // ---- a graph of 60 migrations ------------------------------------------------
  const big = await open(bigBase, { width: 1366, height: 900 }, operator);
  await big.locator("body[data-loaded=true]").waitFor();
  check((await big.locator("#graph svg g.node").count()) === 60, "sixty nodes");
  const bigLabels = await big.$$eval("#graph svg g.node text", (ts) => ts.map((t) => t.textContent));
  check(bigLabels.every((l) => !l.endsWith("…")) && bigLabels.some((l) => l.length > 40), "every label whole");
  const scrolls = await big.$eval("#graph", (g) => g.scrollHeight > g.clientHeight || g.scrollWidth > g.clientWidth);
  check(scrolls, "the graph scrolls within its panel");
  const before = await big.$eval("#graph svg", (s) => Number(s.getAttribute("width")));
  await big.click("#zoom-out");
  const after = await big.$eval("#graph svg", (s) => Number(s.getAttribute("width")));
  check(after < before, `zoom out shrinks the graph (${before} -> ${after})`);
  const last = big.locator("#graph svg g.node[data-version='060']");
  await last.scrollIntoViewIfNeeded();
  await last.click();
  await big.locator("#detail-dialog").waitFor({ state: "visible" });
  check((await big.textContent("#detail-title")).startsWith("060 "), "a node deep in the graph opens its detail");
  await big.click("#detail-close");
  await big.screenshot({ path: shots + "/graph-60.png" });

  const foreign = seen.requests.filter((u) => !u.startsWith(base) && !u.startsWith(downBase) && !u.startsWith(bigBase));
  check(foreign.length === 0, "no request leaves the server: " + foreign.join(", "));
  check(seen.errors.length === 0, "no errors in the page: " + seen.errors.join("; "));
  console.log(JSON.stringify({ ok: true, checks: seen.checks, desktopControls, phoneControls, states: await states(page), requests: seen.requests.length }));
} finally {
  await browser.close();
}
