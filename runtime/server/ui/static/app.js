// The session inspector: a framework-free page over /agent/inspect. Every text from a session is
// set with textContent (never as HTML): transcripts hold whatever users and models wrote.
"use strict";
(() => {
  const API = "/agent/inspect";
  const main = document.getElementById("main");
  const KEY = "repertory.inspector.token";
  let me = null;          // {admin, user_id}
  let stopTail = null;    // ends the live tail of the session on screen

  // -- DOM ----------------------------------------------------------------------------------
  function h(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) e.append(c instanceof Node ? c : String(c));
    return e;
  }
  const fmtTime = (t) => (t ? new Date(t * 1000).toLocaleString() : "—");
  const fmtAgo = (t) => {
    if (!t) return "—";
    const s = Math.max(0, Date.now() / 1000 - t);
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  };
  const fmtMs = (s) => (s === null || s === undefined ? "—" : s < 1 ? `${(s * 1000).toFixed(1)} ms` : `${s.toFixed(2)} s`);
  const fmtBytes = (b) => (b === null || b === undefined ? "—" : b < 1024 ? `${b} B` : b < 1048576 ? `${(b / 1024).toFixed(1)} KB` : `${(b / 1048576).toFixed(1)} MB`);
  const pretty = (v) => JSON.stringify(v, null, 2);

  function confirmAction(text) {
    const dlg = document.getElementById("confirm");
    document.getElementById("confirm-text").textContent = text;
    return new Promise((resolve) => {
      dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
      dlg.returnValue = "";
      dlg.showModal();
    });
  }

  // -- API ----------------------------------------------------------------------------------
  async function api(path, options = {}) {
    const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}` };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(API + path, { ...options, headers: { ...headers, ...(options.headers || {}) },
                                        body: options.body === undefined ? undefined : JSON.stringify(options.body) });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) {
      const err = new Error((data.error && data.error.message) || `HTTP ${r.status}`);
      err.status = r.status;
      throw err;
    }
    return data;
  }
  const userParam = (user) => (user ? `?user_id=${encodeURIComponent(user)}` : "");

  function showError(where, err) {
    if (err.status === 401) return signOut("Your key or token was refused: " + err.message);
    where.append(h("p", { class: "error", role: "alert" }, err.message));
  }

  // -- sign in ------------------------------------------------------------------------------
  function signOut(message) {
    sessionStorage.removeItem(KEY);
    me = null;
    location.hash = "#/signin";
    renderSignIn(message);
  }

  function renderSignIn(message) {
    document.getElementById("nav").hidden = true;
    document.getElementById("signout").hidden = true;
    document.getElementById("who").textContent = "";
    const input = h("input", { id: "token", type: "password", autocomplete: "off", placeholder: "admin key or user token" });
    const form = h("form", { class: "card signin", onsubmit: async (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(KEY, input.value.trim());
      try {
        me = await api("/whoami");
        location.hash = "#/sessions";
        route();
      } catch (err) {
        sessionStorage.removeItem(KEY);
        form.querySelector(".error")?.remove();
        form.append(h("p", { class: "error", role: "alert" }, err.message));
      }
    } }, h("h1", {}, "Sign in to the session inspector"),
      h("p", { class: "muted" }, "The admin key shows every session; a user token shows that user's sessions."),
      input, h("button", { class: "primary", id: "signin", type: "submit" }, "Sign in"),
      message ? h("p", { class: "error" }, message) : null);
    main.replaceChildren(form);
    input.focus();
  }

  // -- sessions list ------------------------------------------------------------------------
  const listState = { q: "", user_id: "", agent: "", activity: "", ttl: "any", offset: 0, limit: 50 };

  async function renderSessions() {
    const f = listState;
    const search = h("input", { id: "search", type: "search", placeholder: "search session or user id", value: f.q });
    const agent = h("input", { id: "agent-filter", placeholder: "agent", value: f.agent, size: 10 });
    const user = me.admin ? h("input", { id: "user-filter", placeholder: "user id", value: f.user_id, size: 10 }) : null;
    const activity = h("select", { id: "activity" },
      [["", "any activity"], ["a3600", "active in the last hour"], ["a86400", "active in the last day"],
       ["i86400", "idle for a day"], ["i604800", "idle for a week"]].map(([v, t]) => h("option", { value: v, selected: v === f.activity }, t)));
    const ttl = h("select", { id: "ttl" }, [["any", "any TTL"], ["expiring", "expiring"], ["pinned", "no TTL"]]
      .map(([v, t]) => h("option", { value: v, selected: v === f.ttl }, t)));
    const apply = () => {
      Object.assign(f, { q: search.value, agent: agent.value, user_id: user ? user.value : "", activity: activity.value,
                         ttl: ttl.value, offset: 0 });
      load();
    };
    search.addEventListener("keydown", (e) => { if (e.key === "Enter") apply(); });
    const table = h("table", { id: "sessions" });
    const pager = h("div", { class: "pager" });
    const errors = h("div");
    main.replaceChildren(h("h1", {}, me.admin ? "Sessions" : `Sessions of ${me.user_id}`),
      h("div", { class: "filters" }, search, user, agent, activity, ttl, h("button", { id: "apply", onclick: apply }, "Search")),
      errors, table, pager);

    async function load() {
      const p = new URLSearchParams({ offset: f.offset, limit: f.limit, ttl: f.ttl });
      if (f.q) p.set("q", f.q);
      if (f.agent) p.set("agent", f.agent);
      if (f.user_id) p.set("user_id", f.user_id);
      if (f.activity) p.set(f.activity[0] === "a" ? "active_within" : "idle_for", f.activity.slice(1));
      errors.replaceChildren();
      let page;
      try { page = await api(`/sessions?${p}`); } catch (err) { return showError(errors, err); }
      table.replaceChildren(
        h("thead", {}, h("tr", {}, ["Session", "User", "Agents", "Turns", "Messages", "Last activity", "Host", "Size", "Expires"].map((c) => h("th", {}, c)))),
        h("tbody", {}, page.items.length ? page.items.map((r) => h("tr", { class: "link", dataset: { key: r.key },
          onclick: () => { location.hash = `#/session/${encodeURIComponent(r.user_id || "")}/${encodeURIComponent(r.session_id)}`; } },
          h("td", {}, h("a", { href: `#/session/${encodeURIComponent(r.user_id || "")}/${encodeURIComponent(r.session_id)}` }, r.session_id)),
          h("td", {}, r.user_id || "—"), h("td", {}, r.agents.join(", ") || h("span", { class: "muted" }, "default")), h("td", {}, r.turns ?? "—"),
          h("td", {}, r.n_messages), h("td", { title: fmtTime(r.updated_at) }, fmtAgo(r.updated_at)), h("td", {}, r.host),
          h("td", {}, fmtBytes(r.size_bytes)), h("td", {}, r.expires_at ? fmtTime(r.expires_at) : "never")))
          : h("tr", {}, h("td", { colspan: 9, class: "muted" }, "No sessions match."))));
      const last = f.offset + page.items.length;
      pager.replaceChildren(
        h("button", { id: "prev", disabled: f.offset === 0, onclick: () => { f.offset = Math.max(0, f.offset - f.limit); load(); } }, "‹ Previous"),
        h("span", { id: "range" }, page.items.length ? `${f.offset + 1}–${last} of ${page.total ?? "many"}` : "0 sessions"),
        h("button", { id: "next", disabled: page.total !== null ? last >= page.total : page.items.length < f.limit,
                      onclick: () => { f.offset += f.limit; load(); } }, "Next ›"));
    }
    await load();
  }

  // -- one session --------------------------------------------------------------------------
  function messageView(m) {
    const role = m.role || "?";
    const usage = m.usage || {};
    const meta = h("div", { class: "meta" }, h("span", { class: "role" }, role),
      m.agent || m.name ? h("span", { class: "agent" }, `agent: ${m.agent || m.name}`) : null,
      m.timestamp ? h("span", {}, fmtTime(m.timestamp)) : null,
      m.latency !== undefined ? h("span", { class: "latency" }, `latency ${fmtMs(m.latency)}`) : null,
      usage.total_tokens !== undefined ? h("span", { class: "tokens" }, `${usage.total_tokens} tokens (${usage.prompt_tokens ?? "?"} in, ${usage.completion_tokens ?? "?"} out)`) : null);
    const body = h("div", { class: "msg " + role, dataset: { index: m.index ?? "" } }, meta);
    if (m.content) body.append(h("div", { class: "content" }, typeof m.content === "string" ? m.content : pretty(m.content)));
    for (const call of m.tool_calls || []) {
      const fn = call.function || {};
      body.append(h("details", { class: "tool-call" }, h("summary", {}, `tool call: ${fn.name || call.name || "?"}`),
        h("pre", {}, typeof fn.arguments === "string" ? fn.arguments : pretty(fn.arguments ?? call))));
    }
    if (role === "tool") body.querySelector(".content")?.replaceWith(h("details", { class: "tool-result" },
      h("summary", {}, `tool result${m.tool_call_id ? " for " + m.tool_call_id : ""}`), h("pre", {}, String(m.content ?? ""))));
    return body;
  }

  function startTail(sessionId, user, after, onChange) {
    const ctrl = new AbortController();
    let running = true;
    (async () => {
      let from = after;
      while (running) {
        try {
          const sep = user ? "&" : "?";
          const r = await fetch(`${API}/sessions/${encodeURIComponent(sessionId)}/tail${userParam(user)}${sep}after=${from}&wait=25`,
            { headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}` }, signal: ctrl.signal });
          if (!r.ok || !r.body) { await new Promise((res) => setTimeout(res, 2000)); continue; }
          const reader = r.body.getReader();
          const dec = new TextDecoder();
          let buf = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buf += dec.decode(value, { stream: true });
            let i;
            while ((i = buf.indexOf("\n\n")) >= 0) {
              const chunk = buf.slice(0, i); buf = buf.slice(i + 2);
              const ev = /^event: (.*)$/m.exec(chunk)?.[1], data = /^data: (.*)$/m.exec(chunk)?.[1];
              if (ev === "messages" && data) {
                const change = JSON.parse(data);
                const msgs = change.messages;
                from = change.reset ? msgs.length : from + msgs.length;
                onChange(change);
              }
            }
          }
        } catch (err) {
          if (!running) return;
          await new Promise((res) => setTimeout(res, 2000));
        }
      }
    })();
    return () => { running = false; ctrl.abort(); };
  }

  async function renderSession(user, sessionId) {
    main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    let d;
    try { d = await api(`/sessions/${encodeURIComponent(sessionId)}${userParam(user)}`); } catch (err) {
      main.replaceChildren(h("h1", {}, sessionId)); return showError(main, err);
    }
    const s = d.state;
    const path = `/sessions/${encodeURIComponent(sessionId)}`;
    const reload = () => renderSession(user, sessionId);
    const act = async (text, fn) => {
      if (!(await confirmAction(text))) return;
      try { await fn(); await reload(); } catch (err) { showError(main, err); }
    };

    const transcript = h("div", { id: "transcript" }, s.history.map((m, i) => messageView({ ...m, index: i })));
    const live = h("span", { class: "live", id: "live" }, "● live");
    stopTail = startTail(sessionId, user, s.history.length, (change) => {
      if (change.reset) transcript.replaceChildren();
      for (const m of change.messages) transcript.append(messageView(m));
      live.textContent = `● live (revision ${change.revision})`;
    });

    const agents = [s.agent?.name, ...Object.keys(s.agents || {}), ...s.history.map((m) => m.agent || m.name)].filter(Boolean);
    const header = h("div", { class: "card" }, h("h1", {}, sessionId),
      h("div", { class: "facts" },
        [["User", s.user_id || "—"], ["Agents", [...new Set(agents)].join(", ") || "—"], ["Turns", s.turns],
         ["Messages", s.history.length], ["Host", d.host], ["Revision", s.revision], ["Created", fmtTime(s.created_at)],
         ["Last activity", fmtTime(s.updated_at)]].map(([k, v]) => h("div", {}, h("span", {}, k), String(v)))),
      h("p", { class: "list-actions" },
        h("button", { id: "undo", class: "danger", disabled: !s.history.length,
                      onclick: () => act("Remove the last turn (the last user message and the replies after it)?",
                                         () => api(`${path}/undo${userParam(user)}`, { method: "POST", body: {} })) }, "Undo last turn"),
        h("button", { id: "fork", onclick: () => act("Fork this session into a new session of the same user?", async () => {
          const r = await api(`${path}/fork${userParam(user)}`, { method: "POST", body: {} });
          location.hash = `#/session/${encodeURIComponent(user || "")}/${encodeURIComponent(r.session_id)}`;
        }) }, "Fork")));

    // Timeline: checkpoints and versions by turn; restore or fork from any of them.
    const marks = [...d.checkpoints.map((c) => ({ ...c, kind: "checkpoint" })), ...d.versions.map((v) => ({ ...v, kind: "version" }))];
    const cpRows = marks.sort((a, b) => (a.timestamp || 0) - (b.timestamp || 0)).map((c) => h("tr", { dataset: { checkpoint: c.id } },
      h("td", {}, h("span", { class: "badge" }, c.kind)), h("td", {}, String(c.id)), h("td", {}, c.label || c.description || "—"),
      h("td", {}, c.turn ?? "—"), h("td", {}, fmtTime(c.timestamp)),
      h("td", { class: "list-actions" },
        h("button", { class: "restore", onclick: () => act(`Restore ${c.kind} ${c.id}${c.label ? ` (“${c.label}”)` : ""}? The session's current state stays reachable through its other checkpoints.`,
          () => api(`${path}/restore${userParam(user)}`, { method: "POST", body: { checkpoint: c.id, kind: c.kind } })) }, "Restore"),
        c.kind === "checkpoint" ? h("button", { class: "fork-at", onclick: () => act(`Fork a new session from checkpoint ${c.id}?`, async () => {
          const r = await api(`${path}/fork${userParam(user)}`, { method: "POST", body: { at: c.id } });
          location.hash = `#/session/${encodeURIComponent(user || "")}/${encodeURIComponent(r.session_id)}`;
        }) }, "Fork here") : null)));
    const timeline = h("div", { class: "card", id: "timeline" }, h("h2", {}, "Timeline"),
      Plot.timeline(marks.map((c) => ({ x: c.turn || 0, label: `${c.kind} ${c.id}: ${c.label || c.description || ""}`, kind: c.kind })), s.turns || 0),
      marks.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Kind", "Id", "Label", "Turn", "Taken", ""].map((c) => h("th", {}, c)))), h("tbody", {}, cpRows))
        : h("p", { class: "muted" }, "No checkpoints or versions yet."));

    const link = (id, label) => h("a", { href: `#/session/${encodeURIComponent(user || "")}/${encodeURIComponent(id)}` }, label || id);
    const tree = h("div", { class: "card tree", id: "branches" }, h("h2", {}, "Branches"),
      h("ul", {}, h("li", {}, d.forked_from ? link(d.forked_from) : h("span", { class: "muted" }, "(no parent)"),
        h("ul", {}, h("li", { class: "current" }, sessionId,
          d.forks.length ? h("ul", {}, d.forks.map((f) => h("li", {}, link(f.session_id), h("span", { class: "muted" }, ` forked ${fmtAgo(f.time)}${f.at !== null && f.at !== undefined ? " at " + f.at : ""}`)))) : null)))));

    const workflows = workflowView(d.workflows, sessionId, user, reload);
    // The shared state this session's agents work on (recorded by its turns), for whoever sees
    // the session; with the admin key, any other one by id as well.
    const own = d.shared_state ? h("div", { class: "card", id: "session-shared" }, h("h2", {}, "Shared state ", h("span", { class: "muted" }, d.shared_state.id)),
      h("p", { class: "muted" }, `revision ${d.shared_state.revision}`), h("pre", { id: "session-shared-values" }, pretty(d.shared_state.values))) : null;
    const shared = me.admin ? sharedView("") : null;
    const data = h("div", { class: "card" }, h("h2", {}, "Data"),
      [["user_data", s.user_data], ["user_profile", s.user_profile], ["metadata", s.metadata], ["metrics", s.metrics]]
        .map(([k, v]) => h("details", {}, h("summary", {}, k), h("pre", {}, pretty(v)))));

    main.replaceChildren(header, h("div", { class: "cols" },
      h("div", {}, h("div", { class: "card" }, h("h2", {}, "Transcript ", live), transcript)),
      h("div", {}, timeline, tree, workflows, own, shared, data)));
  }

  // Any shared state by id (admin only: shared states belong to no user).
  function sharedView(initial) {
    const input = h("input", { id: "shared-id", placeholder: "shared state id", value: initial });
    const out = h("div");
    const load = async () => {
      out.replaceChildren();
      if (!input.value.trim()) return;
      try {
        const st = await api(`/shared/${encodeURIComponent(input.value.trim())}`);
        out.append(h("p", { class: "muted" }, `revision ${st.revision}`), h("pre", { id: "shared-values" }, pretty(st.values)));
      } catch (err) { showError(out, err); }
    };
    const card = h("div", { class: "card", id: "shared" }, h("h2", {}, "Shared state"),
      h("div", { class: "filters" }, input, h("button", { id: "shared-load", onclick: load }, "Show")), out);
    if (initial) load();
    return card;
  }

  function workflowView(workflows, sessionId, user, reload) {
    const names = Object.keys(workflows || {});
    const card = h("div", { class: "card", id: "workflows" }, h("h2", {}, "Workflows"));
    if (!names.length) { card.append(h("p", { class: "muted" }, "No workflows in this session.")); return card; }
    for (const name of names) {
      const wf = workflows[name];
      const tasks = wf.tasks || {};
      card.append(h("h3", {}, name, " ", h("span", { class: `badge status-${wf.status}` }, wf.status)));
      card.append(Plot.graph(tasks));
      card.append(h("table", { class: "tasks" }, h("thead", {}, h("tr", {}, ["Task", "After", "Status", "Duration", "Result", ""].map((c) => h("th", {}, c)))),
        h("tbody", {}, Object.entries(tasks).map(([task, e]) => h("tr", { dataset: { task } },
          h("td", {}, task), h("td", {}, (e.depends_on || []).join(", ") || "—"),
          h("td", {}, h("span", { class: `badge status-${e.status}` }, e.status)),
          h("td", {}, e.started && e.time ? fmtMs(e.time - e.started) : "—"),
          h("td", {}, e.output ? h("details", {}, h("summary", {}, String(e.output).slice(0, 40)), h("pre", {}, String(e.output))) : (e.error || e.note || "—")),
          h("td", { class: "list-actions" }, e.status === "pending_approval" ? [
            h("button", { class: "approve primary", onclick: () => decide(name, task, true) }, "Approve"),
            h("button", { class: "reject danger", onclick: () => decide(name, task, false) }, "Reject")] : null))))));
    }
    async function decide(wf, task, approve) {
      if (!(await confirmAction(`${approve ? "Approve" : "Reject"} task ${task} of ${wf}?`))) return;
      try {
        await api(`/sessions/${encodeURIComponent(sessionId)}/workflows/${encodeURIComponent(wf)}/tasks/${encodeURIComponent(task)}/decision${userParam(user)}`,
          { method: "POST", body: { approve, note: approve ? "approved in the inspector" : "rejected in the inspector" } });
        await reload();
      } catch (err) { showError(card, err); }
    }
    return card;
  }

  // -- workflows and batches ------------------------------------------------------------------
  async function renderBatches() {
    main.replaceChildren(h("h1", {}, "Workflows & batches"), h("p", { class: "muted" },
      "Batch jobs run in sessions named batch-<job id>; open one for its transcript or its workflow's task graph and approvals."));
    const out = h("div");
    main.append(out);
    if (me.admin) {
      try {
        const runs = await api(`/batches`);
        out.append(h("div", { class: "card", id: "batch-runs" }, h("h2", {}, "Batch runs"),
          runs.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Output", "Status", "Progress", "OK", "Failed", "Skipped", "Turns", "Jobs/s", "Updated"].map((c) => h("th", {}, c)))),
            h("tbody", {}, runs.map((r) => {
              const done = (r.ok || 0) + (r.failed || 0) + (r.skipped || 0);
              return h("tr", { class: "batch-run" }, h("td", {}, r.output), h("td", {}, r.status),
                h("td", {}, h("progress", { max: r.total || 1, value: done }), ` ${done}/${r.total}`),
                h("td", {}, String(r.ok)), h("td", {}, String(r.failed)), h("td", {}, String(r.skipped)), h("td", {}, String(r.turns)),
                h("td", {}, r.seconds ? ((r.ok + r.failed) / r.seconds).toFixed(1) : "-"), h("td", {}, fmtAgo(r.updated_at)));
            })))
            : h("p", { class: "muted" }, "No batch runs recorded yet.")));
      } catch (err) { showError(out, err); }
    }
    try {
      const page = await api(`/sessions?q=batch-&limit=200`);
      const done = page.items.filter((r) => (r.turns || 0) > 0).length;
      out.append(h("div", { class: "card", id: "batch-progress" }, h("h2", {}, "Batch sessions"),
        h("p", {}, `${page.total ?? page.items.length} batch sessions, ${done} of the ${page.items.length} shown have run turns`),
        h("progress", { max: page.items.length || 1, value: done }),
        h("table", {}, h("tbody", {}, page.items.map((r) => h("tr", {},
          h("td", {}, h("a", { href: `#/session/${encodeURIComponent(r.user_id || "")}/${encodeURIComponent(r.session_id)}` }, r.session_id)),
          h("td", {}, `${r.turns ?? 0} turns`), h("td", {}, fmtAgo(r.updated_at))))))));
    } catch (err) { showError(out, err); }
  }

  // -- cluster ----------------------------------------------------------------------------
  async function renderCluster() {
    main.replaceChildren(h("h1", {}, "Cluster"));
    const out = h("div", { id: "cluster" });
    main.append(out);
    let hosts;
    try { hosts = await api("/cluster"); } catch (err) { return showError(out, err); }
    out.append(h("table", { id: "hosts" },
      h("thead", {}, h("tr", {}, ["Host", "Resident", "Activations", "Passivations", "Turns", "Errors", "Cancelled", "Turn p50", "p95", "p99", "Store p50", "Store p95", "CAS retries"].map((c) => h("th", {}, c)))),
      h("tbody", {}, hosts.map((s) => h("tr", {}, h("td", {}, s.host), h("td", {}, s.resident), h("td", {}, s.activations),
        h("td", {}, s.passivations), h("td", {}, s.turns), h("td", {}, s.turn_errors), h("td", {}, s.turns_cancelled ?? 0), h("td", {}, fmtMs(s.turn_p50)),
        h("td", {}, fmtMs(s.turn_p95)), h("td", {}, fmtMs(s.turn_p99)), h("td", {}, fmtMs(s.store_p50)),
        h("td", {}, fmtMs(s.store_p95)), h("td", {}, s.cas_retries))))));
    const series = [];
    for (const s of hosts) {
      if (!s.series.length) continue;
      series.push({ name: `${s.host} p50`, points: s.series.map((p) => [p.start, p.p50 * 1000]) });
      series.push({ name: `${s.host} p95`, points: s.series.map((p) => [p.start, p.p95 * 1000]) });
    }
    out.append(h("div", { class: "card" }, h("h2", {}, "Turn latency over time (ms, 10 s windows)"),
      Plot.lines(series, { label: "turn latency percentiles", yFormat: (v) => v.toFixed(v < 10 ? 1 : 0) })));
    out.append(h("div", { class: "card" }, h("h2", {}, "Resident sessions per host"),
      Plot.bars(hosts.map((s) => ({ label: s.host, value: s.resident })), { label: "resident sessions" })));
    out.append(h("div", { class: "card" }, h("h2", {}, "Activations and passivations"),
      Plot.bars(hosts.flatMap((s) => [{ label: `${s.host} act`, value: s.activations }, { label: `${s.host} pass`, value: s.passivations }]),
                { label: "activations and passivations" })));
  }

  // -- routing ------------------------------------------------------------------------------
  async function route() {
    if (stopTail) { stopTail(); stopTail = null; }
    if (!sessionStorage.getItem(KEY)) return renderSignIn();
    if (!me) {
      try { me = await api("/whoami"); } catch (err) { return signOut(err.message); }
    }
    document.getElementById("nav").hidden = false;
    document.getElementById("signout").hidden = false;
    document.getElementById("nav-cluster").hidden = !me.admin;
    document.getElementById("who").textContent = me.admin ? "admin" : `user ${me.user_id}`;
    const parts = location.hash.replace(/^#\/?/, "").split("/");
    const page = parts[0] || "sessions";
    for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
    if (page === "session") return renderSession(decodeURIComponent(parts[1] || "") || null, decodeURIComponent(parts.slice(2).join("/")));
    if (page === "cluster") return renderCluster();
    if (page === "batches") return renderBatches();
    return renderSessions();
  }

  document.getElementById("signout").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  route();
})();
