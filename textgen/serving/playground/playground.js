// The textgen playground: one page over the server's public API
// (GET /v1/models, GET /v1/settings, POST /v1/completions streamed with
// logprobs). Nothing is fetched from anywhere else, and the API key lives in
// this page only.
"use strict";

const $ = (id) => document.getElementById(id);
const TOP = 5; // alternatives asked for per token
let models = [];
let controller = null; // the request in flight

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value;
  if (key) h.Authorization = "Bearer " + key;
  return h;
}

async function messageOf(response) {
  try {
    const data = await response.json();
    return (data.error && data.error.message) || `${response.status} ${response.statusText}`;
  } catch (err) {
    return `${response.status} ${response.statusText}`;
  }
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

async function loadModels() {
  showError("");
  let response;
  try {
    response = await fetch("/v1/models", { headers: headers() });
  } catch (err) {
    showError("the server cannot be reached: " + err.message);
    return;
  }
  if (response.status === 401) {
    $("key-row").hidden = false;
    showError(await messageOf(response));
    $("api-key").focus();
    return;
  }
  if (!response.ok) {
    showError(await messageOf(response));
    return;
  }
  models = (await response.json()).data;
  await loadSettings();
  const chosen = $("model").value;
  $("model").replaceChildren(...models.map((card) => new Option(card.id, card.id)));
  if (models.some((card) => card.id === chosen)) $("model").value = chosen;
  describeModel();
}

// The controls' defaults and help come from the server (GET /v1/settings):
// the generation contract the library and the command line share. The
// values in the page's HTML only stand in until they arrive.
const CONTROLS = [
  ["temperature", "temperature"],
  ["top-p", "top_p"],
  ["max-tokens", "max_tokens"],
];
let settingsLoaded = false;

async function loadSettings() {
  if (settingsLoaded) return;
  const response = await fetch("/v1/settings", { headers: headers() });
  if (!response.ok) return;
  const fields = (await response.json()).fields;
  for (const [id, name] of CONTROLS) {
    const field = fields[name];
    if (!field) continue;
    if (field.default !== null) $(id).value = field.default;
    $(id).title = field.help;
    const shown = $(`${id}-value`);
    if (shown) shown.textContent = $(id).value;
  }
  settingsLoaded = true;
}

function describeModel() {
  const card = models.find((m) => m.id === $("model").value);
  const items = Boolean(card && card.textgen.documents !== "files");
  $("novel").disabled = !items;
  $("novel").checked = items;
  $("novel-label").classList.toggle("muted", !items);
  const labels = (card && card.textgen.labels) || [];
  $("label-row").hidden = labels.length === 0;
  $("label").replaceChildren(
    new Option("(none)", ""),
    ...labels.map((name) => new Option(name, name)),
  );
  if (!card) return;
  const t = card.textgen;
  const unit = t.level === "char" ? "characters" : "words";
  $("model-info").textContent =
    `${t.cell} ${t.layers} × ${t.units}, ${t.vocabulary.toLocaleString()} ${unit}` +
    (items ? `, one item per ${t.documents === "lines" ? "line" : "paragraph"}` : "");
}

function numberOrText(value) {
  // Sent as typed: the server says what is wrong with a bad value.
  const trimmed = value.trim();
  return trimmed !== "" && !Number.isNaN(Number(trimmed)) ? Number(trimmed) : trimmed;
}

function requestBody() {
  const body = {
    model: $("model").value,
    prompt: $("seed").value,
    temperature: Number($("temperature").value),
    top_p: Number($("top-p").value),
    stream: true,
    logprobs: TOP,
    stream_options: { include_usage: true },
  };
  for (const [id, name] of [["max-tokens", "max_tokens"], ["n", "n"], ["random-seed", "seed"]]) {
    const value = $(id).value;
    if (value.trim() !== "") body[name] = numberOrText(value);
  }
  const stops = $("stop").value.split("\n").filter((s) => s);
  if (stops.length) body.stop = stops;
  if ($("until").value) body.until = $("until").value;
  if (!$("novel").disabled) body.novel = $("novel").checked;
  if ($("label").value) body.label = $("label").value;
  return body;
}

// One sample on the page: the seed, then each token shaded by its
// probability, then the text not yet cut into tokens.
class SampleView {
  constructor(seed, index) {
    this.element = document.createElement("div");
    this.element.className = "sample";
    this.element.dataset.index = index;
    const seedSpan = document.createElement("span");
    seedSpan.className = "seed";
    seedSpan.textContent = seed;
    this.generated = document.createElement("span");
    this.generated.className = "generated";
    this.tokens = document.createElement("span");
    this.pending = document.createElement("span");
    this.generated.append(this.tokens, this.pending);
    this.end = document.createElement("span");
    this.end.className = "end";
    this.element.append(seedSpan, this.generated, this.end);
    this.text = "";
    this.covered = 0;
    $("samples").append(this.element);
  }

  add(choice) {
    this.text += choice.text;
    const lp = choice.logprobs;
    if (lp) {
      lp.tokens.forEach((token, i) => {
        const span = document.createElement("span");
        span.className = "token";
        span.textContent = token;
        const p = Math.exp(lp.token_logprobs[i]);
        span.style.backgroundColor = `rgba(255, 166, 0, ${shade(p)})`;
        span.dataset.p = p.toFixed(4);
        span.tip = tipText(token, p, lp.top_logprobs[i]);
        this.tokens.append(span);
        this.covered += token.length;
      });
    }
    this.pending.textContent = this.text.slice(this.covered);
    if (choice.finish_reason) {
      this.end.textContent = choice.finish_reason === "length" ? "(length reached)" : "(stopped)";
    }
  }
}

function shade(p) {
  // By surprise in bits: a sure word stays clear, a one-in-4,096 word is darkest.
  const bits = -Math.log2(Math.max(p, 1e-12));
  return (0.8 * Math.min(1, bits / 12)).toFixed(3);
}

function tipText(token, p, top) {
  const lines = [`${JSON.stringify(token)}  p = ${p.toFixed(3)}`];
  for (const [word, logprob] of Object.entries(top || {})) {
    lines.push(`  ${JSON.stringify(word)}  ${Math.exp(logprob).toFixed(3)}`);
  }
  return lines.join("\n");
}

async function readEvents(response, onData) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        onData(JSON.parse(data));
      }
    }
  }
}

