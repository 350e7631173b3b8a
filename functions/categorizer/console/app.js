// categorizer console: plain ES module, no dependencies, no build step.
// Every string that comes from a user, a file or the API is put on the page with textContent, never as HTML.

import { createReview, highlighted } from "./review.js";

const API = new URL("../v1/", window.location.href);
const session = { token: null, username: null, labels: [], loaded: {} };
let config = null;

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else if (name === "on") for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

const pct = (x) => (x == null ? "–" : `${(100 * x).toFixed(1)}%`);
const num = (x) => (x == null ? "–" : Number(x).toLocaleString("en"));

function bar(fraction, label) {
  const fill = el("span", { class: "fill" });
  fill.style.width = `${Math.max(0, Math.min(1, fraction)) * 100}%`;
  return el("span", { class: "bar", role: "img", "aria-label": label }, fill);
}

function setState(node, text, kind = "") {
  node.textContent = text;
  node.classList.remove("loading", "ok", "warn", "error", "info");
  node.classList.add("state");
  if (kind) node.classList.add(kind);
  node.hidden = !text;
}

function banner(text, kind = "info") {
  setState($("banner"), text, kind);
}

// ------------------------------------------------------------------------------------------------ API calls
class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { method = "GET", body, raw = false, accept } = {}) {
  const headers = { Authorization: `Bearer ${session.token}` };
  // API Gateway returns binary bodies only when the first Accept type is a binary media type.
  if (accept) headers.Accept = accept;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(new URL(path, API), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "network", "The API cannot be reached. Check your connection and retry.");
  }
  if (response.status === 401) {
    signOut("Your session has expired or is no longer valid. Please sign in again.");
    throw new ApiError(401, "unauthenticated", "Signed out.");
  }
  if (!response.ok) {
    let code = `http_${response.status}`;
    let message = `The API answered ${response.status}.`;
    try {
      const error = (await response.json()).error;
      code = error.code;
      message = error.message;
    } catch { /* not our error shape */ }
    throw new ApiError(response.status, code, message);
  }
  return raw ? response : response.json();
}

