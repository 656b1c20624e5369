// End-to-end test of the admin dashboard in headless Chromium (Debian's /usr/bin/chromium driven
// by playwright-core), against a real `datapact serve --demo`. Run by crates/datapact/tests/dashboard.rs,
// which starts the gateway, creates the users and passes everything in the environment:
//   DASH_URL, API_URL, KEY_NIMBUS, KEY_ORCHID, KEY_ACME, OPERATOR, VIEWER, PASSWORD, ARTIFACTS.
// Prints "N passed, M failed" last; exits 1 on any failure.

import { chromium } from "playwright-core";
import { createRequire } from "node:module";
import { mkdirSync, writeFileSync, rmSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const axeSource = require("fs").readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`missing environment variable ${name}`);
  return value;
};
const DASH = env("DASH_URL"), API = env("API_URL"), ARTIFACTS = env("ARTIFACTS");
const KEYS = { nimbus: env("KEY_NIMBUS"), orchid: env("KEY_ORCHID"), acme: env("KEY_ACME") };
const OPERATOR = env("OPERATOR"), VIEWER = env("VIEWER"), PASSWORD = env("PASSWORD");
mkdirSync(ARTIFACTS, { recursive: true });

let passed = 0, failed = 0;
const consoleErrors = [];

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    passed++;
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (error) {
    failed++;
    console.log(`FAIL ${name}: ${error && error.stack ? error.stack : error}`);
  }
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function api(key, path) {
  const response = await fetch(API + path, { headers: { authorization: `Bearer ${key}` } });
  return { status: response.status, body: await response.json().catch(() => null) };
}

async function eventually(what, probe, ms = 5000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    last = await probe();
    if (last.ok) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: still ${JSON.stringify(last)}`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}

async function axe(page, name) {
  await page.addScriptTag({ content: axeSource });
  const result = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  const serious = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  writeFileSync(join(ARTIFACTS, `axe-${name}.json`), JSON.stringify(result.violations, null, 2));
  check(serious.length === 0, `axe on ${name}: ` + serious.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`).join("; "));
}

function watch(page, who) {
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(`${who} ${page.url()}: ${message.text()}`);
  });
  page.on("pageerror", (error) => consoleErrors.push(`${who} ${page.url()}: ${error.message}`));
}

async function login(page, user) {
  await page.goto(DASH + "/dashboard");
  check(page.url().endsWith("/dashboard/login"), `not sent to the login page: ${page.url()}`);
  await page.getByRole("textbox", { name: "Name" }).fill(user);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Log in", exact: true }).click();
  await page.waitForURL(DASH + "/dashboard");
}

const profile = mkdtempSync(join(tmpdir(), "datapact-e2e-chromium-"));
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    // No --user-data-dir: playwright gives every launch a fresh one of its own (it refuses the flag).
  ],
});

