// Drives headless Chromium over the DevTools protocol against /ui, as a person would: paste a
// READ token, see the fleet's two runtimes listed, pick one and see its team and picture (the
// trio's three agents, then studio's twelve), hand-edit the trio's runtime, see a drift item
// appear on it and not on the other. Writes screenshots to the artifacts dir. Node >= 22 (global WebSocket).
//
// Usage: node check.mjs CHROMIUM BASE_URL READ_TOKEN CONFIG_PATH ARTIFACTS_DIR
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [chromium, base, token, configPath, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });
const fail = (message) => { console.error("UI CHECK FAILED: " + message); process.exit(1); };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const profile = mkdtempSync(join(tmpdir(), "jhf-warp-ui-"));
const browser = spawn(chromium, [
  "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
  "--remote-debugging-port=0", `--user-data-dir=${profile}`, "--window-size=1400,1000", "about:blank",
], { stdio: ["ignore", "ignore", "pipe"] });
const killer = setTimeout(() => { browser.kill("SIGKILL"); fail("timed out after 120 s"); }, 120_000);

const endpoint = await new Promise((resolve, reject) => {
  let seen = "";
  browser.stderr.on("data", (chunk) => {
    seen += chunk;
    const match = seen.match(/DevTools listening on (ws:\/\/\S+)/);
    if (match) resolve(match[1]);
  });
  browser.on("exit", (code) => reject(new Error(`chromium exited ${code}: ${seen}`)));
}).catch((error) => fail(error.message));

const socket = new WebSocket(endpoint);
await new Promise((resolve) => socket.addEventListener("open", resolve, { once: true }));
let nextId = 1;
const waiting = new Map();
socket.addEventListener("message", (event) => {
  const message = JSON.parse(event.data);
  if (message.id && waiting.has(message.id)) {
    const { resolve, reject } = waiting.get(message.id);
    waiting.delete(message.id);
    message.error ? reject(new Error(JSON.stringify(message.error))) : resolve(message.result);
  }
});
const send = (method, params = {}, sessionId) => new Promise((resolve, reject) => {
  const id = nextId++;
  waiting.set(id, { resolve, reject });
  socket.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
});

const { targetId } = await send("Target.createTarget", { url: "about:blank" });
const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
const page = (method, params) => send(method, params, sessionId);
const evaluate = async (expression) => {
  const result = await page("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
  if (result.exceptionDetails) throw new Error(JSON.stringify(result.exceptionDetails));
  return result.result.value;
};
const until = async (what, expression, seconds = 30) => {
  for (let i = 0; i < seconds * 4; i++) {
    const value = await evaluate(expression);
    if (value) return value;
    await sleep(250);
  }
  fail(`${what}: not seen within ${seconds} s; status: ${await evaluate("document.getElementById('status').textContent")}`);
};
const screenshot = async (name) => {
  const { data } = await page("Page.captureScreenshot", { format: "png" });
  writeFileSync(join(artifacts, name), Buffer.from(data, "base64"));
  console.log(`screenshot ${join(artifacts, name)}`);
};

await page("Page.enable");
await page("Runtime.enable");
await page("Page.navigate", { url: `${base}/ui` });
await until("the page", "document.readyState === 'complete' && !!document.getElementById('use-token')");
// A person pastes the token and presses the button.
await evaluate(`document.getElementById('token').value = ${JSON.stringify(token)}; document.getElementById('use-token').click(); true`);
const listed = await until("the fleet's two runtimes, healthy",
  "(() => { const r = [...document.querySelectorAll('#runtimes tr.runtime-row')]; return r.length === 2 && r.every(x => x.children[1].textContent === 'HEALTHY') ? r.map(x => x.dataset.name) : null })()");
if (JSON.stringify(listed) !== JSON.stringify(["editorial", "studio"])) fail(`runtimes ${JSON.stringify(listed)}`);
console.log(`runtimes listed: ${listed.join(", ")}`);
// A click on a runtime's row shows that runtime's team.
await evaluate(`document.querySelector('#runtimes tr[data-name="studio"]').click(); true`);
const studio = await until("studio's twelve agents drawn", "(() => { const n = document.querySelectorAll('#picture svg g.node').length; return document.querySelectorAll('#agents li').length === 12 && n === 12 ? n : null })()");
console.log(`studio: ${studio} agents drawn`);
await screenshot("ui-studio.png");
await evaluate(`document.querySelector('#runtimes tr[data-name="editorial"]').click(); true`);
const agents = await until("the trio's three agents",
  "(() => { const a = [...document.querySelectorAll('#agents li')].map(li => li.textContent); return a.length === 3 ? a : null })()");
if (JSON.stringify(agents) !== JSON.stringify(["lead", "research", "writer"])) fail(`agents ${JSON.stringify(agents)}`);
const drawn = await until("the picture", "document.querySelectorAll('#picture svg g.node').length");
if (drawn !== 3) fail(`${drawn} agents drawn`);
const inUrl = await evaluate("location.href");
if (inUrl.includes(token)) fail("the token is in the URL");
console.log(`agents shown: ${agents.join(", ")}; ${drawn} drawn`);
await screenshot("ui-trio.png");

// A hand edit of the runtime: the writer may now message an agent nobody declared.
const config = readFileSync(configPath, "utf8");
const edited = config.replace('allow: ["lead", "research", "writer"]', 'allow: ["lead", "research", "writer", "ghost"]');
if (edited === config) fail("the fixture did not contain the expected allow list");
writeFileSync(configPath, edited);
const rows = await until("a drift item after the hand edit", "document.querySelectorAll('#drift tr.drift-item').length", 45);
console.log(`drift items shown after the hand edit: ${rows}`);
const listedDrift = await until("editorial's drift in the runtime list",
  "(() => { const d = [...document.querySelectorAll('#runtimes tr.runtime-row')].map(r => [r.dataset.name, Number(r.children[4].textContent)]); return d.find(([n, c]) => n === 'editorial' && c > 0) ? d : null })()");
console.log(`drift per runtime in the list: ${JSON.stringify(listedDrift)}`);
if (listedDrift.find(([name]) => name === "studio")[1] !== 0) fail("the hand edit shows as drift on studio");
await screenshot("ui-drift.png");

clearTimeout(killer);
browser.kill("SIGKILL");
socket.close();
process.exit(0);
