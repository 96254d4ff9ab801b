// Drives the dashboard in Debian's headless chromium over the DevTools protocol
// (puppeteer-core: no browser download) and prints what it saw as JSON.
//
// Env: WALGATE_URL, WALGATE_TOKEN (a viewer token), WALGATE_SCREENSHOTS (a directory),
// WALGATE_CLUSTER_GAP (the cluster with a WAL gap), WALGATE_CLUSTER_OK (a healthy one),
// CHROMIUM (default /usr/bin/chromium).
"use strict";
const path = require("path");
const { run, signIn } = require("./session.cjs");

const url = process.env.WALGATE_URL;
const shots = process.env.WALGATE_SCREENSHOTS;

run(async (page, seen) => {
  // Signed out: the fleet sends us to the login page.
  await page.goto(url + "/", { waitUntil: "networkidle0" });
  seen.redirectedTo = new URL(page.url()).pathname;

  // A bad token is refused, on the login page, with the reason.
  await signIn(page, "not-a-token");
  seen.refused = await page.$eval(".error", (e) => e.textContent);
  seen.refusedAt = new URL(page.url()).pathname;
  await page.screenshot({ path: path.join(shots, "login-refused.png"), fullPage: true });
  // The refusal is a 401, which chromium logs; from here on nothing should fail.
  seen.consoleErrors = [];

  // The right token opens the fleet.
  await signIn(page, process.env.WALGATE_TOKEN);
  seen.afterLogin = new URL(page.url()).pathname;
  await page.waitForSelector("table.fleet");
  seen.states = await page.$$eval("table.fleet tbody tr", (rows) =>
    Object.fromEntries(rows.map((r) => [r.dataset.cluster, r.dataset.state])));
  seen.order = await page.$$eval("table.fleet tbody tr", (rows) => rows.map((r) => r.dataset.cluster));
  seen.reasons = await page.$$eval("table.fleet tbody tr", (rows) =>
    Object.fromEntries(rows.map((r) => [r.dataset.cluster, (r.querySelector(".reasons") || {}).textContent || ""])));
  await page.screenshot({ path: path.join(shots, "fleet.png"), fullPage: true });

  // Filtering by state, through the page's own links.
  await Promise.all([page.waitForNavigation(), page.click("nav.states a[data-state=failing]")]);
  seen.failingOnly = await page.$$eval("table.fleet tbody tr", (rows) => rows.map((r) => r.dataset.cluster));

  // Sorting by name, then reversed, through the column heading.
  await page.goto(url + "/", { waitUntil: "networkidle0" });
  const byName = async () => {
    await Promise.all([page.waitForNavigation(), page.click("table.fleet th:first-child a")]);
    return page.$$eval("table.fleet tbody tr", (rows) => rows.map((r) => r.dataset.cluster));
  };
  seen.byName = await byName();
  seen.byNameDesc = await byName();

  // The cluster with a gap: its timeline shows the missing segment.
  const gap = process.env.WALGATE_CLUSTER_GAP;
  await Promise.all([page.waitForNavigation(), page.goto(url + "/clusters/" + gap)]);
  seen.gapState = await page.$eval("h1 .badge", (e) => e.textContent);
  seen.gapRows = await page.$$eval("#timelines tr.gap ul.gaps li", (lis) => lis.map((l) => l.textContent));
  seen.gapProblems = await page.$$eval("#timelines ul.problems li", (lis) => lis.map((l) => l.textContent));
  await page.screenshot({ path: path.join(shots, "cluster-" + gap + ".png"), fullPage: true });

  // The healthy cluster: charts, backups, and a restore plan for the end of the archive.
  const ok = process.env.WALGATE_CLUSTER_OK;
  await page.goto(url + "/clusters/" + ok, { waitUntil: "networkidle0" });
  seen.okState = await page.$eval("h1 .badge", (e) => e.textContent);
  seen.okBars = await page.$$eval("figure.chart rect.bar", (r) => r.length);
  seen.okBackups = await page.$$eval("#backups tbody tr", (r) => r.length);
  await Promise.all([page.waitForNavigation(), page.click("#restore button[type=submit]")]);
  seen.restoreCommands = await page.$eval("#restore pre.commands", (e) => e.textContent);
  await page.screenshot({ path: path.join(shots, "cluster-" + ok + ".png"), fullPage: true });

  // The API explorer lists every operation and sends requests with a typed token.
  await page.goto(url + "/api", { waitUntil: "networkidle0" });
  await page.waitForSelector("details.op");
  seen.operations = await page.$$eval("details.op", (d) => d.map((x) => x.dataset.operation));
  await page.type("#api-token", process.env.WALGATE_TOKEN);
  const op = await page.$('details.op[data-operation="GET /v1/clusters"]');
  await op.$eval("summary", (s) => s.click());
  await (await op.$("button")).click();
  await page.waitForFunction((el) => /^\d{3} /.test(el.querySelector("pre").textContent), {}, op);
  seen.explorerAnswer = (await op.$eval("pre", (e) => e.textContent)).split("\n")[0];
  await page.screenshot({ path: path.join(shots, "api-explorer.png"), fullPage: false });

  // Signing out ends the session.
  await page.goto(url + "/", { waitUntil: "networkidle0" });
  await Promise.all([page.waitForNavigation(), page.click("header form button")]);
  await page.goto(url + "/", { waitUntil: "networkidle0" });
  seen.afterLogout = new URL(page.url()).pathname;
});
