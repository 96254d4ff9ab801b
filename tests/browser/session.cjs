// What every dashboard script shares: Debian's headless chromium driven over the DevTools
// protocol by puppeteer-core (no browser download), console errors collected, the JSON
// of what was seen printed at the end.
"use strict";
const puppeteer = require("puppeteer-core");

// Runs `body(page, seen)` in a new browser, then prints `seen` as JSON; exits 1 on error.
// `seen.consoleErrors` collects the page's console errors and uncaught exceptions.
function run(body) {
  (async () => {
    const browser = await puppeteer.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      // Root in CI containers has no user namespaces for chromium's sandbox.
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
    const seen = { consoleErrors: [] };
    try {
      const page = await browser.newPage();
      page.on("console", (m) => { if (m.type() === "error") seen.consoleErrors.push(m.text()); });
      page.on("pageerror", (e) => seen.consoleErrors.push(String(e)));
      await page.setViewport({ width: 1400, height: 900 });
      await body(page, seen);
    } finally {
      await browser.close();
    }
    process.stdout.write(JSON.stringify(seen));
  })().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}

// Types `token` into the login page the browser is on and submits it.
async function signIn(page, token) {
  await page.type("#token", token);
  await Promise.all([page.waitForNavigation(), page.click("button[type=submit]")]);
}

module.exports = { run, signIn };
