// Prism web chat: posts to /v1/chat and reads its Server-Sent Events stream with fetch
// (EventSource cannot POST). Tokens stream into the reply; tool steps appear in the side
// panel as they happen; cards (poster, reason, evidence) stream as soon as the picks are
// chosen, and the final answer's cards replace them.
"use strict";

const $ = (id) => document.getElementById(id);
const sessionId = sessionStorage.getItem("prism-session") ||
  "web-" + Math.random().toString(36).slice(2, 10);
sessionStorage.setItem("prism-session", sessionId);
$("session-label").textContent = "session " + sessionId;
$("token").value = localStorage.getItem("prism-token") || "";
$("token").addEventListener("change", () => localStorage.setItem("prism-token", $("token").value));

let recorded = null;

function headers() {
  const token = $("token").value.trim();
  return token ? { Authorization: "Bearer " + token } : {};
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function addStep(text, error) {
  const li = el("li", error ? "error" : "", text);
  $("steps").appendChild(li);
  return li;
}

const posters = new Map();  // item id -> the promise of its poster's blob URL, fetched once

function posterUrl(itemId) {
  // Posters need the bearer token too, so they are fetched and shown as blobs.
  if (!posters.has(itemId)) {
    posters.set(itemId, fetch(`/v1/items/${encodeURIComponent(itemId)}/image/0`, { headers: headers() })
      .then(async (response) => (response.ok ? URL.createObjectURL(await response.blob()) : null)));
  }
  return posters.get(itemId);
}

function cardFor(itemId, title, reason, evidence) {
  // evidence: [{kind, text}], the quotes the reason rests on
  const card = el("article", "card");
  card.dataset.itemId = itemId;
  const img = el("img");
  img.alt = "poster";
  posterUrl(itemId).then((url) => { if (url) img.src = url; else img.remove(); });
  card.appendChild(img);
  const body = el("div", "body");
  body.appendChild(el("h3", "", title || itemId));
  body.appendChild(el("p", "reason", reason));
  for (const ev of evidence) body.appendChild(el("blockquote", "evidence", `${ev.kind}: “${ev.text}”`));
  card.appendChild(body);
  return card;
}

function renderCards(result, cards) {
  // The final answer's cards replace the ones streamed while it was written.
  cards.replaceChildren();
  for (const pick of result.answer.picks) {
    const title = result.titles && result.titles[pick.item_id];
    const evidence = pick.evidence.map((id) => result.evidence[id]).filter(Boolean);
    cards.appendChild(cardFor(pick.item_id, title, pick.reason, evidence));
  }
}

async function send(event) {
  event.preventDefault();
  const text = $("text").value.trim();
  const image = $("image").files[0];
  const audio = $("audio").files[0] || recorded;
  if (!text && !image && !audio) return;
  const form = new FormData();
  form.append("session_id", sessionId);
  form.append("text", text);
  if (image) form.append("image", image);
  if (audio) form.append("audio", audio, audio.name || "voice.webm");
  const attached = [image && "image " + image.name, audio && "voice message"].filter(Boolean).join(", ");
  $("log").appendChild(el("div", "msg user", (text || "") + (attached ? ` [${attached}]` : "")));
  $("text").value = ""; $("image").value = ""; $("audio").value = ""; recorded = null;
  $("attached").textContent = "";
  $("send").disabled = true;
  const reply = el("div", "msg prism", "");
  $("log").appendChild(reply);
  const cards = el("div", "cards");
  $("log").appendChild(cards);
  try {
    const response = await fetch("/v1/chat", { method: "POST", body: form, headers: headers() });
    if (!response.ok) {
      const detail = (await response.json().catch(() => ({}))).detail || response.statusText;
      reply.className = "msg error"; reply.textContent = `Error ${response.status}: ${detail}`;
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const pending = {};
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        let name = "message", data = "";
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trimStart();
        }
        if (!data) continue;
        const payload = JSON.parse(data);
        if (name === "token") {
          reply.textContent += payload.text;
        } else if (name === "tool") {
          if (payload.status === "start") pending[payload.name] = addStep(`${payload.name} ${JSON.stringify(payload.arguments)}`);
          else if (pending[payload.name]) pending[payload.name].textContent += ` (${payload.seconds}s${payload.error ? ", " + payload.error : ""})`;
        } else if (name === "step") {
          addStep(`${payload.status}: ${payload.error}`, true);
        } else if (name === "card") {
          cards.appendChild(cardFor(payload.item_id, payload.title, payload.reason, payload.evidence));
        } else if (name === "answer") {
          reply.textContent = payload.answer.message || payload.text;
          renderCards(payload, cards);
        } else if (name === "error") {
          reply.className = "msg error"; reply.textContent = payload.detail;
          cards.replaceChildren();
        }
      }
    }
  } catch (error) {
    reply.className = "msg error"; reply.textContent = String(error);
  } finally {
    $("send").disabled = false;
    $("log").scrollTop = $("log").scrollHeight;
  }
}

async function record() {
  // Record a voice message with the microphone (where the browser allows it).
  if (!navigator.mediaDevices || !window.MediaRecorder) { $("attached").textContent = "recording is not available"; return; }
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  recorder.onstop = () => {
    stream.getTracks().forEach((t) => t.stop());
    recorded = new File(chunks, "voice.webm", { type: recorder.mimeType || "audio/webm" });
    $("attached").textContent = "voice message recorded";
    $("record").textContent = "Record";
  };
  recorder.start();
  $("record").textContent = "Stop";
  $("record").onclick = () => { recorder.stop(); $("record").onclick = record; };
}

$("composer").addEventListener("submit", send);
$("record").onclick = record;
for (const id of ["image", "audio"]) {
  $(id).addEventListener("change", () => {
    $("attached").textContent = [$("image").files[0], $("audio").files[0]].filter(Boolean).map((f) => "attached " + f.name).join(", ");
  });
}
