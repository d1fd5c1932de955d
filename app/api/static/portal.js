// The account portal: one account's webhooks, served by the worker (no build step, no CDN).
//
// The portal link carries the account's token in its fragment (#token=...), which browsers
// never send to a server. It is kept in sessionStorage, taken out of the address bar, and sent
// as a bearer token to the account-scoped API. Every string that comes from the account (or
// from the API) is set with textContent, never as HTML.

const TOKEN_KEY = "hookstream-portal-token";
const OUTCOMES = ["delivered", "retry", "failed", "parked"];
const main = document.getElementById("main");
const status = document.getElementById("status");
let token = null;
let catalog = null; // {events: [{name, group, sample, fields: [{path, label}]}]}

// -- small helpers ------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

let uid = 0;
function fieldId(name) {
  uid += 1;
  return `f-${name}-${uid}`;
}

function say(message) {
  status.textContent = message;
  clearTimeout(say.timer);
  say.timer = setTimeout(() => { status.textContent = ""; }, 6000);
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

function show(...nodes) {
  main.replaceChildren(...nodes);
  main.focus();
}

class ApiError extends Error {
  constructor(status, message, errors) {
    super(message);
    this.status = status;
    this.errors = errors || [];
  }
}

async function call(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `HTTP ${response.status}`, data && data.errors);
  }
  return data;
}

