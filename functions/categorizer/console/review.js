// The Review page: one doubtful prediction at a time, made for the keyboard.
// 1-9 pick a label of the top-k, Enter accepts the predicted label, / searches every label (proposed ones too),
// s skips, n proposes a new category with this item as its first example (admins).
// Each item is claimed (leased to this reviewer) before it is shown, so two reviewers never decide the same
// item. Texts come from users and files: they are put on the page with textContent only.

const ORDERS = { uncertain: "Most uncertain first", novel: "Out of scope first", recent: "Most recent first" };
const PAGE_SIZE = 20;

// The text with the explanation's words marked (each an exact substring of the text).
export function highlighted(text, explanation, el) {
  const spans = [];
  for (const part of explanation || []) {
    let from = 0;
    for (;;) {
      const at = text.indexOf(part.text, from);
      if (at < 0 || !part.text) break;
      if (!spans.some(([s, e]) => at < e && at + part.text.length > s)) {
        spans.push([at, at + part.text.length]);
        break;
      }
      from = at + 1;
    }
  }
  spans.sort((a, b) => a[0] - b[0]);
  const nodes = [];
  let cursor = 0;
  for (const [start, end] of spans) {
    if (start > cursor) nodes.push(document.createTextNode(text.slice(cursor, start)));
    nodes.push(el("mark", { class: "why", text: text.slice(start, end) }));
    cursor = end;
  }
  nodes.push(document.createTextNode(text.slice(cursor)));
  return nodes;
}