function setRunning(running) {
  $("generate").disabled = running;
  $("stop-button").disabled = !running;
}

async function generate(event) {
  if (event) event.preventDefault();
  if (controller) return;
  showError("");
  $("samples").replaceChildren();
  $("usage").textContent = "";
  const body = requestBody();
  const views = [];
  controller = new AbortController();
  setRunning(true);
  const started = performance.now();
  try {
    const response = await fetch("/v1/completions", {
      method: "POST",
      headers: headers(),
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    if (!response.ok) {
      if (response.status === 401) $("key-row").hidden = false;
      showError(await messageOf(response));
      return;
    }
    await readEvents(response, (data) => {
      if (data.error) {
        showError(data.error.message);
        return;
      }
      for (const choice of data.choices || []) {
        views[choice.index] = views[choice.index] || new SampleView(body.prompt, choice.index);
        views[choice.index].add(choice);
      }
      if (data.usage) {
        const u = data.usage;
        const seconds = ((performance.now() - started) / 1000).toFixed(1);
        $("usage").textContent =
          `${u.prompt_tokens} prompt + ${u.completion_tokens} generated tokens ` +
          `= ${u.total_tokens} · ${seconds} s`;
      }
    });
  } catch (err) {
    if (err.name === "AbortError") {
      $("usage").textContent = "stopped";
    } else {
      showError(String(err.message || err));
    }
  } finally {
    controller = null;
    setRunning(false);
  }
}

function stop() {
  if (controller) controller.abort();
}

function showTip(event) {
  const span = event.target.closest(".token");
  const tip = $("tip");
  if (!span || !span.tip) {
    tip.hidden = true;
    return;
  }
  tip.textContent = span.tip;
  tip.hidden = false;
  const x = Math.min(event.clientX + 12, window.innerWidth - tip.offsetWidth - 4);
  tip.style.left = `${Math.max(x, 4)}px`;
  tip.style.top = `${event.clientY + 16}px`;
}

function start() {
  $("form").addEventListener("submit", generate);
  $("stop-button").addEventListener("click", stop);
  $("model").addEventListener("change", describeModel);
  $("api-key").addEventListener("change", loadModels);
  for (const id of ["temperature", "top-p"]) {
    $(id).addEventListener("input", () => {
      $(`${id}-value`).textContent = $(id).value;
    });
  }
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) generate(event);
    if (event.key === "Escape") stop();
  });
  $("samples").addEventListener("mouseover", showTip);
  $("samples").addEventListener("mouseleave", () => {
    $("tip").hidden = true;
  });
  loadModels();
}

start();
