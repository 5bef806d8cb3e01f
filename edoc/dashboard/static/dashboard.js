/* edoc dashboards: draw the charts and keep the page current by polling its JSON data.
   The page is rendered on the server first; this only redraws what the data changes. */
"use strict";
(function () {
  const body = document.body;
  const api = body.dataset.api;
  const interval = Number(body.dataset.interval) || 2000;
  const LIVE_SAMPLES = 90; // polls kept on the live chart
  const COLORS = { sent: "#1c7ed6", received: "#2b8a3e", rejected: "#c92a2a" };
  const live = { times: [], totals: [] };

  function cell(text, className) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "—" : String(text);
    if (className) td.className = className;
    return td;
  }

  function fill(id, rows, cells, rowClass) {
    const tbody = document.getElementById(id);
    if (!tbody) return;
    tbody.replaceChildren(...rows.map((row) => {
      const tr = document.createElement("tr");
      const className = rowClass ? rowClass(row) : "";
      if (className) tr.className = className;
      tr.append(...cells(row));
      return tr;
    }));
  }

  function share(value) {
    return value === null || value === undefined ? "—" : (value * 100).toFixed(1) + " %";
  }

  function totals(data) {
    document.querySelectorAll("[data-total]").forEach((element) => {
      const value = data.totals[element.dataset.total];
      element.textContent = element.dataset.format === "share" ? share(value) : String(value);
    });
    document.getElementById("updated").textContent = data.generated_at;
  }

  function options(stacked) {
    return {
      animation: false, responsive: true, maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: { x: { stacked: stacked }, y: { beginAtZero: true, ticks: { precision: 0 } } },
    };
  }

  function dataset(name, values, type) {
    return { label: name, data: values, type: type, borderColor: COLORS[name],
             backgroundColor: COLORS[name], borderWidth: 2, pointRadius: 0, tension: .25 };
  }

  const traffic = new Chart(document.getElementById("traffic"), { type: "bar", data: { labels: [], datasets: [] }, options: options(false) });
  const liveChart = new Chart(document.getElementById("live"), { type: "line", data: { labels: [], datasets: [] }, options: options(false) });

  function drawTraffic(data) {
    const series = data.traffic.series;
    traffic.data.labels = data.traffic.days.map((day) => day.slice(5));
    traffic.data.datasets = Object.keys(series).map((name) => dataset(name, series[name], "bar"));
    traffic.update();
  }

  function drawLive(data) {
    const names = Object.keys(data.traffic.series);
    live.times.push(data.generated_at.slice(11, 19));
    live.totals.push(names.map((name) => data.totals[name === "rejected" ? "refused" : name] || 0));
    if (live.times.length > LIVE_SAMPLES) { live.times.shift(); live.totals.shift(); }
    liveChart.data.labels = live.times.slice(1);
    liveChart.data.datasets = names.map((name, n) => dataset(name,
      live.totals.slice(1).map((now, i) => Math.max(0, now[n] - live.totals[i][n])), "line"));
    liveChart.update();
  }

  function drawAlerts(data) {
    const list = document.getElementById("alerts");
    const items = data.alerts.length ? data.alerts : [{ level: "ok", what: "", text: "No alerts" }];
    list.replaceChildren(...items.map((alert) => {
      const li = document.createElement("li");
      li.className = "alert " + alert.level;
      const what = document.createElement("b");
      what.textContent = alert.what;
      li.append(what, " " + alert.text);
      return li;
    }));
  }

  function refusedText(byCode) {
    return Object.entries(byCode).map(([code, count]) => code + ": " + count).join(", ");
  }

  function drawHub(data) {
    drawAlerts(data);
    fill("provinces", data.provinces, (r) => [cell(r.code), cell(r.name), cell(r.sent_today, "n"),
      cell(r.received_today, "n"), cell(r.sent, "n"), cell(r.received, "n"), cell(r.queue, "n"),
      cell(r.stuck, "n"),
      cell(r.last_poll_seconds === null ? null : r.last_poll_seconds + " s ago"), cell(refusedText(r.refused_by_code))]);
    fill("refusals", Object.entries(data.refusals), ([code, count]) => [cell(code), cell(count, "n")]);
    fill("certificates", data.certificates, (c) => [cell(c.org_id + " " + c.org_name), cell(c.kind),
      cell(c.serial, "serial"), cell(c.expires), cell(c.days_left, "n"), cell(c.state)], (c) => (c.warning ? "warning" : ""));
    fill("funnel", data.funnel, (f) => [cell(f.label), cell(f.reached, "n"),
      cell(f.median_seconds === null ? null : f.median_seconds + " s", "n")]);
    const relay = data.relay;
    fill("relay", [["p50", relay.p50_seconds], ["p99", relay.p99_seconds], ["deliveries", relay.deliveries]],
      ([name, value]) => [cell(name), cell(value === null || name === "deliveries" ? value : value + " s", "n")]);
    document.getElementById("crl-age").textContent = data.crl_age_hours === null ? "—" : data.crl_age_hours;
    // computed at most every few seconds (the hub's flow_every): when, beside them
    document.querySelectorAll(".flow-at").forEach((element) => { element.textContent = data.flow_at; });
  }

  function reopenCell(row) {
    const td = document.createElement("td");
    if (row.state !== "failed") return td;
    const form = document.createElement("form");
    form.method = "post";
    form.action = document.getElementById("troubled").dataset.reopen;
    form.className = "reopen";
    for (const [name, value] of [["outgoing_id", row.id], ["route", row.route]]) {
      const input = document.createElement("input");
      input.type = "hidden"; input.name = name; input.value = String(value);
      form.append(input);
    }
    const button = document.createElement("button");
    button.type = "submit"; button.textContent = "Retry";
    form.append(button);
    td.append(form);
    return td;
  }

  function drawNode(data) {
    document.getElementById("hub-state").hidden = !data.hub_unreachable;
    document.getElementById("hub-refusal").hidden = !data.hub_refuses_node;
    fill("troubled", data.troubled, (r) => [cell(r.document_id), cell(r.sender), cell(r.subject),
      cell(r.route), cell(r.state), cell(r.attempts, "n"), cell(r.last_error), reopenCell(r)],
      (r) => (r.state === "failed" ? "danger" : "warning"));
    fill("agencies", data.agencies, (r) => [cell(r.org_id + " " + r.name), cell(r.sent, "n"), cell(r.received, "n")]);
    fill("partners", data.partners, (r) => [cell(r.code + " " + r.name), cell(r.sent, "n"), cell(r.received, "n")]);
    fill("recent", data.recent, (r) => [cell(r.created_at), cell(r.document_id), cell(r.sender), cell(r.subject),
      cell(r.recipients.map((x) => x.org_id + ": " + x.state).join("  "))]);
  }

  function draw(data) {
    totals(data);
    drawTraffic(data);
    drawLive(data);
    (body.dataset.view === "hub" ? drawHub : drawNode)(data);
  }

  function query() {
    const form = document.getElementById("filters");
    return new URLSearchParams(new FormData(form)).toString();
  }

  let timer = null;
  async function poll() {
    clearTimeout(timer);
    try {
      const response = await fetch(api + "?" + query(), { headers: { Accept: "application/json" } });
      if (response.status === 401) { window.location.reload(); return; } // the login went stale
      if (response.ok) draw(await response.json());
    } finally {
      timer = setTimeout(poll, interval);
    }
  }

  function envelopeCell(hop) {
    const td = document.createElement("td");
    const link = document.createElement("a");
    link.href = document.getElementById("trace").dataset.envelope + hop.delivery_id;
    link.textContent = "download";
    link.setAttribute("download", "");
    td.append(link);
    return td;
  }

  // a search by DocumentId answers one document's hops; by organization and day, documents
  const found = (answer) => (answer.documents || [{ document_id: answer.document_id, hops: answer.hops }]);

  async function search(event) {
    event.preventDefault();
    const form = event.target;
    const response = await fetch(form.action + "?" + new URLSearchParams(new FormData(form)),
                                 { headers: { Accept: "application/json" } });
    const answer = await response.json();
    const documents = response.ok ? found(answer) : [];
    const rows = documents.flatMap((d) => d.hops.map((hop) => ({ document_id: d.document_id, hop: hop })));
    document.getElementById("search-result").textContent = response.ok
      ? (answer.documents ? documents.length + (answer.more ? "+" : "") + " documents, " : "")
        + rows.length + " deliveries through the hub"
      : answer.error.code + ": " + answer.error.message;
    document.getElementById("trace-table").hidden = !rows.length;
    fill("trace", rows, ({ document_id, hop: h }) => [cell(document_id), cell(h.accepted_at),
      cell(h.kind === "document" ? "document" : "status " + h.status_code),
      cell(h.sender), cell(h.recipient), cell(h.node), cell(h.attempts, "n"), cell(h.delivered_at || "waiting"),
      envelopeCell(h)]);
  }

  document.querySelectorAll("form.search").forEach((form) => form.addEventListener("submit", search));
  document.querySelectorAll("#filters select").forEach((select) => select.addEventListener("change", poll));
  document.querySelectorAll("form.retry").forEach((form) => form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const response = await fetch(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)),
                                                headers: { Accept: "application/json" } });
    const answer = await response.json();
    document.getElementById("retry-result").textContent = response.ok
      ? "Transfers on route " + answer.retried + " are tried again now."
      : answer.error.code + ": " + answer.error.message;
    poll();
  }));

  const troubledRows = document.getElementById("troubled");
  if (troubledRows) troubledRows.addEventListener("submit", async (event) => {
    // the rows are redrawn with every poll: one listener on the table serves them all
    event.preventDefault();
    const form = event.target;
    const response = await fetch(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)),
                                                headers: { Accept: "application/json" } });
    const answer = await response.json();
    document.getElementById("retry-result").textContent = response.ok
      ? "Transfer of document " + answer.reopened.outgoing_id + " on route " + answer.reopened.route + " is tried again."
      : answer.error.code + ": " + answer.error.message;
    poll();
  });

  draw(JSON.parse(document.getElementById("initial").textContent));
  timer = setTimeout(poll, interval);
})();
