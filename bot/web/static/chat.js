// EveryCSR web chat: posts to /api/v1/chat and renders text, choices and cards.
// All message text is inserted with textContent, never as HTML.
(function () {
  "use strict";
  const root = document.getElementById("chat");
  const log = document.getElementById("log");
  const form = document.getElementById("composer");
  const input = document.getElementById("text");
  // who the member is comes from the server's HttpOnly session cookie, never from this page
  let lastUpdate = Number(localStorage.getItem("everycsr-last-update") || 0);

  function add(who, reply) {
    const li = document.createElement("li");
    li.className = "msg " + who;
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    bubble.textContent = reply.text || "";
    li.appendChild(bubble);
    (reply.cards || []).forEach(function (card) {
      const a = document.createElement("a");
      a.className = "card";
      a.href = card.url || "#";
      a.rel = "noopener";
      const t = document.createElement("strong"); t.textContent = card.title; a.appendChild(t);
      if (card.description) { const d = document.createElement("span"); d.textContent = card.description; a.appendChild(d); }
      li.appendChild(a);
    });
    if ((reply.choices || []).length) {
      const box = document.createElement("div");
      box.className = "choices";
      reply.choices.forEach(function (c) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "choice";
        b.textContent = c.label;
        b.addEventListener("click", function () {
          box.querySelectorAll("button").forEach(function (x) { x.disabled = true; });
          b.classList.add("picked");
          send({ action: c.action }, c.label);
        });
        box.appendChild(b);
      });
      li.appendChild(box);
    }
    log.appendChild(li);
    li.scrollIntoView({ block: "end" });
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

  async function poll() {
    try {
      const res = await fetch("/api/v1/chat/updates?after=" + lastUpdate);
      if (res.ok) {
        const data = await res.json();
        data.messages.forEach(function (m) {
          add("bot agent", m);
          lastUpdate = m.id;
          localStorage.setItem("everycsr-last-update", String(lastUpdate));
        });
      }
    } catch (e) { /* offline: try again later */ }
    setTimeout(poll, 3000);
  }
  setTimeout(poll, 3000);
  input.focus();
})();