function claims(value) {
  try {
    const part = value.split(".")[0].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}

function newSecret() {
  const bytes = new Uint8Array(32);
  crypto.getRandomValues(bytes);
  return "whsec_" + btoa(String.fromCharCode(...bytes));
}

function eventsIn(group) {
  return catalog.events.filter((e) => e.group === group);
}

function sampleOf(name) {
  const found = catalog.events.find((e) => e.name === name);
  return found ? found.sample : {};
}

function resolve(document, path) {
  let current = document;
  for (const segment of path.split(".")) {
    if (current && typeof current === "object" && segment in current) current = current[segment];
    else return null;
  }
  return current === undefined ? null : current;
}

// -- routing (after the token, the fragment holds the page: #list, #new, #edit/id, #log/id) --
function go(route) {
  if (location.hash === `#${route}`) render();
  else location.hash = route;
}

async function render() {
  const [page, id] = location.hash.replace(/^#/, "").split("/");
  try {
    if (page === "new") await showForm(null);
    else if (page === "edit" && id) await showForm(await call("GET", `/api/webhooks/${encodeURIComponent(id)}`));
    else if (page === "log" && id) await showLog(await call("GET", `/api/webhooks/${encodeURIComponent(id)}`));
    else await showList();
  } catch (error) {
    show(el("div", { class: "card notice", role: "alert" },
      el("p", { text: error.status === 401 ? "This portal link has expired or is not valid. Ask for a new one." : error.message }),
      el("button", { type: "button", onclick: () => go("list"), text: "Back to webhooks" })));
  }
}

// -- the list ---------------------------------------------------------------------------------
async function showList() {
  const [{ webhooks }, { stats }] = await Promise.all([
    call("GET", "/api/webhooks"),
    call("GET", "/api/webhook-stats").catch(() => ({ stats: {} })),
  ]);
  const rows = webhooks.map((hook) => {
    const stat = stats[hook.id] || {};
    const last = stat.last_at
      ? `${stat.last_status ?? stat.last_error ?? ""} · ${when(stat.last_at)}`
      : "no delivery yet";
    return el("tr", { "data-webhook-id": hook.id },
      el("td", { "data-label": "Name", text: hook.name || hook.id }),
      el("td", { "data-label": "Payload URL", class: "url", text: hook.url || "(a URL per event)" }),
      el("td", { "data-label": "Events", text: hook.events.length ? hook.events.join(", ") : "all events" }),
      el("td", { "data-label": "Active", text: hook.active ? "Yes" : `No${hook.disabled_reason ? ` (${hook.disabled_reason})` : ""}` }),
      el("td", { "data-label": "Last delivery", class: !stat.last_outcome ? "muted" : stat.last_outcome === "delivered" ? "" : "bad", text: last }),
      el("td", { "data-label": "Failures (24 h)", class: stat.failures_24h ? "bad" : "", text: String(stat.failures_24h ?? 0) }),
      el("td", { class: "actions" },
        el("button", { type: "button", onclick: () => go(`edit/${hook.id}`), text: "Edit" }),
        el("button", { type: "button", onclick: () => openTest(() => hook, false, listPanel), text: "Test connection" }),
        el("button", { type: "button", onclick: () => go(`log/${hook.id}`), text: "Delivery log" }),
        el("button", { type: "button", class: "danger", onclick: () => remove(hook), text: "Delete" })));
  });
  const listPanel = el("div");
  show(
    el("div", { class: "toolbar" },
      el("h2", { text: "Your webhooks" }),
      el("span", { class: "spacer" }),
      el("button", { type: "button", class: "primary", onclick: () => go("new"), text: "+ Webhook" })),
    webhooks.length
      ? el("table", {},
        el("thead", {}, el("tr", {}, ...["Name", "Payload URL", "Events", "Active", "Last delivery", "Failures (24 h)", "Actions"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, rows))
      : el("p", { class: "card", text: "No webhook yet. Add one with “+ Webhook”." }),
    listPanel);
}

async function remove(hook) {
  if (!window.confirm(`Delete the webhook “${hook.name || hook.id}”? Deliveries to it stop.`)) return;
  await call("DELETE", `/api/webhooks/${encodeURIComponent(hook.id)}`);
  say("Webhook deleted.");
  render();
}

// -- the form ---------------------------------------------------------------------------------
function labelled(label, input, hint) {
  const id = input.id || fieldId("x");
  input.id = id;
  const error = el("p", { class: "error", id: `${id}-error` });
  input.setAttribute("aria-describedby", `${id}-error${hint ? ` ${id}-hint` : ""}`);
  return el("div", { class: "field" },
    el("label", { for: id, text: label }), input,
    hint ? el("p", { class: "hint", id: `${id}-hint`, text: hint }) : null, error);
}

function checkbox(label, checked) {
  const input = el("input", { type: "checkbox", id: fieldId("c"), checked });
  return { input, node: el("div", { class: "check" }, input, el("label", { for: input.id, text: label })) };
}

function select(options, value) {
  const node = el("select", { id: fieldId("s") });
  for (const [optionValue, text] of options) {
    node.append(el("option", { value: optionValue, text, selected: optionValue === value }));
  }
  return node;
}

async function showForm(hook) {
  const editing = hook !== null;
  const get = (name, fallback) => (editing && hook[name] !== undefined && hook[name] !== null ? hook[name] : fallback);
  const form = el("form", { novalidate: true });
  const errors = el("div", { class: "error", role: "alert" });

  const name = el("input", { type: "text", value: get("name", "") });
  const url = el("input", { type: "url", value: get("url", ""), placeholder: "https://crm.example.com/hooks" });
  const perEvent = checkbox("Separate URL per event", Object.keys(get("event_urls", {})).length > 0);
  const eventUrlsBox = el("div", { class: "field" });
  const contentType = select([["json", "JSON"], ["form", "Form"]], get("content_type", "json"));
  const method = select([["POST", "POST"], ["GET", "GET"]], get("method", "POST"));
  const authType = select([["none", "None"], ["basic", "Basic"]], hook && hook.auth ? "basic" : "none");
  const username = el("input", { type: "text", value: hook && hook.auth ? hook.auth.username : "", autocomplete: "off" });
  const password = el("input", { type: "password", value: "", autocomplete: "new-password",
    placeholder: hook && hook.auth ? "leave blank to keep the current password" : "" });
  const secret = el("input", { type: "text", value: "", autocomplete: "off", spellcheck: "false",
    placeholder: editing && hook.secret_set ? "leave blank to keep the current secret" : "whsec_…" });
  const logBody = checkbox("Log response body", get("log_response_body", false));
  const active = checkbox("Active", get("active", true));
  const campaign = el("input", { type: "text", value: get("campaign_id", "") });
  const custom = checkbox("Custom payload", get("custom_payload", null) !== null);
  const rows = el("div");
  const preview = el("pre", { "aria-live": "polite" });
  const maxRetries = el("input", { type: "number", min: 0, max: 10, value: get("max_retries", "") });
  const timeout = el("input", { type: "number", min: 0.1, max: 120, step: "any", value: get("timeout_seconds", "") });
  const rate = el("input", { type: "number", min: 0.01, step: "any", value: get("rate_limit_per_second", "") });
  const ordering = select([["none", "None"], ["key", "By event key"]], get("ordering", "none"));
  const batched = checkbox("Batch", get("batch", null) !== null);
  const maxEvents = el("input", { type: "number", min: 1, max: 1000, value: get("batch", null) ? hook.batch.max_events : 100 });
  const maxWait = el("input", { type: "number", min: 0, max: 60000, value: get("batch", null) ? hook.batch.max_wait_ms : 1000 });

  // Events, grouped as the seeds list them; each checkbox labelled with the event's own name.
  const chosen = new Set(get("events", []));
  const eventBoxes = new Map();
  const groups = [["email messages", "Email messages"], ["WhatsApp", "WhatsApp"], ["contacts", "Contacts"]].map(([group, title]) =>
    el("fieldset", {}, el("legend", { text: title }),
      ...eventsIn(group).map((e) => {
        const box = checkbox(e.name, chosen.has(e.name));
        eventBoxes.set(e.name, box.input);
        box.input.addEventListener("change", () => { drawEventUrls(); drawPreviewEvents(); drawPreview(); drawEventsHint(); });
        return box.node;
      })));
  const eventsHint = el("p", { class: "hint" });
  const drawEventsHint = () => {
    const count = subscribed().length;
    eventsHint.textContent = count ? `${count} of ${eventBoxes.size} events.` : "None checked: every event.";
  };
  const eventsField = el("fieldset", { "data-field": "events" }, el("legend", { text: "Events" }),
    el("div", { class: "groups" }, groups),
    eventsHint, el("p", { class: "error", "data-error": "events" }));

  const subscribed = () => [...eventBoxes].filter(([, box]) => box.checked).map(([n]) => n);
  drawEventsHint();
  const sampleEvent = () => subscribed()[0] || "message sent";

  // A URL per subscribed event (seeds 002/003).
  const eventUrlInputs = new Map();
  function drawEventUrls() {
    const known = get("event_urls", {});
    for (const [n, input] of eventUrlInputs) known[n] = input.value;
    eventUrlInputs.clear();
    eventUrlsBox.replaceChildren();
    eventUrlsBox.classList.toggle("hidden", !perEvent.input.checked);
    if (!perEvent.input.checked) return;
    const names = subscribed().length ? subscribed() : catalog.events.map((e) => e.name);
    for (const n of names) {
      const input = el("input", { type: "url", value: known[n] || "" });
      eventUrlInputs.set(n, input);
      eventUrlsBox.append(labelled(`URL for ${n}`, input, "Blank: the Payload URL."));
    }
  }
  perEvent.input.addEventListener("change", drawEventUrls);

  // Custom payload mappings (seed 004): field name, and a field mapping or a custom value.
  function mappingOptions() {
    const seen = new Map();
    for (const e of catalog.events) {
      if (subscribed().length && !subscribed().includes(e.name)) continue;
      for (const f of e.fields) if (!seen.has(f.path)) seen.set(f.path, f.label);
    }
    return [...seen].map(([path, text]) => [path, text]).concat([["__custom__", "Custom value"]]);
  }
  function addRow(mapping) {
    const fieldName = el("input", { type: "text", value: mapping ? mapping.field : "", id: fieldId("fn") });
    const isCustom = mapping && mapping.value !== undefined;
    const source = select(mappingOptions(), isCustom ? "__custom__" : mapping ? mapping.path : undefined);
    const value = el("input", { type: "text", id: fieldId("cv"),
      value: isCustom ? (typeof mapping.value === "string" ? mapping.value : JSON.stringify(mapping.value)) : "" });
    const valueBox = el("div", {}, el("label", { for: value.id, text: "Custom value" }), value);
    const sync = () => { valueBox.classList.toggle("hidden", source.value !== "__custom__"); drawPreview(); };
    const row = el("div", { class: "row mapping" },
      el("div", {}, el("label", { for: fieldName.id, text: "Field name" }), fieldName),
      el("div", {}, el("label", { for: source.id, text: "Field mapping" }), source),
      valueBox,
      el("button", { type: "button", onclick: () => { row.remove(); drawPreview(); }, text: "Remove field" }));
    row.mapping = () => {
      const out = { field: fieldName.value };
      if (source.value === "__custom__") out.value = value.value;
      else out.path = source.value;
      return out;
    };
    for (const input of [fieldName, source, value]) input.addEventListener("input", sync);
    rows.append(row);
    sync();
  }
  // The preview is of one event's sample, chosen among the subscribed ones (each has its fields).
  const previewEvent = el("select", {});
  function drawPreviewEvents() {
    const names = subscribed().length ? subscribed() : catalog.events.map((e) => e.name);
    const kept = names.includes(previewEvent.value) ? previewEvent.value : names[0];
    previewEvent.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
    previewEvent.value = kept;
  }
  previewEvent.addEventListener("change", () => drawPreview());
  const customBox = el("div", {},
    rows,
    el("button", { type: "button", onclick: () => addRow(null), text: "Add field" }),
    el("h3", { text: "Payload preview" }),
    labelled("Preview event", previewEvent, "The payload this event's sample data would give."),
    preview);
  // After customBox: each row draws the preview, which shows or hides the box.
  for (const mapping of get("custom_payload", []) || []) addRow(mapping);
  function drawPreview() {
    customBox.classList.toggle("hidden", !custom.input.checked);
    if (!previewEvent.options.length) drawPreviewEvents();
    const sample = sampleOf(previewEvent.value || sampleEvent());
    const payload = {};
    for (const row of rows.querySelectorAll(".mapping")) {
      const mapping = row.mapping();
      if (!mapping.field) continue;
      payload[mapping.field] = "path" in mapping ? resolve(sample, mapping.path) : mapping.value;
    }
    preview.textContent = JSON.stringify(payload, null, 2);
  }
  custom.input.addEventListener("change", () => { if (custom.input.checked && !rows.children.length) addRow(null); drawPreview(); });

  // Basic auth with POST only (seed 004).
  const authBox = el("div", {}, labelled("Username", username), labelled("Password", password));
  function drawAuth() {
    const basic = [...authType.options].find((o) => o.value === "basic");
    basic.disabled = method.value === "GET";
    if (method.value === "GET" && authType.value === "basic") authType.value = "none";
    authBox.classList.toggle("hidden", authType.value !== "basic");
  }
  method.addEventListener("change", drawAuth);
  authType.addEventListener("change", drawAuth);

  const batchBox = el("div", {}, labelled("Max events", maxEvents), labelled("Max wait (ms)", maxWait));
  const drawBatch = () => batchBox.classList.toggle("hidden", !batched.input.checked);
  batched.input.addEventListener("change", drawBatch);

  function number(input) {
    return input.value === "" ? null : Number(input.value);
  }

  // The document the API gets: blank secret and password keep the stored ones.
  function config() {
    const doc = {
      name: name.value,
      url: url.value || null,
      event_urls: {},
      events: subscribed(),
      campaign_id: campaign.value || null,
      content_type: contentType.value,
      method: method.value,
      auth: authType.value === "basic" ? { type: "basic", username: username.value } : null,
      log_response_body: logBody.input.checked,
      active: active.input.checked,
      custom_payload: custom.input.checked ? [...rows.querySelectorAll(".mapping")].map((r) => r.mapping()) : null,
      max_retries: number(maxRetries),
      timeout_seconds: number(timeout),
      rate_limit_per_second: number(rate),
      ordering: ordering.value,
      batch: batched.input.checked ? { max_events: number(maxEvents), max_wait_ms: number(maxWait) } : null,
    };
    if (perEvent.input.checked) {
      for (const [n, input] of eventUrlInputs) if (input.value) doc.event_urls[n] = input.value;
    }
    if (doc.auth && password.value) doc.auth.password = password.value;
    if (secret.value) doc.secret = secret.value;
    return doc;
  }

  // Save only after a successful test of the current URL, method and authentication
  // (seeds 002/003); changing one of them asks for a new test.
  const signature = () => JSON.stringify([url.value, method.value, authType.value, username.value,
    password.value, perEvent.input.checked ? [...eventUrlInputs].map(([n, i]) => [n, i.value]) : []]);
  let tested = editing ? signature() : null;
  const save = el("button", { type: "submit", class: "primary", text: "Save" });
  const testNote = el("p", { class: "hint" });
  function drawSave() {
    const ok = tested === signature();
    save.disabled = !ok;
    testNote.textContent = ok ? "" : editing
      ? "The URL, method or authentication changed: test it again before saving."
      : "Test the webhook before saving it.";
  }
  form.addEventListener("input", drawSave);
  form.addEventListener("change", drawSave);

  // Field errors next to their field before anything is sent: the server checks the config
  // as Save would (POST /api/webhooks/validate), when the URL is left and before a test.
  async function validate() {
    clearErrors(form, errors);
    try {
      await call("POST", "/api/webhooks/validate", editing ? { config: config(), webhook_id: hook.id } : { config: config() });
      return true;
    } catch (error) {
      showErrors(form, errors, error);
      return false;
    }
  }
  url.addEventListener("change", () => { if (url.value) validate(); });

  const testPanel = el("div");
  const testButton = el("button", { type: "button", text: "Test",
    // The panel reads the form when it sends, not when it opened: it tests what Save would save.
    onclick: async () => {
      if (!(await validate())) { testPanel.refresh = null; testPanel.replaceChildren(); return; }
      openTest(() => ({ ...config(), id: hook ? hook.id : null }), true, testPanel, (ok, at) => {
        if (ok) tested = at;
        drawSave();
      }, signature, (error) => showErrors(form, errors, error));
    } });
  form.addEventListener("input", () => { if (testPanel.refresh) testPanel.refresh(); });

  const secretButton = el("button", { type: "button", text: "Generate", onclick: () => { secret.value = newSecret(); drawSave(); } });
  const rotate = editing ? el("button", { type: "button", text: "Rotate secret", onclick: () => rotateSecret(hook, rotatePanel) }) : null;
  const rotatePanel = el("div");

  form.append(
    el("h2", { text: editing ? `Edit “${hook.name || hook.id}”` : "New webhook" }),
    errors,
    labelled("Name", name),
    labelled("Payload URL", url, catalog.policy.allow_http
      ? "Where events are sent (https, or http: allowed on this deployment)."
      : "Where events are sent (HTTPS)."),
    perEvent.node, eventUrlsBox,
    labelled("Content type", contentType),
    labelled("Method", method),
    labelled("Authentication", authType, "Basic authentication is available with POST only."),
    authBox,
    el("div", { class: "field", "data-field": "secret" },
      el("label", { for: secret.id || (secret.id = fieldId("secret")), text: "Secret" }),
      el("div", { class: "toolbar" }, secret, secretButton, rotate),
      el("p", { class: "hint", text: editing ? "Leave blank to keep the current secret." : "Signs every request (Standard Webhooks). Shown once, when the webhook is created." }),
      el("p", { class: "error", id: `${secret.id}-error` })),
    rotatePanel,
    logBody.node,
    active.node,
    eventsField,
    labelled("Campaign", campaign, "Optional: only events of this campaign."),
    custom.node, customBox,
    el("details", {}, el("summary", { text: "Advanced" }),
      labelled("Max retries", maxRetries, "Fewer retries than the platform's three; blank: all."),
      labelled("Timeout", timeout, "Seconds per attempt; blank: the platform's."),
      labelled("Rate limit", rate, "Requests per second at most; blank: none."),
      labelled("Ordering", ordering, "By event key: events of one key arrive in the order they happened."),
      batched.node, batchBox),
    el("div", { class: "toolbar" }, testButton, save,
      el("button", { type: "button", text: "Cancel", onclick: () => go("list") })),
    testNote,
    testPanel);
  secret.setAttribute("aria-describedby", `${secret.id}-error`);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (save.disabled) return;
    clearErrors(form, errors);
    const doc = config();
    try {
      const saved = editing
        ? await call("PUT", `/api/webhooks/${encodeURIComponent(hook.id)}`, doc)
        : await call("POST", "/api/webhooks", doc);
      if (!editing && doc.secret) {
        show(el("div", { class: "card notice" },
          el("h2", { text: "Webhook created" }),
          el("p", { text: "Its signing secret, shown this once. Copy it now: it will not be shown again." }),
          el("p", { class: "secret-once", text: doc.secret }),
          el("button", { type: "button", class: "primary", onclick: () => go("list"), text: "Done" })));
        secret.value = "";
      } else {
        say(editing ? "Webhook saved." : "Webhook created.");
        go("list");
      }
      return saved;
    } catch (error) {
      showErrors(form, errors, error);
    }
  });

  drawEventUrls(); drawAuth(); drawBatch(); drawPreview(); drawSave();
  show(form);
}

const FIELD_PREFIXES = [
  ["event_urls", "url"], ["url", "url"], ["auth.password", "password"], ["auth", "username"],
  ["secret", "secret"], ["events", "events"], ["campaign_id", "campaign"], ["name", "name"],
  ["max_retries", "max_retries"], ["timeout_seconds", "timeout"], ["rate_limit_per_second", "rate"],
];

function clearErrors(form, errors) {
  errors.textContent = "";
  for (const node of form.querySelectorAll(".error")) node.textContent = "";
}

// API errors next to their field: {errors: [{field, reason}]} from the 422.
function showErrors(form, errors, error) {
  const list = error.errors || [];
  if (!list.length) {
    errors.textContent = error.message;
    return;
  }
  for (const { field, reason } of list) {
    const input = fieldFor(form, field);
    const target = input ? form.querySelector(`#${CSS.escape(input.id)}-error`) : null;
    if (target) target.textContent = reason;
    else errors.textContent = `${errors.textContent} ${field}: ${reason}`.trim();
  }
  const first = form.querySelector(".error:not(:empty)");
  if (first) first.scrollIntoView({ block: "center" });
}

function fieldFor(form, field) {
  const labels = { url: "Payload URL", password: "Password", username: "Username", secret: "Secret",
    campaign: "Campaign", name: "Name", max_retries: "Max retries", timeout: "Timeout", rate: "Rate limit" };
  for (const [prefix, key] of FIELD_PREFIXES) {
    if (field === prefix || field.startsWith(`${prefix}.`)) {
      if (key === "events") return null;
      const label = [...form.querySelectorAll("label")].find((l) => l.textContent === labels[key]);
      return label ? document.getElementById(label.htmlFor) : null;
    }
  }
  return null;
}

async function rotateSecret(hook, panel) {
  const fresh = newSecret();
  const saved = await call("PATCH", `/api/webhooks/${encodeURIComponent(hook.id)}`, { secret: fresh });
  const until = saved.previous_secret_expires_at;
  panel.replaceChildren(el("div", { class: "card notice", role: "status" },
    el("p", { text: "New signing secret, shown this once:" }),
    el("p", { class: "secret-once", text: fresh }),
    el("p", { text: until
      ? `The previous secret keeps signing too until ${when(until)}: requests carry both signatures until then.`
      : "The previous secret no longer signs." })));
}

// -- test connection --------------------------------------------------------------------------
// ``targetOf`` gives the config to test when Send is pressed (a form's current one), and
// ``signatureOf`` what the form looked like then (what a success lets Save save).
function openTest(targetOf, unsaved, panel, done, signatureOf, onInvalid) {
  const first = targetOf();
  const events = first.events && first.events.length ? first.events : catalog.events.map((e) => e.name);
  const eventSelect = select(events.map((n) => [n, n]), events[0]);
  const sample = el("textarea", { id: fieldId("sample"), spellcheck: "false" });
  const result = el("div", { role: "status", "aria-live": "polite" });
  const destination = el("p", { class: "hint" });
  const drawDestination = () => {
    const target = targetOf();
    const url = (target.event_urls && target.event_urls[eventSelect.value]) || target.url || "";
    destination.textContent = `Sends to: ${url || "(no URL yet)"}`;
  };
  panel.refresh = drawDestination;
  const fill = () => { sample.value = JSON.stringify(sampleOf(eventSelect.value), null, 2); drawDestination(); };
  eventSelect.addEventListener("change", fill);
  fill();
  const send = el("button", { type: "button", class: "primary", text: "Send", onclick: async () => {
    const target = targetOf();
    const at = signatureOf ? signatureOf() : null;
    drawDestination();
    let edited;
    try {
      edited = JSON.parse(sample.value);
    } catch (error) {
      result.replaceChildren(el("p", { class: "bad", text: `The sample data is not JSON: ${error.message}` }));
      return;
    }
    result.replaceChildren(el("p", { text: "Sending…" }));
    const body = { event: eventSelect.value, sample: edited };
    try {
      const answer = unsaved
        ? await call("POST", "/api/webhooks/test", { ...body, config: withoutId(target) })
        : await call("POST", `/api/webhooks/${encodeURIComponent(target.id)}/test`, body);
      // el() skips a missing child; the DOM's replaceChildren would show it as "null".
      result.replaceChildren(el("div", {},
        el("p", { class: answer.ok ? "ok" : "bad", text: answer.ok ? "Success" : "Failed" }),
        el("p", { text: `Status: ${answer.status ?? "no response"}` }),
        answer.error ? el("p", { text: `Error: ${answer.error}` }) : null,
        el("p", { text: `Duration: ${Math.round(answer.duration_ms)} ms` }),
        el("h3", { text: "Request body sent" }),
        el("pre", { text: answer.request && answer.request.body ? answer.request.body : "(none: the fields are in the query string)" }),
        el("h3", { text: "Response body" }),
        el("pre", { text: answer.response_body ?? "" })));
      if (done) done(answer.ok, at);
    } catch (error) {
      if (onInvalid && error.errors && error.errors.length) {
        onInvalid(error);  // said once, next to each field of the form
        result.replaceChildren(el("p", { class: "bad", text: "Not sent: fix the fields marked in the form." }));
      } else {
        result.replaceChildren(el("p", { class: "bad", text: `Failed: ${error.message}` }),
          ...(error.errors || []).map((e) => el("p", { class: "error", text: `${e.field}: ${e.reason}` })));
      }
      if (done) done(false, at);
    }
  } });
  panel.replaceChildren(el("section", { class: "card", "aria-label": "Test connection" },
    el("h2", { text: unsaved ? "Test" : `Test connection — ${first.name || first.id}` }),
    destination,
    labelled("Event", eventSelect),
    labelled("Sample data", sample, "The sample data set of the event: edit it freely."),
    el("div", { class: "toolbar" }, send,
      el("button", { type: "button", text: "Close", onclick: () => { panel.refresh = null; panel.replaceChildren(); } })),
    result));
  eventSelect.focus();
}

function withoutId(config) {
  const copy = { ...config };
  delete copy.id;
  return copy;
}

// -- delivery log -----------------------------------------------------------------------------
async function showLog(hook) {
  const filter = select([["", "All"], ...OUTCOMES.map((o) => [o, o])], "");
  const attemptsBody = el("tbody");
  const failedBody = el("tbody");
  const attemptsTable = el("table", {},
    el("thead", {}, el("tr", {}, ...["Time", "Event", "Status or error", "Duration", "Attempt", "Delivery id", "Response body"].map((h) => el("th", { scope: "col", text: h })))),
    attemptsBody);
  let attempts = [];
  let letters = [];

  function drawAttempts() {
    const shown = attempts.filter((a) => !filter.value || a.outcome === filter.value);
    attemptsBody.replaceChildren(...shown.map((a) => el("tr", {},
      el("td", { "data-label": "Time", text: when(a.result.at) }),
      el("td", { "data-label": "Event", text: a.event }),
      el("td", { "data-label": "Status or error", class: a.outcome === "delivered" ? "ok" : a.outcome === "parked" ? "muted" : "bad",
        text: `${a.result.status ?? a.result.error ?? ""} (${a.outcome})` }),
      el("td", { "data-label": "Duration", text: `${Math.round(a.result.duration_ms)} ms` }),
      el("td", { "data-label": "Attempt", text: String(a.result.attempt) }),
      el("td", { "data-label": "Delivery id", class: "mono", text: a.delivery_id }),
      el("td", { "data-label": "Response body", class: "mono", text: a.response_body ?? "" }))));
    if (!shown.length) attemptsBody.append(el("tr", {}, el("td", { colspan: 7, class: "muted", text: "No attempt yet." })));
  }

  function drawFailed() {
    failedBody.replaceChildren(...letters.map((letter) => {
      const id = letter.job.delivery_id;
      const box = el("input", { type: "checkbox", id: fieldId("pick"), value: id });
      return el("tr", {},
        el("td", {}, box, el("label", { for: box.id, class: "mono", text: ` ${id}` })),
        el("td", { "data-label": "Failed", text: when(letter.failed_at) }),
        el("td", { "data-label": "Reason", text: letter.reason }),
        el("td", { "data-label": "Attempts", text: String(letter.history.length) }),
        el("td", {}, el("button", { type: "button", text: "Replay", onclick: () => replay({ delivery_ids: [id] }) })));
    }));
    if (!letters.length) failedBody.append(el("tr", {}, el("td", { colspan: 5, class: "muted", text: "No failed delivery." })));
  }

  async function load() {
    const [a, f] = await Promise.all([
      call("GET", `/api/webhooks/${encodeURIComponent(hook.id)}/attempts?limit=200`),
      call("GET", `/api/failed?webhook_id=${encodeURIComponent(hook.id)}`),
    ]);
    attempts = a.attempts;
    letters = f.failed;
    drawAttempts();
    drawFailed();
  }

  async function replay(selection) {
    const answer = await call("POST", "/api/failed/replay", selection);
    say(`Replayed ${answer.replayed.length} ${answer.replayed.length === 1 ? "delivery" : "deliveries"}.`);
    await load();
  }

  filter.addEventListener("change", drawAttempts);
  show(
    el("div", { class: "toolbar" },
      el("h2", { text: `Delivery log — ${hook.name || hook.id}` }),
      el("span", { class: "spacer" }),
      el("button", { type: "button", text: "Refresh", onclick: load }),
      el("button", { type: "button", text: "Back to webhooks", onclick: () => go("list") })),
    labelled("Outcome", filter),
    attemptsTable,
    el("h3", { text: "Failed deliveries" }),
    el("div", { class: "toolbar" },
      el("button", { type: "button", text: "Replay selected", onclick: () => {
        const ids = [...failedBody.querySelectorAll("input:checked")].map((b) => b.value);
        if (ids.length) replay({ delivery_ids: ids });
        else say("Select the deliveries to replay first.");
      } }),
      el("button", { type: "button", text: "Replay all", onclick: () => replay({ webhook_id: hook.id }) })),
    el("table", {},
      el("thead", {}, el("tr", {}, ...["Delivery id", "Failed", "Reason", "Attempts", ""].map((h) => el("th", { scope: "col", text: h })))),
      failedBody));
  await load();
}

// -- start --------------------------------------------------------------------------------------
async function start() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (fragment.get("token")) {
    sessionStorage.setItem(TOKEN_KEY, fragment.get("token"));
    history.replaceState(null, "", `${location.pathname}#list`);
  }
  token = sessionStorage.getItem(TOKEN_KEY);
  const who = token ? claims(token) : null;
  if (!who) {
    show(el("div", { class: "card notice", role: "alert" }, el("p", { text: "Open this page with your portal link." })));
    return;
  }
  try {
    catalog = await call("GET", "/api/event-catalog");
  } catch (error) {
    show(el("div", { class: "card notice", role: "alert" },
      el("p", { text: error.status === 401 ? "This portal link has expired or is not valid. Ask for a new one." : error.message })));
    return;
  }
  // Only once the server accepted the token: a tampered one names an account it does not open.
  document.getElementById("account").textContent = `Account ${who.account_id} · link valid until ${when(who.exp)}`;
  window.addEventListener("hashchange", render);
  render();
}

start();