// ------------------------------------------------------------------------------------------------ sign in
async function cognito(target, payload) {
  const response = await fetch(config.cognito_endpoint, {
    method: "POST",
    headers: {
      "Content-Type": "application/x-amz-json-1.1",
      "X-Amz-Target": `AWSCognitoIdentityProviderService.${target}`,
    },
    body: JSON.stringify(payload),
    credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const type = String(data.__type || "").split("#").pop();
    const messages = {
      NotAuthorizedException: "Wrong user name or password.",
      UserNotFoundException: "Wrong user name or password.",
      PasswordResetRequiredException: "This account needs a password reset.",
      UserNotConfirmedException: "This account is not confirmed yet.",
    };
    throw new Error(messages[type] || data.message || `Sign-in failed (${response.status}).`);
  }
  return data;
}

async function signIn(event) {
  event.preventDefault();
  const error = $("sign-in-error");
  error.hidden = true;
  const username = $("username").value.trim();
  const passwordField = $("password");
  const button = $("sign-in-button");
  button.disabled = true;
  button.textContent = "Signing in…";
  try {
    if (!config?.client_id) throw new Error("Sign-in is not configured on this deployment.");
    const result = await cognito("InitiateAuth", {
      AuthFlow: "USER_PASSWORD_AUTH", ClientId: config.client_id,
      AuthParameters: { USERNAME: username, PASSWORD: passwordField.value },
    });
    if (!result.AuthenticationResult) {
      throw new Error(`Cognito asks for ${result.ChallengeName || "another step"}, which this page does not ` +
        "support yet; finish it with the AWS CLI first.");
    }
    session.token = result.AuthenticationResult.AccessToken;
    session.username = username;
    passwordField.value = "";
    showSignedIn();
  } catch (err) {
    error.textContent = err.message || "Sign-in failed.";
    error.hidden = false;
  } finally {
    button.disabled = false;
    button.textContent = "Sign in";
  }
}

function signOut(message = "") {
  session.token = null;
  session.username = null;
  session.labels = [];
  session.loaded = {};
  for (const url of objectUrls.splice(0)) URL.revokeObjectURL(url);
  $("predictions").replaceChildren();
  review.reset();
  $("file-detail").replaceChildren();
  $("file-detail").hidden = true;
  $("texts").value = "";
  $("tabs").hidden = true;
  $("who").hidden = true;
  for (const view of document.querySelectorAll(".view")) view.hidden = true;
  $("sign-in-view").hidden = false;
  banner(message, message ? "warn" : "");
  $("username").focus();
}

function showSignedIn() {
  $("sign-in-view").hidden = true;
  $("tabs").hidden = false;
  $("who").hidden = false;
  $("who-name").textContent = `Signed in as ${session.username}`;
  banner("");
  selectTab("classify");
  $("texts").focus();
  loadLabels();
}

// ------------------------------------------------------------------------------------------------ tabs
const review = createReview({ api, el, setState, $, session, pct });
const loaders = { review: () => review.open(), files: loadFiles, model: loadModel, ops: loadOps };

function selectTab(name, { focus = false } = {}) {
  for (const tab of document.querySelectorAll(".tab")) {
    const selected = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    if (selected && focus) tab.focus();
  }
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `${name}-view`;
  if (loaders[name]) loaders[name]();
}

function onTabKey(event) {
  const tabs = [...document.querySelectorAll(".tab")];
  const index = tabs.indexOf(document.activeElement);
  if (index < 0) return;
  const moves = { ArrowRight: 1, ArrowLeft: -1 };
  if (event.key in moves) {
    event.preventDefault();
    selectTab(tabs[(index + moves[event.key] + tabs.length) % tabs.length].dataset.tab, { focus: true });
  }
}

// ------------------------------------------------------------------------------------------------ classify
async function loadLabels() {
  try {
    const model = await api("model");
    session.labels = model.labels;
  } catch { /* the picker says so when it is opened */ }
}

async function classify(event) {
  event.preventDefault();
  const lines = $("texts").value.split("\n").map((line) => line.trim()).filter(Boolean);
  const state = $("classify-state");
  const list = $("predictions");
  if (!lines.length) {
    setState(state, "Nothing to classify: type or paste at least one line.", "warn");
    return;
  }
  setState(state, `Classifying ${lines.length} line${lines.length > 1 ? "s" : ""}…`, "loading");
  $("classify-button").disabled = true;
  try {
    // Explanations cost a little per text; the API explains at most 32 texts per request.
    const explain = lines.length <= 32;
    const result = await api("classify", { method: "POST",
      body: { texts: lines, top_k: Number($("top-k").value), ...(explain ? { explain: true } : {}) } });
    list.replaceChildren(...result.predictions.map((p, i) => predictionItem(lines[i], p, result.model_version)));
    const doubtful = result.predictions.filter((p) => p.needs_review).length;
    setState(state, `${lines.length} classified by model ${result.model_version}` +
      (doubtful ? `; ${doubtful} need${doubtful > 1 ? "" : "s"} review.` : "."), "ok");
  } catch (err) {
    setState(state, err.message, "error");
  } finally {
    $("classify-button").disabled = false;
  }
}

function predictionItem(text, prediction, modelVersion) {
  const topK = el("ul", { class: "topk", "aria-label": "Top labels" },
    ...prediction.top_k.map((s) => el("li", {}, el("span", { class: "label", text: s.label }),
      bar(s.score, `${pct(s.score)}`), el("span", { class: "num", text: pct(s.score) }))));
  const status = el("p", { class: "feedback-state", role: "status" });
  const correct = el("button", { type: "button", class: "secondary", text: "Correct this" });
  const item = el("li", { class: "prediction" },
    el("p", { class: "text", title: prediction.explanation?.length ? "Highlighted: the words that moved the decision" : "" },
      ...highlighted(text, prediction.explanation, el)),
    el("p", { class: "verdict" },
      el("strong", { class: "label predicted-label", text: prediction.label }),
      bar(prediction.confidence, `confidence ${pct(prediction.confidence)}`),
      el("span", { class: "num", text: pct(prediction.confidence) }),
      prediction.needs_review ? el("span", { class: "badge review", text: "needs review" }) : null,
      prediction.truncated ? el("span", { class: "badge", text: "truncated" }) : null),
    topK, correct, status);
  correct.addEventListener("click", () => openPicker(item, correct, status, text, prediction, modelVersion));
  return item;
}

function openPicker(item, button, status, text, prediction) {
  if (item.querySelector("form")) return;
  if (!session.labels.length) {
    setState(status, "The label list could not be loaded; reload the page and retry.", "error");
    return;
  }
  const select = el("select", { "aria-label": "Correct label" },
    ...session.labels.map((label) => el("option", { value: label, text: label })));
  select.value = prediction.top_k.find((s) => s.label !== prediction.label)?.label || prediction.label;
  const send = el("button", { type: "submit", text: "Send correction" });
  const cancel = el("button", { type: "button", class: "secondary", text: "Cancel" });
  const form = el("form", { class: "picker" }, select, send, cancel);
  cancel.addEventListener("click", () => { form.remove(); button.hidden = false; button.focus(); });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    send.disabled = true;
    setState(status, "Sending…", "loading");
    try {
      const result = await api("feedback", {
        method: "POST",
        body: { prediction_id: prediction.prediction_id, text, predicted_label: prediction.label,
          correct_label: select.value },
      });
      form.remove();
      setState(status, `Thanks: recorded as ${select.value} (feedback ${result.feedback_id}).`, "ok");
    } catch (err) {
      send.disabled = false;
      setState(status, err.message, "error");
    }
  });
  button.hidden = true;
  item.insertBefore(form, status);
  select.focus();
}

