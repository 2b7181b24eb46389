// EveryCSR web chat: posts to /api/v1/chat and renders text, choices and cards.
// On load it shows the member's conversation again (/api/v1/chat/history); messages sent
// later (agent replies, peer answers) arrive by server-sent events (/api/v1/chat/events),
// or by polling /api/v1/chat/updates when the browser cannot keep a stream open.
// All message text is inserted with textContent, never as HTML.
(function () {
  "use strict";
  const root = document.getElementById("chat");
  const log = document.getElementById("log");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  const older = document.getElementById("older");
  // who the member is comes from the server's HttpOnly session cookie, never from this page
  let lastUpdate = 0;
  let firstId = null;
  let stream = null;
  let polling = false;

  function choiceBox(choices, live) {
    const box = document.createElement("div");
    box.className = "choices";
    choices.forEach(function (c) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "choice";
      b.textContent = c.label;
      if (!live || c.active === false) {
        b.disabled = true;  // an old menu: shown, never sent again
      } else {
        b.addEventListener("click", function () {
          box.querySelectorAll("button").forEach(function (x) { x.disabled = true; });
          b.classList.add("picked");
          send({ action: c.action }, c.label);
        });
      }
      box.appendChild(b);
    });
    return box;
  }

  function bubble(who, reply, live) {
    const li = document.createElement("li");
    li.className = "msg " + who;
    const text = document.createElement("div");
    text.className = "bubble";
    text.textContent = reply.text || "";
    li.appendChild(text);
    (reply.cards || []).forEach(function (card) {
      const a = document.createElement("a");
      a.className = "card";
      a.href = card.url || "#";
      a.rel = "noopener";
      const t = document.createElement("strong"); t.textContent = card.title; a.appendChild(t);
      if (card.description) { const d = document.createElement("span"); d.textContent = card.description; a.appendChild(d); }
      li.appendChild(a);
    });
    if ((reply.choices || []).length) li.appendChild(choiceBox(reply.choices, live));
    return li;
  }

  function add(who, reply) {
    // a new menu replaces the old ones: only the newest can still be tapped
    if ((reply.choices || []).length) {
      log.querySelectorAll(".choices button").forEach(function (x) { x.disabled = true; });
    }
    const li = bubble(who, reply, true);
    log.appendChild(li);
    li.scrollIntoView({ block: "end" });
  }

  function delivered(m) {
    if (m.id <= lastUpdate) return;  // already shown (history, or the stream and a poll both)
    lastUpdate = m.id;
    add("bot agent", m);
  }

  function msgId() {
    return (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()).replace(/-/g, "");
  }

  async function send(body, echo) {
    add("me", { text: echo });
    body.msg_id = msgId();
    body.locale = root.dataset.locale;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const res = await fetch("/api/v1/chat", {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        });
        const data = await res.json();
        if (!res.ok) { add("bot error", { text: data.error || root.dataset.error }); return; }
        data.replies.forEach(function (r) { add("bot", r); });
        listen();  // the first message creates the conversation the stream belongs to
        return;
      } catch (e) {
        // the same msg_id is retried: the server answers it once
        await new Promise(function (r) { setTimeout(r, 500 * (attempt + 1)); });
      }
    }
    add("bot error", { text: root.dataset.error });
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    send({ text: text }, text);
  });

  function listen() {
    if (stream || polling) return;
    if (!window.EventSource) { poll(); return; }
    let failures = 0;
    stream = new EventSource("/api/v1/chat/events?after=" + lastUpdate);
    stream.onopen = function () { failures = 0; root.dataset.live = "events"; };
    stream.onmessage = function (ev) {
      try { delivered(JSON.parse(ev.data)); } catch (e) { /* not ours */ }
    };
    stream.onerror = function () {
      failures += 1;
      // refused, or cut off again and again (a proxy that buffers): poll instead
      if (stream.readyState === EventSource.CLOSED || failures >= 3) {
        stream.close();
        poll();
      }
    };
  }

  async function poll() {
    polling = true;
    root.dataset.live = "polling";
    try {
      const res = await fetch("/api/v1/chat/updates?after=" + lastUpdate);
      if (res.ok) (await res.json()).messages.forEach(delivered);
    } catch (e) { /* offline: try again later */ }
    setTimeout(poll, 3000);
  }

  function render(entries, before) {
    const frag = document.createDocumentFragment();
    entries.forEach(function (e) {
      const who = e.direction === "in" ? "me" : (e.kind === "agent" ? "bot agent" : "bot");
      frag.appendChild(bubble(who, e, true));
    });
    if (before) log.insertBefore(frag, before); else log.appendChild(frag);
  }

  async function history(before) {
    const url = "/api/v1/chat/history" + (before ? "?before=" + before : "");
    const res = await fetch(url);
    if (!res.ok) return null;
    const data = await res.json();
    if (data.entries.length) firstId = data.entries[0].id;
    older.hidden = !data.more;
    return data;
  }

  older.addEventListener("click", async function () {
    const anchor = log.children[1] || null;  // after the greeting
    const data = await history(firstId);
    if (data) render(data.entries, anchor);
  });

  (async function start() {
    try {
      const data = await history(null);
      if (data) {
        render(data.entries, null);
        lastUpdate = data.last_update;
        if (data.entries.length) {
          log.lastElementChild.scrollIntoView({ block: "end" });
          listen();
        }
      }
    } catch (e) { /* offline: the page still sends */ }
    root.dataset.ready = "1";
  })();
  input.focus();
})();