export function createReview({ api, el, setState, $, session, pct }) {
  const state = { queue: [], next: null, current: null, reviewed: 0, busy: false, searching: false, labels: null };

  // Every label a decision may use: the catalogue's active and proposed ones (the model's own as a fallback).
  async function decidableLabels() {
    if (state.labels) return state.labels;
    try {
      const { labels } = await api("labels");
      state.labels = labels.filter((l) => l.status !== "retired").map((l) => l.name);
    } catch {
      state.labels = [...session.labels];
    }
    return state.labels;
  }

  function filters() {
    const params = new URLSearchParams({ order: $("review-order").value, limit: String(PAGE_SIZE) });
    if ($("review-label").value) params.set("label", $("review-label").value);
    if ($("review-source").value) params.set("source", $("review-source").value);
    return params;
  }

  function fillLabelFilter() {
    const select = $("review-label");
    if (select.options.length > 1 || !session.labels.length) return;
    select.append(...session.labels.map((label) => el("option", { value: label, text: label })));
  }

  function showCounts() {
    const left = state.queue.length + (state.current ? 1 : 0);
    $("review-left").textContent = left ? `${left}${state.next ? "+" : ""} left` : "none left";
    $("review-done").textContent = `${state.reviewed} reviewed since you signed in`;
  }

  async function fetchPage({ restart = false } = {}) {
    const params = filters();
    if (!restart && state.next) params.set("cursor", state.next);
    const page = await api(`review?${params}`);
    state.queue.push(...page.items);
    state.next = page.next;
  }

  async function open({ restart = true } = {}) {
    fillLabelFilter();
    if (restart) Object.assign(state, { queue: [], next: null, current: null });
    setState($("review-state"), "Loading the review queue…", "loading");
    try {
      await fetchPage({ restart });
      await showNext();
    } catch (err) {
      setState($("review-state"), err.message, "error");
    }
  }

  // Take items from the queue until one can be claimed (another reviewer may hold the first ones).
  async function showNext() {
    state.current = null;
    $("review-item").hidden = true;
    for (;;) {
      if (!state.queue.length && state.next) await fetchPage();
      const item = state.queue.shift();
      if (!item) {
        showCounts();
        setState($("review-state"), "Nothing left to review with these filters. Thank you!", "ok");
        return;
      }
      try {
        const claim = await api(`review/${encodeURIComponent(item.item_id)}/claim`, { method: "POST", body: {} });
        state.current = { ...item, ...claim };
        render(state.current);
        showCounts();
        setState($("review-state"), "");
        return;
      } catch (err) {
        if (err.status !== 409 && err.status !== 404) throw err; // held by someone else, or already decided
      }
    }
  }

  function render(item) {
    $("review-text").replaceChildren(...highlighted(item.text, item.explanation, el));
    const facts = [`predicted ${item.label} at ${pct(item.confidence)}`];
    if (item.out_of_scope) facts.push("out of scope");
    facts.push(`novelty ${Number(item.novelty || 0).toFixed(2)}`, `seen ${item.seen}×`, `from ${describe(item.source)}`);
    $("review-facts").textContent = facts.join(" · ");
    $("review-choices").replaceChildren(...item.top_k.slice(0, 9).map((choice, index) => {
      const button = el("button", { type: "button", class: "choice", "data-label": choice.label },
        el("kbd", { text: String(index + 1) }), ` ${choice.label} `, el("span", { class: "num", text: pct(choice.score) }));
      button.addEventListener("click", () => pick(choice.label));
      return button;
    }));
    $("review-search").hidden = true;
    $("review-propose").hidden = true;
    $("review-item").hidden = false;
    $("review-item").focus();
  }

  function describe(source) {
    if (!source) return "unknown";
    if (source.kind === "file") return `file ${source.key || ""}${source.row != null ? `, row ${source.row}` : ""}`;
    return source.kind || String(source);
  }

  function pick(label) {
    const item = state.current;
    if (!item) return;
    return decide(label === item.label ? "accept" : "correct", label);
  }

  async function decide(decision, label) {
    const item = state.current;
    if (!item || state.busy) return;
    state.busy = true;
    setState($("review-state"), "Saving…", "loading");
    try {
      const body = decision === "skip" ? { decision } : { decision, label };
      await api(`review/${encodeURIComponent(item.item_id)}`, { method: "POST", body });
      if (decision !== "skip") state.reviewed += 1;
      await showNext();
    } catch (err) {
      setState($("review-state"), err.message, "error");
    } finally {
      state.busy = false;
    }
  }

  async function openSearch() {
    const box = $("review-search");
    const input = $("review-search-input");
    const labels = await decidableLabels();
    $("review-search-labels").replaceChildren(...labels.map((label) => el("option", { value: label })));
    box.hidden = false;
    input.value = "";
    input.focus();
  }

  function openPropose() {
    $("review-propose").hidden = false;
    $("review-propose-name").value = "";
    $("review-propose-description").value = "";
    $("review-propose-name").focus();
  }

  async function submitPropose(event) {
    event.preventDefault();
    const item = state.current;
    if (!item || state.busy) return;
    state.busy = true;
    setState($("review-state"), "Proposing the new category…", "loading");
    try {
      const name = $("review-propose-name").value.trim();
      await api(`review/${encodeURIComponent(item.item_id)}/propose`, { method: "POST",
        body: { name, description: $("review-propose-description").value.trim() } });
      state.reviewed += 1;
      state.labels = null; // the new label is decidable from now on
      $("review-propose").hidden = true;
      await showNext();
      setState($("review-state"), `Proposed “${name}”: assign more items to it; it goes live when a retrained model ` +
        "passes the gate.", "ok");
    } catch (err) {
      setState($("review-state"), err.message, "error");
    } finally {
      state.busy = false;
    }
  }

  async function submitSearch(event) {
    event.preventDefault();
    const wanted = $("review-search-input").value.trim();
    const label = (await decidableLabels()).find((l) => l.toLowerCase() === wanted.toLowerCase());
    if (!label) {
      setState($("review-state"), `“${wanted}” is not a label of this model.`, "warn");
      return;
    }
    pick(label);
  }

  function onKey(event) {
    if ($("review-view").hidden || !state.current || event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement?.tagName);
    if (typing) {
      if (event.key === "Escape") {
        $("review-search").hidden = true;
        $("review-propose").hidden = true;
        $("review-item").focus();
      }
      return;
    }
    if (/^[1-9]$/.test(event.key)) {
      const choice = state.current.top_k[Number(event.key) - 1];
      if (choice) { event.preventDefault(); pick(choice.label); }
    } else if (event.key === "Enter" && document.activeElement?.tagName !== "BUTTON") {
      event.preventDefault();
      decide("accept", state.current.label);
    } else if (event.key === "/") {
      event.preventDefault();
      openSearch();
    } else if (event.key === "s") {
      event.preventDefault();
      decide("skip");
    } else if (event.key === "n") {
      event.preventDefault();
      openPropose();
    }
  }

  function reset() {
    Object.assign(state, { queue: [], next: null, current: null, reviewed: 0, busy: false });
    $("review-item").hidden = true;
    $("review-text").replaceChildren();
  }

  function install() {
    const order = $("review-order");
    order.replaceChildren(...Object.entries(ORDERS).map(([value, text]) => el("option", { value, text })));
    for (const id of ["review-order", "review-label", "review-source"]) $(id).addEventListener("change", () => open());
    $("review-skip").addEventListener("click", () => decide("skip"));
    $("review-accept").addEventListener("click", () => state.current && decide("accept", state.current.label));
    $("review-search").addEventListener("submit", submitSearch);
    $("review-propose").addEventListener("submit", submitPropose);
    $("review-new").addEventListener("click", openPropose);
    document.addEventListener("keydown", onKey);
  }

  return { install, open, reset };
}