// ------------------------------------------------------------------------------------------------ files
async function upload(event) {
  event.preventDefault();
  const file = $("file").files[0];
  const state = $("upload-state");
  if (!file) {
    setState(state, "Choose a file first.", "warn");
    return;
  }
  const button = $("upload-button");
  button.disabled = true;
  try {
    setState(state, `Preparing the upload of ${file.name}…`, "loading");
    const form = await api("files/uploads", { method: "POST", body: { filename: file.name } });
    if (file.size > form.max_bytes) throw new Error(`The file is larger than ${num(form.max_bytes)} bytes.`);
    const body = new FormData();
    for (const [name, value] of Object.entries(form.fields)) body.append(name, value);
    body.append("file", file);
    setState(state, `Uploading ${file.name} (${num(file.size)} bytes)…`, "loading");
    const response = await fetch(form.url, { method: "POST", body, credentials: "omit", referrerPolicy: "no-referrer" });
    if (!response.ok) throw new Error(`The upload was refused (${response.status}).`);
    setState(state, `Uploaded ${file.name}; classifying…`, "loading");
    $("file").value = "";
    await watch(form.upload_id, state);
  } catch (err) {
    setState(state, err.message, "error");
  } finally {
    button.disabled = false;
  }
}

async function watch(uploadId, state) {
  const started = Date.now();
  for (;;) {
    const detail = await api(`files/${encodeURIComponent(uploadId)}`);
    if (detail.status !== "processing") {
      setState(state, `${detail.name}: ${detail.status}.`, detail.status === "succeeded" ? "ok" : "error");
      showFile(detail);
      loadFiles(true);
      return;
    }
    const seconds = Math.round((Date.now() - started) / 1000);
    setState(state, `Uploaded ${detail.name}; classifying… (${seconds} s)`, "loading");
    if (Date.now() - started > 180000) {
      setState(state, `${detail.name} is still processing; it will appear in your recent files.`, "warn");
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function showFile(detail) {
  const box = $("file-detail");
  const facts = el("dl", { class: "facts" },
    ...[["Status", detail.status], ["Rows in", num(detail.rows_in)], ["Classified", num(detail.rows_classified)],
      ["Rejected", num(detail.rows_rejected)], ["Need review", num(detail.needs_review)],
      ["Model", detail.model_version || "–"]].flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
  const counts = Object.entries(detail.counts || {}).sort((a, b) => b[1] - a[1]);
  const max = Math.max(1, ...counts.map(([, n]) => n));
  const chart = counts.length
    ? el("ol", { class: "bars", "aria-label": "Rows per label" }, ...counts.map(([label, n]) =>
      el("li", {}, el("span", { class: "label", text: label }), bar(n / max, `${n} rows`), el("span", { class: "num", text: num(n) }))))
    : el("p", { class: "state", text: "No classified rows." });
  const links = el("p", { class: "links" });
  const linkNames = { results: "Download results", errors: "Download error report", manifest: "Manifest" };
  for (const [kind, label] of Object.entries(linkNames)) {
    const href = detail.links?.[kind];
    if (href) links.append(el("a", { href, download: "", class: `download ${kind}`, rel: "noopener noreferrer", text: label }), " ");
  }
  if (detail.links_expire_in) links.append(el("span", { class: "hint", text: `(links expire in ${Math.round(detail.links_expire_in / 60)} min)` }));
  const failure = detail.failure_message
    ? el("p", { class: "error", text: `${detail.failure_reason}: ${detail.failure_message}` }) : "";
  box.replaceChildren(el("h3", { class: "file-name", text: detail.name }), facts, failure,
    el("h4", { text: "Rows per label" }), chart, links);
  box.hidden = false;
}

async function loadFiles(force = false) {
  if (session.loaded.files && force !== true) return;
  session.loaded.files = true;
  const state = $("files-state");
  const table = $("files-table");
  setState(state, "Loading your files…", "loading");
  try {
    const { files } = await api("files");
    if (!files.length) {
      table.hidden = true;
      setState(state, "No files yet. Upload one above; it will be listed here.");
      return;
    }
    table.tBodies[0].replaceChildren(...files.map((f) => {
      const open = el("button", { type: "button", class: "secondary", text: "Open" });
      open.addEventListener("click", async () => {
        try { showFile(await api(`files/${encodeURIComponent(f.upload_id)}`)); $("file-detail").scrollIntoView(); }
        catch (err) { setState($("upload-state"), err.message, "error"); }
      });
      return el("tr", {}, el("td", { class: "file-name", text: f.name }), el("td", { text: new Date(f.uploaded_at).toLocaleString() }),
        el("td", {}, el("span", { class: `badge ${f.status}`, text: f.status })), el("td", { text: num(f.rows_in) }), el("td", {}, open));
    }));
    table.hidden = false;
    setState(state, "");
  } catch (err) {
    session.loaded.files = false;
    setState(state, err.message, "error");
  }
}

// ------------------------------------------------------------------------------------------------ model
const objectUrls = [];

async function loadImage(img, name) {
  try {
    const response = await api(`model/report/${name}`, { raw: true, accept: "image/png" });
    const url = URL.createObjectURL(await response.blob());
    objectUrls.push(url);
    img.src = url;
  } catch {
    img.replaceWith(el("p", { class: "state", text: "This plot is not available for the serving model." }));
  }
}

async function loadModel() {
  if (session.loaded.model) return;
  session.loaded.model = true;
  const state = $("model-state");
  setState(state, "Loading the model card…", "loading");
  try {
    const [model, report] = await Promise.all([api("model"), api("model/report")]);
    const m = report.metrics || model.metrics || {};
    $("model-metrics").replaceChildren(...[["Champion", model.model_version], ["Accuracy", pct(m.accuracy)],
      ["Macro F1", pct(m.macro_f1)], ["Calibration error (ECE)", m.ece == null ? "–" : m.ece.toFixed(3)],
      ["Review threshold", model.review_threshold.toFixed(3)], ["Labels", num(model.labels.length)],
      ["Evaluated on", `${num(m.n)} texts`]].map(([k, v]) => el("div", { class: "metric" },
      el("span", { class: "k", text: k }), el("strong", { class: "v", text: String(v) }))));
    const rows = [...report.per_class].sort((a, b) => a.f1 - b.f1);
    $("f1-chart").replaceChildren(...(rows.length ? rows.map((r) => el("li", {},
      el("span", { class: "label", text: r.label }), bar(r.f1, `F1 ${pct(r.f1)}`),
      el("span", { class: "num", text: `${pct(r.f1)} (n=${r.support})` })))
      : [el("li", { class: "state", text: "This bundle has no per-class report." })]));
    for (const [id, name] of [["confusion-img", "confusion.png"], ["reliability-img", "reliability.png"]]) {
      const img = $(id);
      if (img && report.images.includes(name)) loadImage(img, name);
      else if (img) img.replaceWith(el("p", { class: "state", text: "This bundle has no such plot." }));
    }
    $("model-body").hidden = false;
    setState(state, "");
    loadHistory();
  } catch (err) {
    session.loaded.model = false;
    setState(state, err.message, "error");
  }
}

async function loadHistory() {
  const state = $("history-state");
  const table = $("history-table");
  setState(state, "Loading the promotion history…", "loading");
  try {
    const history = await api("model/history");
    if (!history.available) { setState(state, `Not available here: ${history.reason}`, "warn"); return; }
    const models = `${history.models.length} registered model${history.models.length === 1 ? "" : "s"}`;
    if (!history.decisions.length) {
      setState(state, `No promotion decisions recorded yet. Champion: ${history.champion || "none"}; ${models}.`);
      return;
    }
    table.tBodies[0].replaceChildren(...history.decisions.map((d) => el("tr", {},
      el("td", { text: new Date(d.at).toLocaleString() }), el("td", {}, el("span", { class: `badge ${d.action}`, text: d.action })),
      el("td", { text: d.version || "–" }), el("td", { text: d.previous_champion || "–" }), el("td", { text: d.actor }),
      el("td", { text: (d.reasons || []).join("; ") || "–" }))));
    table.hidden = false;
    setState(state, `Champion now: ${history.champion || "none"}; ${models}.`);
  } catch (err) {
    setState(state, err.message, "error");
  }
}

// ------------------------------------------------------------------------------------------------ labels
// The label catalogue (GET /v1/labels) and its changes (POST /v1/labels...): names may hold `/` and spaces,
// so they go into the path through encodeURIComponent; every value reaches the page through textContent.
function selectSubtab(name) {
  for (const tab of document.querySelectorAll(".subtab")) tab.setAttribute("aria-selected", String(tab.dataset.subtab === name));
  $("model-report").hidden = name !== "report";
  $("model-labels").hidden = name !== "labels";
  if (name === "labels") loadCatalogue();
}

async function loadCatalogue() {
  const state = $("labels-state");
  const table = $("labels-table");
  setState(state, "Loading the label catalogue…", "loading");
  try {
    const catalogue = await api("labels");
    const order = { proposed: 0, active: 1, retired: 2 };
    const rows = [...catalogue.labels].sort((a, b) => order[a.status] - order[b.status] || a.name.localeCompare(b.name));
    table.tBodies[0].replaceChildren(...rows.map((l) => el("tr", { "data-label": l.name },
      el("td", { text: l.name }), el("td", {}, el("span", { class: `badge ${l.status}`, text: l.status })),
      el("td", { class: "num", text: num(l.examples) }), el("td", { class: "num", text: num(l.feedback) }),
      el("td", { text: l.pending || (l.replaced_by ? `replaced by ${l.replaced_by}` : "–") }),
      el("td", { text: l.description || "–" }))));
    $("labels-notices").replaceChildren(...catalogue.notices.map((n) => el("li", { class: "state warn", text: n })));
    table.hidden = false;
    const count = (s) => rows.filter((l) => l.status === s).length;
    setState(state, `${count("active")} active, ${count("proposed")} proposed, ${count("retired")} retired ` +
      `(catalogue revision ${catalogue.revision}; champion ${catalogue.champion}).`);
  } catch (err) {
    setState(state, err.message, "error");
  }
}

function showLabelFields() {
  const action = $("label-action").value;
  $("label-target-row").hidden = action === "add";
  $("label-description-row").hidden = action !== "add";
  $("label-examples-row").hidden = action !== "add";
}

async function submitLabelChange(event) {
  event.preventDefault();
  const state = $("label-form-state");
  const action = $("label-action").value;
  const name = $("label-name").value.trim();
  const target = $("label-target").value.trim();
  const reason = $("label-reason").value.trim();
  let path = "labels";
  let body;
  if (action === "add") {
    const examples = $("label-examples").value.split("\n").map((t) => t.trim()).filter(Boolean);
    body = { name, description: $("label-description").value.trim(), examples, reason };
  } else {
    path = `labels/${encodeURIComponent(name)}/${action}`;
    const field = { rename: "to", merge: "into", retire: "replaced_by" }[action];
    body = { [field]: target || (action === "retire" ? null : ""), reason };
  }
  setState(state, "Recording…", "loading");
  try {
    const answer = await api(path, { method: "POST", body });
    setState(state, `Recorded: ${answer.change}`, "ok");
    loadCatalogue();
  } catch (err) {
    setState(state, err.message, "error");
  }
}

// ------------------------------------------------------------------------------------------------ ops
async function loadOps() {
  const state = $("ops-state");
  const body = $("ops-body");
  setState(state, "Loading…", "loading");
  try {
    const ops = await api("ops");
    const f = ops.files;
    const fb = ops.feedback;
    const cards = el("div", { class: "cards" },
      ...[["Files (yours, recent)", num(Object.values(f.by_status).reduce((a, b) => a + b, 0))],
        ["Rows classified in them", num(f.rows_classified)], ["Low-confidence share (files)", pct(f.low_confidence_share)],
        ["Failed files", num(f.failed.length)],
        ["Feedback items", fb.available ? num(fb.total) : "n/a"], ["Feedback, last 24 h", fb.available ? num(fb.last_24h) : "n/a"],
        ["Feedback disagreement", fb.available ? pct(fb.disagreement_rate) : "n/a"]]
        .map(([k, v]) => el("div", { class: "metric" }, el("span", { class: "k", text: k }), el("strong", { class: "v", text: String(v) }))));
    const failed = f.failed.length
      ? el("ul", {}, ...f.failed.map((x) => el("li", { text: `${x.name}: ${x.reason || "failed"}${x.message ? ` (${x.message})` : ""}` })))
      : el("p", { class: "state", text: "No failed files." });
    const corrections = fb.available && fb.top_corrections.length
      ? el("ul", {}, ...fb.top_corrections.map((c) => el("li", { text: `${c.from} → ${c.to}: ${c.count}` })))
      : el("p", { class: "state", text: fb.available ? "No corrections yet." : fb.reason });
    const missing = el("ul", { class: "not-available" }, ...ops.not_available.map((n) => el("li", { text: `${n.what}: ${n.why}` })));
    body.replaceChildren(cards, el("h3", { text: "Failed files" }), failed, el("h3", { text: "Most frequent corrections" }),
      corrections, el("h3", { text: "Not shown here" }), missing);
    body.hidden = false;
    setState(state, "");
  } catch (err) {
    setState(state, err.message, "error");
  }
}

// ------------------------------------------------------------------------------------------------ start
async function start() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("classify-form").addEventListener("submit", classify);
  $("upload-form").addEventListener("submit", upload);
  review.install();
  $("tabs").addEventListener("keydown", onTabKey);
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => selectTab(tab.dataset.tab));
  for (const tab of document.querySelectorAll(".subtab")) tab.addEventListener("click", () => selectSubtab(tab.dataset.subtab));
  $("label-action").addEventListener("change", showLabelFields);
  $("label-form").addEventListener("submit", submitLabelChange);
  showLabelFields();
  $("texts").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("classify-form").requestSubmit();
  });
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    config = await response.json();
    document.body.dataset.ready = "true";
  } catch {
    banner("The console configuration cannot be loaded; reload the page.", "error");
  }
  $("username").focus();
}

start();
