// The emulator's operations page: reads /ui/api/state and /ui/api/operations every second and
// drives the emulator through the POST-only /ui/api controls. Nothing here leaves the page's origin.
"use strict";

(() => {
  const REFRESH_MS = 1000;
  const token = document.querySelector('meta[name="lro-grpc-ui-token"]').content;
  const $ = (id) => document.getElementById(id);
  const view = {
    pageTokens: [""], // the token of each page visited, newest page first
    selected: null, // the selected operation's name
    rows: new Map(), // name -> {tr, key, row}
    grpcTarget: "",
    restOrigin: window.location.origin,
    refreshing: false,
    firstRender: true,
    timer: 0,
  };
  window.lroUi = { refreshes: 0, errors: 0 };

  // --- Talking to the emulator -------------------------------------------------------------------------

  async function request(path, options = {}) {
    let response;
    try {
      response = await fetch(path, { cache: "no-store", credentials: "same-origin", ...options });
    } catch (error) {
      throw new Error(`cannot reach the emulator (${error.message})`);
    }
    const text = await response.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : {};
    } catch (error) {
      throw new Error(`HTTP ${response.status}: ${text.slice(0, 200)}`);
    }
    if (!response.ok) {
      const error = body && body.error ? body.error : {};
      throw new Error(`${error.status || "HTTP " + response.status}: ${error.message || text.slice(0, 200)}`);
    }
    return body;
  }

  async function control(route, body = {}) {
    try {
      await request(`api/${route}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Emulator-UI-Token": token },
        body: JSON.stringify(body),
      });
      clearError();
    } catch (error) {
      showError(error.message);
    }
    await refresh();
  }

  function showError(message) {
    window.lroUi.errors += 1;
    $("error-text").textContent = message;
    $("error").hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
  }

  // --- Refreshing ------------------------------------------------------------------------------------------

  function listQuery() {
    const params = new URLSearchParams();
    const add = (key, value) => value && params.set(key, value);
    add("api", $("filter-api").value);
    add("location", $("filter-location").value.trim());
    add("service", $("filter-service").value.trim());
    add("state", $("filter-state").value);
    add("q", $("filter-name").value.trim());
    add("pageSize", $("page-size").value);
    add("pageToken", view.pageTokens[view.pageTokens.length - 1]);
    return params.toString();
  }

  async function refresh() {
    if (view.refreshing) return;
    view.refreshing = true;
    clearTimeout(view.timer);
    performance.mark("lro-refresh-start");
    try {
      const [state, page] = await Promise.all([request("api/state"), request(`api/operations?${listQuery()}`)]);
      renderState(state);
      renderRows(page);
      performance.measure("lro-refresh", "lro-refresh-start");
      if (view.firstRender) {
        view.firstRender = false;
        performance.mark("lro-first-rows");
      }
      window.lroUi.refreshes += 1;
      if ($("error-text").dataset.source === "refresh") clearError();
    } catch (error) {
      showError(error.message);
      $("error-text").dataset.source = "refresh";
    } finally {
      view.refreshing = false;
      view.timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  function setIfIdle(input, value) {
    if (document.activeElement !== input) input.value = value;
  }

  function renderState(state) {
    view.grpcTarget = state.grpcTarget;
    $("clock-now").textContent = shortTime(state.now);
    $("clock-speed").textContent = state.paused ? "paused" : `${state.speed}×`;
    $("grpc-target").textContent = state.grpcTarget;
    $("count").textContent = String(state.count);
    $("pause").textContent = state.paused ? "Resume" : "Pause";
    $("pause").dataset.paused = String(state.paused);
    setIfIdle($("speed"), state.speed);
    setIfIdle($("unavailable"), round(state.faults.unavailable * 100));
    setIfIdle($("resource-exhausted"), round(state.faults.resourceExhausted * 100));
    setIfIdle($("latency"), state.faults.latencyMs);
    fillOptions($("fail-code"), state.failureCodes, "FAILED_PRECONDITION");
    fillDatalist($("locations"), state.locations);
    fillDatalist($("services"), state.services);
  }

  function fillOptions(select, values, preferred) {
    if (select.options.length === values.length) return;
    select.replaceChildren(...values.map((value) => new Option(value, value, value === preferred, value === preferred)));
  }

  function fillDatalist(list, values) {
    if (list.dataset.values === values.join("\n")) return;
    list.dataset.values = values.join("\n");
    list.replaceChildren(...values.map((value) => new Option(value)));
  }

  function renderRows(page) {
    const body = $("rows");
    const seen = new Set();
    let previous = null;
    for (const row of page.operations) {
      seen.add(row.name);
      const key = JSON.stringify(row);
      let entry = view.rows.get(row.name);
      if (!entry) {
        entry = { tr: document.createElement("tr"), key: "" };
        entry.tr.dataset.operationName = row.name;
        view.rows.set(row.name, entry);
      }
      if (entry.key !== key) {
        fillRow(entry.tr, row);
        entry.key = key;
        entry.row = row;
      }
      const wanted = previous ? previous.nextSibling : body.firstChild;
      if (wanted !== entry.tr) body.insertBefore(entry.tr, wanted);
      entry.tr.classList.toggle("selected", row.name === view.selected);
      previous = entry.tr;
    }
    for (const [name, entry] of view.rows) {
      if (!seen.has(name)) {
        entry.tr.remove();
        view.rows.delete(name);
      }
    }
    $("empty").hidden = page.operations.length > 0;
    const index = view.pageTokens.length;
    $("page-info").textContent = `page ${index} · ${page.total} matching`;
    $("prev").disabled = index === 1;
    $("next").disabled = !page.nextPageToken;
    $("next").dataset.token = page.nextPageToken;
    renderDetails();
  }

  function cell(tr, className, content) {
    const td = document.createElement("td");
    if (className) td.className = className;
    if (content instanceof Node) td.append(content);
    else td.textContent = content;
    tr.append(td);
    return td;
  }

  function actionButton(action, label, enabled) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.action = action;
    button.textContent = label;
    button.disabled = !enabled;
    return button;
  }

  function fillRow(tr, row) {
    tr.dataset.state = row.state;
    tr.replaceChildren();
    cell(tr, "name", row.name);
    cell(tr, "", row.api === "financialservices" ? "Financial Services" : "Service Management");
    cell(tr, "", row.scope);
    cell(tr, "state", row.errorCode && row.state === "FAILED" ? `FAILED(${row.errorCode})` : row.state);
    const progress = document.createElement("progress");
    progress.max = 100;
    progress.value = row.progress;
    const progressCell = cell(tr, "progress", progress);
    progressCell.append(` ${row.progress}%`);
    progressCell.dataset.progress = String(row.progress);
    cell(tr, "", row.verb);
    cell(tr, "target", row.target);
    timeCell(tr, row.created);
    timeCell(tr, row.ends);
    const running = row.state === "RUNNING";
    const actions = cell(tr, "actions", actionButton("succeed", "Succeed", running));
    actions.append(
      actionButton("fail", "Fail", running),
      actionButton("cancel", "Cancel", row.cancellable),
      actionButton("delete", "Delete", row.deletable),
    );
  }

  function renderDetails() {
    const entry = view.selected ? view.rows.get(view.selected) : null;
    const panel = $("details");
    if (!view.selected) {
      panel.hidden = true;
      return;
    }
    panel.hidden = false;
    $("details-name").textContent = view.selected;
    $("details-curl").textContent = curlCommand(view.selected);
    $("details-get").textContent = getCommand(view.selected);
    const json = entry ? JSON.stringify(entry.row.operation, null, 2) : "(not on this page, or gone)";
    if ($("details-json").textContent !== json) $("details-json").textContent = json;
  }

  function curlCommand(name) {
    return `curl "${view.restOrigin}/v1/${name}"`;
  }

  function getCommand(name) {
    return `lro-grpc get --endpoint ${view.grpcTarget} ${name}`;
  }

  // --- Helpers -------------------------------------------------------------------------------------------

  function shortTime(iso) {
    return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "Z") : "";
  }

  function timeCell(tr, iso) {
    const [day, clock] = shortTime(iso).split(" ");
    const td = cell(tr, "time", day);
    td.append(document.createElement("br"), clock || "");
    td.title = iso;
  }

  function round(value) {
    return Math.round(value * 1000) / 1000;
  }

  async function copy(text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch (error) {
      const area = document.createElement("textarea");
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    $("copied").textContent = "copied";
    setTimeout(() => ($("copied").textContent = ""), 1500);
  }

  function restartPaging() {
    view.pageTokens = [""];
    $("table-wrap").scrollTop = 0;
    refresh();
  }

  // --- Wiring ------------------------------------------------------------------------------------------------

  $("rows").addEventListener("click", (event) => {
    const tr = event.target.closest("tr");
    if (!tr) return;
    const name = tr.dataset.operationName;
    const button = event.target.closest("button[data-action]");
    if (button) {
      const action = button.dataset.action;
      const body = { name };
      if (action === "fail") {
        body.code = $("fail-code").value;
        body.message = $("fail-message").value;
      }
      if (action === "delete" && view.selected === name) view.selected = null;
      control(`operations:${action}`, body);
      return;
    }
    if (window.getSelection().toString()) return; // selecting text in a row is not a click on it
    view.selected = view.selected === name ? null : name;
    for (const [rowName, entry] of view.rows) entry.tr.classList.toggle("selected", rowName === view.selected);
    renderDetails();
  });

  $("error-close").addEventListener("click", clearError);
  $("copy-name").addEventListener("click", () => copy(view.selected));
  $("copy-curl").addEventListener("click", () => copy(curlCommand(view.selected)));
  $("copy-get").addEventListener("click", () => copy(getCommand(view.selected)));

  $("speed").addEventListener("change", (event) => control("clock:speed", { speed: event.target.value }));
  $("pause").addEventListener("click", () => control($("pause").dataset.paused === "true" ? "clock:resume" : "clock:pause"));
  $("advance").addEventListener("click", () => control("clock:advance", { seconds: $("advance-seconds").value }));
  $("unavailable").addEventListener("change", (event) =>
    control("faults", { unavailable: Number(event.target.value) / 100 }));
  $("resource-exhausted").addEventListener("change", (event) =>
    control("faults", { resourceExhausted: Number(event.target.value) / 100 }));
  $("latency").addEventListener("change", (event) => control("faults", { latencyMs: event.target.value }));

  $("start-api").addEventListener("change", () => {
    const fs = $("start-api").value === "financialservices";
    $("start-parent-label").textContent = fs ? "parent" : "service";
    $("start-parent").value = fs ? "projects/demo-project/locations/us-central1" : "example.googleapis.com";
  });
  $("start").addEventListener("click", () => {
    const fs = $("start-api").value === "financialservices";
    const target = $("start-parent").value.trim();
    control("operations:start", {
      parent: fs ? target : `services/${target}`,
      duration: $("start-duration").value,
      outcome: $("start-outcome").value,
    });
  });

  for (const id of ["filter-api", "filter-state", "page-size", "filter-location", "filter-service"]) {
    $(id).addEventListener("change", restartPaging);
  }
  let typing = 0;
  $("filter-name").addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(restartPaging, 250);
  });
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  $("next").addEventListener("click", () => {
    view.pageTokens.push($("next").dataset.token);
    $("table-wrap").scrollTop = 0;
    refresh();
  });
  $("prev").addEventListener("click", () => {
    if (view.pageTokens.length > 1) view.pageTokens.pop();
    $("table-wrap").scrollTop = 0;
    refresh();
  });

  refresh();
})();
