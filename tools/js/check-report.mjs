// Opens a peerstorm report.html in headless Chromium (Debian's, through playwright-core) and
// prints what a reader would see, as JSON: console errors, every request the page made, the
// charts (SVG elements with their titles and how many marks each draws) and the headings; and
// saves a full-page screenshot. Usage: node check-report.mjs REPORT.html SHOT.png
import { launch } from "./chromium.mjs";
import { pathToFileURL } from "node:url";
import { resolve } from "node:path";

const [file, shot] = process.argv.slice(2);
if (!file || !shot) {
  console.error("usage: node check-report.mjs REPORT.html SHOT.png");
  process.exit(2);
}
const url = pathToFileURL(resolve(file)).href;
const { context, close } = await launch();
try {
  const page = await context.newPage();
  const errors = [];
  const requests = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(url, { waitUntil: "load" });
  const dom = await page.evaluate(() => ({
    title: document.title,
    headings: [...document.querySelectorAll("h1,h2")].map((h) => h.textContent),
    charts: [...document.querySelectorAll("svg.chart")].map((s) => ({
      title: s.querySelector("title")?.textContent ?? "",
      marks: s.querySelectorAll("path.series, rect.bar, circle.point").length,
      points: s.querySelectorAll("circle.point").length,
      width: s.getBoundingClientRect().width,
      height: s.getBoundingClientRect().height,
    })),
    failCells: document.querySelectorAll("td.fail").length,
    classRows: [...document.querySelectorAll("table.classes")].map((t) => t.querySelectorAll("tr").length - 1),
    trickleRows: document.querySelectorAll("table.trickle tr").length - 1,
    sweepRows: document.querySelectorAll("table.sweep tr").length - 1,
    emptyNotes: [...document.querySelectorAll("text.empty")].map((t) => t.textContent),
    wideTables: [...document.querySelectorAll("table")].map((t) => t.getBoundingClientRect().width).filter((w) => w > 1280),
    okCells: document.querySelectorAll("td.ok").length,
  }));
  await page.screenshot({ path: shot, fullPage: true });
  console.log(JSON.stringify({ errors, requests, ...dom }));
} finally {
  await close();
}
