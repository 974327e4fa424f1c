// How the board page copes with a large city: 10,000 sensors in 2,500
// grids and 1,000 active warnings, then a stream of changes. The page and
// its script are the real ones (board/); the snapshot and the event
// stream come from a small server here, so the figure is the page's own
// (yujing's side is measured by `yujing bench`).
//
//   node tests/browser/bench.mjs [results.json]
//
// Writes the results (milliseconds) to the file and prints them.
import { chromium } from "playwright-core";
import http from "node:http";
import fs from "node:fs";
import path from "node:path";

const SENSORS = 10000, PER_GRID = 4, WARNINGS = 1000, UPDATES = 200;
const here = path.dirname(new URL(import.meta.url).pathname);
const board = path.join(here, "../../board");
const grades = ["blue", "yellow", "orange", "red"];

const sensors = [];
for (let i = 0; i < SENSORS; i++) {
  const g = Math.floor(i / PER_GRID);
  sensors.push({
    id: `s${i}`, kind: "air", lat: 29.3 + (g % 50) * 0.01 + (i % PER_GRID) * 0.001,
    lon: 106.2 + Math.floor(g / 50) * 0.012, grid: `g${g}`, street: `st${Math.floor(g / 10)}`,
    district: `d${Math.floor(g / 250)}`, district_code: `5001${String(Math.floor(g / 250)).padStart(2, "0")}`,
  });
}
const alert = (n, grade) => ({
  warning_id: `w${n}`, grade, rule: { id: "pm25-1h", description: "PM2.5 hourly mean", category: "env", unit: "ug/m3" },
  group: { by: "grid", key: `g${(n * 7) % (SENSORS / PER_GRID)}`, district: `d${n % 10}` },
  value: 80 + n % 200, threshold: 75, started_at: new Date(Date.now() - n * 60000).toISOString(),
  event_time: new Date(Date.now() - n * 1000).toISOString(),
});
const warnings = Array.from({ length: WARNINGS }, (_, n) => alert(n, grades[n % 4]));

let stream = null;
const server = http.createServer((req, res) => {
  const file = { "/board": "index.html", "/board/board.js": "board.js", "/board/board.css": "board.css" }[req.url];
  if (file) {
    const type = file.endsWith(".js") ? "text/javascript" : file.endsWith(".css") ? "text/css" : "text/html";
    res.writeHead(200, { "content-type": `${type}; charset=utf-8` });
    return res.end(fs.readFileSync(path.join(board, file)));
  }
  if (req.url === "/api/v1/board") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify({ sensors, warnings, responses: {} }));
  }
  if (req.url === "/api/v1/board/events") {
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    res.write(": open\n\n");
    stream = res;
    return;
  }
  res.writeHead(404);
  res.end();
});
await new Promise((done) => server.listen(0, "127.0.0.1", done));
const url = `http://127.0.0.1:${server.address().port}/board`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run"],
});
const page = await (await browser.newContext({ viewport: { width: 1400, height: 850 } })).newPage();
const started = Date.now();
await page.goto(url);
await page.waitForFunction(() => document.querySelector("li.more"), null, { timeout: 120000 });
const first_load_ms = Date.now() - started;

// One change at a time: from the event written to the page showing it.
const latencies = [];
for (let i = 0; i < UPDATES; i++) {
  const n = WARNINGS + i;
  const sent = Date.now();
  const fresh = { ...alert(n, "red"), event_time: new Date().toISOString() };
  stream.write(`data: ${JSON.stringify({ kind: "alert", alert: fresh })}\n\n`);
  await page.waitForFunction((id) => !!document.querySelector(`li.warning[data-warning-id="${id}"]`), `w${n}`);
  latencies.push(Date.now() - sent);
}
latencies.sort((a, b) => a - b);
const results = {
  sensors: SENSORS, grids: SENSORS / PER_GRID, warnings: WARNINGS, updates: UPDATES,
  first_load_ms,
  update_ms_median: latencies[Math.floor(UPDATES / 2)],
  update_ms_p95: latencies[Math.floor(UPDATES * 0.95)],
  chromium: browser.version(),
  measured_at: new Date().toISOString(),
};
fs.writeFileSync(process.argv[2] || "board-bench.json", JSON.stringify(results, null, 2) + "\n");
console.log(JSON.stringify(results, null, 2));
await browser.close();
server.close();
stream?.end();
process.exit(0);
