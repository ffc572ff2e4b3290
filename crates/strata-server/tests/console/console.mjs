// Drives the strata console in Debian's headless Chromium: load, see pending
// migrations, dry run, migrate (token and confirmation), roll back one, screenshot.
// Usage: node console.mjs BASE_URL OPERATOR_TOKEN SCREENSHOT_DIR
// Prints one JSON line of what it saw; exits non-zero on the first failed check.
import { chromium } from "playwright-core";

const [base, token, shots] = process.argv.slice(2);
const seen = { requests: [], errors: [] };

function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("request", (r) => seen.requests.push(r.url()));
  page.on("pageerror", (e) => seen.errors.push(String(e)));
  // The first call's 401 (before the token is given) is expected; Chromium logs it.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().includes("status of 401")) seen.errors.push(m.text());
  });

  await page.goto(base + "/");
  // Tokens are configured: the first API call asks for one.
  await page.locator("#token-dialog").waitFor({ state: "visible" });
  await page.fill("#token-input", token);
  await page.click("#token-save");
  await page.locator("body[data-loaded=true]").waitFor();

  const states = () => page.$$eval("#status-table tbody tr td:nth-child(3)", (tds) => tds.map((t) => t.textContent));
  const initial = await states();
  check(initial.length === 3 && initial.every((s) => s === "pending"), "three pending migrations: " + initial);
  check((await page.locator("#graph svg g.node").count()) === 3, "the graph draws three nodes");
  check((await page.locator("#graph svg path.edge").count()) >= 1, "the graph draws the dependency edge");
  check((await page.textContent("#health-badge")) === "degraded", "pending migrations show as degraded");
  check((await page.textContent("#count-pending")) === "3", "the pending card says 3");

  // Dry run: the SQL on the page, nothing applied.
  await page.click("#dry-run");
  await page.locator("#plan-panel").waitFor({ state: "visible" });
  const planText = await page.textContent("#plan-body");
  check(planText.includes("CREATE TABLE accounts") && planText.includes("3 migration(s) would be applied"), "the dry run shows the SQL");
  check((await states()).every((s) => s === "pending"), "a dry run applies nothing");

  // Migrate: the confirmation shows the plan's SQL first; cancelling changes nothing.
  await page.click("#migrate");
  await page.locator("#confirm-dialog").waitFor({ state: "visible" });
  check((await page.textContent("#confirm-plan")).includes("CREATE INDEX"), "the confirmation shows the SQL");
  await page.screenshot({ path: shots + "/console-confirm.png" });
  await page.click("#confirm-cancel");
  await page.waitForTimeout(300);
  check((await states()).every((s) => s === "pending"), "cancel applies nothing");

  await page.click("#migrate");
  await page.locator("#confirm-dialog").waitFor({ state: "visible" });
  await page.click("#confirm-ok");
  await page.locator("#notice[data-kind=ok]").waitFor();
  check((await page.textContent("#notice")).startsWith("Applied 3 migration(s)"), "the notice reports the run");
  await page.waitForFunction(() => [...document.querySelectorAll("#status-table tbody tr td:nth-child(3)")].every((t) => t.textContent === "applied"));
  check((await page.textContent("#current")) === "003", "current is 003");
  check((await page.textContent("#health-badge")) === "healthy", "healthy once applied");
  const audit = await page.textContent("#audit-table tbody");
  check(audit.includes("deployer") && audit.includes("migrate to head: 3 migration(s)") && audit.includes("127.0.0.1"), "the audit shows who and from where");

  // Roll back 003 from its row.
  await page.click("#status-table tbody tr[data-version='003'] button");
  await page.locator("#confirm-dialog").waitFor({ state: "visible" });
  check((await page.textContent("#confirm-plan")).includes("DROP INDEX"), "the rollback confirmation shows its SQL");
  await page.click("#confirm-ok");
  await page.locator("#notice[data-kind=ok]").waitFor();
  await page.waitForFunction(() => document.querySelector("#status-table tbody tr[data-version='003'] td:nth-child(3)").textContent === "pending");
  await page.screenshot({ path: shots + "/console.png", fullPage: true });

  const foreign = seen.requests.filter((u) => !u.startsWith(base));
  check(foreign.length === 0, "no request leaves the server: " + foreign.join(", "));
  check(seen.errors.length === 0, "no errors in the page: " + seen.errors.join("; "));
  console.log(JSON.stringify({ ok: true, states: await states(), requests: seen.requests.length }));
} finally {
  await browser.close();
}
