// Opens one cluster of the dashboard in Debian's headless chromium (puppeteer-core) and
// prints, as JSON, what it shows of a forked archive: the fleet row's state and reasons,
// the cluster page's fork list, and the restore helper's plan.
//
// Env: WALGATE_URL, WALGATE_TOKEN (a viewer token), WALGATE_CLUSTER, WALGATE_SCREENSHOTS
// (a directory), CHROMIUM (default /usr/bin/chromium).
"use strict";
const path = require("path");
const { run, signIn } = require("./session.cjs");

const url = process.env.WALGATE_URL;
const cluster = process.env.WALGATE_CLUSTER;

run(async (page, seen) => {
  await page.goto(url + "/login", { waitUntil: "networkidle0" });
  await signIn(page, process.env.WALGATE_TOKEN);
  const row = `table.fleet tbody tr[data-cluster="${cluster}"]`;
  await page.waitForSelector(row);
  seen.state = await page.$eval(row, (r) => r.dataset.state);
  seen.reasons = await page.$eval(row, (r) => (r.querySelector(".reasons") || {}).textContent || "");

  await page.goto(`${url}/clusters/${cluster}`, { waitUntil: "networkidle0" });
  seen.forks = await page.$$eval("#forks li", (items) => items.map((i) => i.textContent));
  seen.forkNote = await page.$$eval("#forks p", (ps) => ps.map((p) => p.textContent).join(" "));
  // The restore helper with no time: the plan it shows.
  await Promise.all([page.waitForNavigation(), page.click("#restore button[type=submit]")]);
  seen.restore = await page.$eval("#restore", (s) => s.textContent);
  await page.screenshot({ path: path.join(process.env.WALGATE_SCREENSHOTS, `cluster-${cluster}-fork.png`), fullPage: true });
});
