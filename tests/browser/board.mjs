// Drives Debian's Chromium (headless) against yujing's board for
// tests/it/board.rs. Reads one JSON command per line on stdin, answers one
// JSON line on stdout per command:
//   {"cmd":"open","url":"http://…/board","lang":"zh-CN"}
//   {"cmd":"wait_rows","n":3}         → {"ids":[…],"grades":{id:grade},"cells":{grid:grade},"buttons":{id:n}}
//   {"cmd":"wait_change","has":"s002","lacks":"s000"} → the same, once the rows changed so
//   {"cmd":"sign_in","token":"…"}     → the same, once the unit's warnings are known
//   {"cmd":"click","warning":"…","action":"acknowledge","until":"已签收"}
//   {"cmd":"timeline","grid":"g0"}     → {"transitions":["resolved","raised"]} (newest first)
//   {"cmd":"wait_lost"}               → once the page shows the connection lost
//   {"cmd":"lang","value":"en"}
//   {"cmd":"screenshot","path":"…"}
//   {"cmd":"measure"}                 → {"render_ms":…}
//   {"cmd":"errors"}                  → {"errors":[console errors and page errors]}
//   {"cmd":"close"}
import { chromium } from "playwright-core";
import readline from "node:readline";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run"],
});
let page;
const errors = [];

async function rows() {
  return page.evaluate(() => {
    const out = { ids: [], grades: {}, cells: {}, buttons: {}, responses: {} };
    for (const li of document.querySelectorAll("li.warning")) {
      const id = li.dataset.warningId;
      out.ids.push(id);
      out.grades[id] = li.dataset.grade;
      out.buttons[id] = li.querySelectorAll("button[data-action]").length;
      out.responses[id] = li.querySelector(".response")?.textContent || "";
    }
    for (const c of document.querySelectorAll("circle.cell")) out.cells[c.dataset.grid] = c.dataset.grade;
    out.connection_lost = !document.getElementById("connection").hidden;
    out.districts = document.querySelectorAll("path.district").length;
    return out;
  });
}

const commands = {
  async open({ url, lang }) {
    const context = await browser.newContext({ locale: lang, viewport: { width: 1400, height: 850 } });
    page = await context.newPage();
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(url);
    await page.waitForSelector("#map circle.cell");
    return rows();
  },
  async wait_rows({ n }) {
    await page.waitForFunction((n) => document.querySelectorAll("li.warning").length === n, n, { timeout: 30000 });
    return rows();
  },
  // Until a row's id contains `has` and none contains `lacks`.
  async wait_change({ has, lacks }) {
    await page.waitForFunction(([has, lacks]) => {
      const ids = [...document.querySelectorAll("li.warning")].map((l) => l.dataset.warningId);
      return ids.some((id) => id.includes(has)) && !ids.some((id) => id.includes(lacks));
    }, [has, lacks], { timeout: 30000 });
    return rows();
  },
  async sign_in({ token }) {
    await page.fill("#token", token);
    await page.click("#sign-in");
    await page.waitForFunction(() => !document.getElementById("signed-in").hidden);
    await page.waitForTimeout(1000); // the unit's warnings, from the API
    return rows();
  },
  async click({ warning, action, until }) {
    const li = page.locator(`li.warning[data-warning-id="${warning}"]`);
    await li.locator(`button[data-action="${action}"]`).click();
    await page.waitForFunction(([id, text]) => {
      const li = [...document.querySelectorAll("li.warning")].find((l) => l.dataset.warningId === id);
      return li && li.querySelector(".response")?.textContent.includes(text);
    }, [warning, until], { timeout: 30000 });
    return rows();
  },
  // Click a grid's cell: its last 24 h of transitions.
  async timeline({ grid }) {
    await page.click(`circle.cell[data-grid="${grid}"]`);
    await page.waitForFunction(() => !document.getElementById("timeline").hidden);
    const transitions = await page.evaluate(() =>
      [...document.querySelectorAll("#timeline-list li[data-transition]")].map((l) => l.dataset.transition));
    return { transitions };
  },
  // Until the page says its connection to yujing is lost.
  async wait_lost() {
    await page.waitForFunction(() => !document.getElementById("connection").hidden, null, { timeout: 30000 });
    return rows();
  },
  async lang({ value }) {
    await page.selectOption("#lang", value);
    return rows();
  },
  async screenshot({ path }) {
    await page.screenshot({ path, fullPage: false });
    return {};
  },
  // Time to render the whole list and map once (a full redraw).
  async measure() {
    const render_ms = await page.evaluate(() => new Promise((done) => {
      const start = performance.now();
      document.getElementById("f-grade").dispatchEvent(new Event("change"));
      requestAnimationFrame(() => requestAnimationFrame(() => done(performance.now() - start)));
    }));
    const rows = await page.evaluate(() => document.querySelectorAll("li.warning").length);
    return { render_ms, rows };
  },
  async errors() {
    return { errors };
  },
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const command = JSON.parse(line);
  if (command.cmd === "close") break;
  try {
    const result = await commands[command.cmd](command);
    console.log(JSON.stringify({ ok: true, ...result }));
  } catch (e) {
    console.log(JSON.stringify({ ok: false, error: String(e) }));
  }
}
await browser.close();
process.exit(0); // stdin stays open otherwise
