// vigil's HTML report in a real browser: headless Chromium (Debian's chromium) driven by
// Playwright. Usage: node report.test.mjs EXAMPLE_REPORT LARGE_REPORT LARGE_COUNT SCREENSHOT_DIR
// [PLAIN_REPORT]
//
// The example report is of the example day plus two hostile events whose user agent, command
// line and parent command hold markup (tests/browser/hostile-*.jsonl). The large one holds
// LARGE_COUNT findings. PLAIN_REPORT (optional), the bundled example's report alone, gives the
// README's screenshot. Exits non-zero, naming the check, when one fails.
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";

const [examplePath, largePath, largeCount, shots, plainPath] = process.argv.slice(2);
if (!examplePath || !largePath || !largeCount || !shots) {
  console.error("usage: node report.test.mjs EXAMPLE_REPORT LARGE_REPORT LARGE_COUNT SCREENSHOT_DIR [PLAIN_REPORT]");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(shots, { recursive: true });

let failures = 0;
function check(name, ok, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${detail ? `: ${detail}` : ""}`);
  if (!ok) failures += 1;
}

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // No sandbox as root; nothing may reach the network (the report must open offline).
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

async function open(path) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems = [];
  page.on("pageerror", error => problems.push(`page error: ${error.message}`));
  page.on("console", message => { if (message.type() === "error") problems.push(`console error: ${message.text()}`); });
  page.on("request", request => {
    if (!request.url().startsWith("file:")) problems.push(`network request: ${request.url()}`);
  });
  await page.goto(pathToFileURL(resolve(path)).href);
  await page.waitForSelector("body[data-ready=true]", { state: "attached", timeout: 120_000 });
  return { page, problems };
}

try {
  const { page, problems } = await open(examplePath);

  // The summary and the time range covered.
  const range = await page.textContent("#report-range");
  check("the header gives the events' time range", /2024-03-12 .*2024-03-12/.test(range), range);
  const critical = await page.textContent('.card[data-severity="Critical"] b');
  check("the summary counts the Critical findings", Number(critical) >= 1, critical);

  // The attack sequence as a timeline of its signals, audit and runtime.
  const dots = await page.locator("#sequences .timeline circle.signal").count();
  const listed = await page.locator("#sequences .signal-table tbody tr").count();
  check("the sequence timeline draws every signal", dots >= 10 && dots === listed, `${dots} drawn, ${listed} listed`);
  const sources = await page.$$eval("#sequences .signal-table tbody tr td:nth-child(2)", cells => [...new Set(cells.map(c => c.textContent))].sort());
  check("the timeline spans audit and runtime", JSON.stringify(sources) === '["audit","runtime"]', JSON.stringify(sources));
  await page.locator("#sequences .sequence").first().screenshot({ path: join(shots, "report-sequence.png") });

  // A runtime finding's lineage, drawn as a tree down to the process.
  await page.fill("#text-filter", "SuspiciousCommand");
  await page.locator("#finding-table tbody tr.finding").first().click();
  const nodes = await page.$$eval("#detail ul.lineage .process-node", spans => spans.map(s => s.textContent));
  check("the lineage tree shows ancestors and the process", nodes.length >= 2 && nodes[nodes.length - 1].startsWith("/bin/chmod"), JSON.stringify(nodes));
  const depth = await page.$$eval("#detail ul.lineage ul", lists => lists.length);
  check("the lineage nests each process under its parent", depth === nodes.length - 1, `${depth} nested lists for ${nodes.length} processes`);

  // Markup from events is text: shown as written, never run, never parsed into elements.
  const markup = await page.textContent("#detail ul.lineage");
  check("a command line holding markup is shown as text", markup.includes('<img src=x onerror="window.__pwned = 3">') && markup.includes("<script>window.__pwned = 4</script>"), markup);
  await page.fill("#text-filter", "__pwned = 1");
  await page.locator("#finding-table tbody tr.finding").first().click();
  const detail = await page.textContent("#detail");
  check("a user agent holding <script> is shown as text", detail.includes("<script>window.__pwned = 1</script>"), detail.slice(0, 300));
  const pwned = await page.evaluate(() => window.__pwned);
  check("no event's script ran", pwned === undefined, String(pwned));
  const injected = await page.locator("img").count() + await page.locator("script").count();
  check("no element came from an event", injected === 2, `${injected} img and script elements (the page has 2 scripts)`);
  await page.screenshot({ path: join(shots, "report-detail.png"), fullPage: false });

  // Filtering by severity: only Critical left.
  await page.fill("#text-filter", "");
  for (const severity of ["High", "Medium", "Low"]) await page.uncheck(`.severity-filter[value=${severity}]`);
  const shown = await page.$$eval("#finding-table tbody tr.finding", rows => rows.map(r => r.dataset.severity));
  check("filtering by severity leaves only that severity", shown.length >= 1 && shown.every(s => s === "Critical"), JSON.stringify(shown));
  for (const severity of ["High", "Medium", "Low"]) await page.check(`.severity-filter[value=${severity}]`);

  // Sorting by count, most first.
  await page.click('#finding-table th[data-key="count"]');
  const counts = await page.$$eval("#finding-table tbody tr.finding td:nth-child(4)", cells => cells.map(c => Number(c.textContent)));
  check("sorting by count orders the rows", counts.every((c, i) => i === 0 || counts[i - 1] >= c), JSON.stringify(counts.slice(0, 8)));

  await page.click('#finding-table th[data-key="severity"]');
  await page.screenshot({ path: join(shots, "report.png"), fullPage: true });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(shots, "report-top.png") });
  check("the example report opens without errors or network requests", problems.length === 0, problems.join("; "));
  await page.close();

  // A large report: paged, one page of rows in the document.
  const large = await open(largePath);
  const rows = await large.page.locator("#finding-table tbody tr").count();
  const info = await large.page.textContent("#page-info");
  check("a large report draws one page of rows", rows === 50, `${rows} rows`);
  check("a large report pages through all findings", info === `page 1 of ${Math.ceil(Number(largeCount) / 50)}`, info);
  await large.page.click("#next-page");
  const second = await large.page.textContent("#page-info");
  check("the next page is a click away", second.startsWith("page 2 of"), second);
  await large.page.fill("#text-filter", "finding-99999");
  const found = await large.page.locator("#finding-table tbody tr").count();
  check("filtering a large report finds one finding", found === 1, `${found} rows`);
  // A baseline's finding: what was observed against what is usual.
  await large.page.fill("#text-filter", "finding-0");
  await large.page.locator("#finding-table tbody tr.finding").first().click();
  const anomaly = await large.page.$$eval("#detail table.anomaly tbody td", cells => cells.map(c => c.textContent));
  check("a baseline finding shows observed against usual", JSON.stringify(anomaly) === '["principal:alice","namespace","kube-system","UNSEEN","shop, payments"]', JSON.stringify(anomaly));
  check("the large report opens without errors or network requests", large.problems.length === 0, large.problems.join("; "));
  if (plainPath) {
    const plain = await open(plainPath);
    await plain.page.screenshot({ path: join(shots, "report-readme.png") });
    check("the plain example's report opens without errors", plain.problems.length === 0, plain.problems.join("; "));
  }
} catch (error) {
  check("the browser session", false, error.stack || String(error));
} finally {
  await browser.close();
}
if (failures) {
  console.error(`${failures} report check(s) failed`);
  process.exit(1);
}
console.log("report: every check passed");