try {
  const operatorContext = await browser.newContext({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
  const page = await operatorContext.newPage();
  watch(page, OPERATOR);

  await step("a wrong password is refused", async () => {
    await page.goto(DASH + "/dashboard/login");
    await page.getByRole("textbox", { name: "Name" }).fill(OPERATOR);
    await page.getByLabel("Password", { exact: true }).fill("not-the-password");
    const [response] = await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/dashboard/login") && r.request().method() === "POST"),
      page.getByRole("button", { name: "Log in", exact: true }).click(),
    ]);
    check(response.status() === 401, `status ${response.status()}`);
    await page.getByText("Wrong name, password or token.").waitFor();
  });

  await step("the operator logs in and sees the demo licensees", async () => {
    await login(page, OPERATOR);
    for (const name of ["nimbus", "orchid", "acme"]) {
      await page.getByRole("link", { name, exact: true }).first().waitFor();
    }
    await page.getByText(`${OPERATOR} · operator`).waitFor();
    await shot(page, "overview-1280");
    await axe(page, "overview");
  });

  await step("live numbers refresh without reload", async () => {
    for (let i = 0; i < 5; i++) await api(KEYS.nimbus, "/2/tweets/search/recent?query=the&max_results=10");
    await page.locator('[data-live="requests-per-second"]').filter({ hasNotText: "…" }).waitFor({ timeout: 10000 });
    await eventually("records today", async () => {
      const text = await page.locator('[data-live="records_today"]').textContent();
      return { ok: text !== "0" && text !== "—", text };
    }, 10000);
  });

  await step("block acme with a reason; its next API request gets 403", async () => {
    check((await api(KEYS.acme, "/2/usage/tweets")).status === 200, "acme is served before the block");
    await page.goto(DASH + "/dashboard/licensees/acme");
    await page.getByLabel("Reason (shown to the licensee)").fill("e2e: scraping beyond terms");
    await page.getByRole("button", { name: "Block acme" }).click();
    await page.waitForURL(DASH + "/dashboard/licensees/acme");
    await page.getByText("(e2e: scraping beyond terms)").waitFor();
    await shot(page, "licensee-acme-blocked");
    await axe(page, "licensee");
    await eventually("acme refused", async () => {
      const { status } = await api(KEYS.acme, "/2/usage/tweets");
      return { ok: status === 403, status };
    });
  });

  await step("revoke orchid's key; its next request gets 401", async () => {
    check((await api(KEYS.orchid, "/2/usage/tweets")).status === 200, "orchid is served before");
    await page.goto(DASH + "/dashboard/licensees/orchid");
    // The key's row: its displayed prefix starts the key (after `dpk_`).
    const rows = page.locator("tr", { has: page.locator("code") });
    const count = await rows.count();
    let clicked = false;
    for (let i = 0; i < count; i++) {
      const code = (await rows.nth(i).locator("code").textContent()).trim();
      if (KEYS.orchid.startsWith(code) || KEYS.orchid.slice(4).startsWith(code)) {
        await rows.nth(i).getByRole("button", { name: /^Revoke key / }).click();
        clicked = true;
        break;
      }
    }
    check(clicked, `no revoke button for orchid's key among ${count} rows`);
    await page.waitForURL(DASH + "/dashboard/licensees/orchid");
    await page.getByText(/revoked \d{4}-/).first().waitFor();
    await eventually("orchid's key refused", async () => {
      const { status } = await api(KEYS.orchid, "/2/usage/tweets");
      return { ok: status === 401, status };
    });
  });

  await step("upload a leak and see the accused licensee", async () => {
    // nimbus leaks what it was served: pages of search results.
    const seen = new Map();
    for (const query of ["the", "de", "and", "la", "is", "le", "to", "et"]) {
      let next = "";
      for (let i = 0; i < 3 && seen.size < 900; i++) {
        const { status, body } = await api(KEYS.nimbus, `/2/tweets/search/recent?query=${query}&max_results=100${next}`);
        check(status === 200, `search as nimbus: ${status} ${JSON.stringify(body)}`);
        for (const post of body.data || []) seen.set(post.id, post);
        if (!body.meta || !body.meta.next_token) break;
        next = `&next_token=${body.meta.next_token}`;
      }
    }
    check(seen.size >= 600, `only ${seen.size} posts to leak`);
    const leak = join(profile, "leak.jsonl");
    writeFileSync(leak, [...seen.values()].map((post) => JSON.stringify(post)).join("\n") + "\n");
    await page.goto(DASH + "/dashboard/trace");
    await page.getByLabel(/Leaked file/).setInputFiles(leak);
    await page.getByRole("button", { name: "Trace" }).click();
    await page.waitForURL(/\/dashboard\/trace\/\d+$/);
    await shot(page, "trace-running");
    await page.locator("table#verdict").waitFor({ timeout: 120000 });
    const accused = await page.locator("table#verdict tbody th").allTextContents();
    check(accused.map((t) => t.trim()).includes("nimbus"), `accused: ${accused}`);
    await page.getByText("Verdict: licensee(s) accused").waitFor();
    await shot(page, "trace-verdict");
    await axe(page, "trace-verdict");
  });

  await step("the audit log names the operator for each action", async () => {
    await page.goto(DASH + "/dashboard/audit");
    for (const action of ["licensee.block", "key.revoke", "trace.run", "dashboard.login"]) {
      const row = page.locator("tr", { hasText: action }).filter({ hasText: OPERATOR }).first();
      await row.waitFor();
    }
    await shot(page, "audit");
    await axe(page, "audit");
  });

  await step("price books and the phone width", async () => {
    await page.goto(DASH + "/dashboard/price-books");
    await axe(page, "price-books");
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(DASH + "/dashboard/licensees/nimbus");
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    check(width <= 390, `the page scrolls sideways at phone width: ${width}px`);
    await shot(page, "licensee-nimbus-phone");
    await axe(page, "licensee-phone");
    await page.setViewportSize({ width: 1280, height: 800 });
  });

  await step("the keyboard reaches the skip link and the navigation", async () => {
    await page.goto(DASH + "/dashboard");
    await page.keyboard.press("Tab");
    const first = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
    check(first === "Skip to content", `first tab stop: ${first}`);
    await page.keyboard.press("Tab");
    const second = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
    check(second === "Overview", `second tab stop: ${second}`);
  });

  const viewerContext = await browser.newContext({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
  const viewerPage = await viewerContext.newPage();
  watch(viewerPage, VIEWER);

  await step("a viewer cannot block", async () => {
    await login(viewerPage, VIEWER);
    await viewerPage.goto(DASH + "/dashboard/licensees/nimbus");
    check((await viewerPage.getByRole("button", { name: /^Block / }).count()) === 0, "a viewer sees a block button");
    await viewerPage.getByText(/can read this page/).waitFor();
    await shot(viewerPage, "licensee-as-viewer");
    // Even a hand-made request with the session's own CSRF token is refused, with a page.
    const csrf = await viewerPage.locator('form[action="/dashboard/logout"] input[name="csrf"]').getAttribute("value");
    const refused = await viewerPage.evaluate(async (csrf) => {
      const response = await fetch("/dashboard/licensees/nimbus/block", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: `reason=viewer&csrf=${csrf}`,
      });
      return { status: response.status, text: await response.text() };
    }, csrf);
    check(refused.status === 403, `viewer block: ${refused.status}`);
    check(refused.text.includes("needs the operator role"), "the refusal says why");
    check((await api(KEYS.nimbus, "/2/usage/tweets")).status === 200, "nimbus still served");
  });

  await step("no console errors", async () => {
    // Chromium logs every 4xx as a failed resource load: the deliberate wrong password (401 on
    // the login page) and the viewer's hand-made block (403) are expected; nothing else is.
    const expected = (e) =>
      (e.includes("/dashboard/login:") && e.includes("status of 401")) || (e.startsWith(VIEWER + " ") && e.includes("status of 403"));
    const unexpected = consoleErrors.filter((e) => !expected(e));
    check(unexpected.length === 0, unexpected.join("\n"));
  });
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}

console.log(`screenshots and axe reports: ${ARTIFACTS}`);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
