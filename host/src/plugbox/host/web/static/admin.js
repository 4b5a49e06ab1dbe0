// The admin page's only script. It keeps the operator's API token in sessionStorage (this tab
// only), fetches the server-rendered fragment named by <main data-part> with it every 2 seconds,
// and turns buttons with data-post into POSTs to the JSON API. It never builds HTML from data:
// fragments come escaped from the server, messages are set with textContent.
"use strict";

(function () {
  const KEY = "plugbox.token";
  const POLL_MS = 2000;
  const main = document.getElementById("content");
  const signin = document.getElementById("signin");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token");
  const problem = document.getElementById("problem");
  const who = document.getElementById("who");
  const forget = document.getElementById("forget");
  const live = document.getElementById("live");
  const toasts = document.getElementById("toasts");
  let timer = null;
  let shown = "";
  let busy = false;

  const token = () => sessionStorage.getItem(KEY);

  function showProblem(text) {
    problem.textContent = text;
    problem.hidden = !text;
  }

  function toast(text, tone, href) {
    const item = document.createElement(href ? "a" : "div");
    item.className = "toast tone-" + tone;
    item.textContent = text;
    if (href) item.href = href;
    toasts.prepend(item);
    setTimeout(() => item.remove(), 6000);
  }

  async function message(response) {
    // Every API error is {code, message}; anything else (a proxy's page) gets a plain sentence.
    try {
      const body = await response.json();
      if (body && body.message) return body.message;
    } catch (_) { /* not JSON */ }
    return "the host answered " + response.status + " " + response.statusText;
  }

  function askForToken(why) {
    signin.hidden = false;
    forget.hidden = true;
    who.textContent = "";
    live.classList.remove("on");
    main.hidden = true;
    showProblem(why || "");
    input.focus();
  }

  async function refresh() {
    if (busy || !token()) return;
    busy = true;
    try {
      const response = await fetch(main.dataset.part, {
        headers: { Authorization: "Bearer " + token() },
        cache: "no-store",
      });
      if (response.status === 401 || response.status === 403) {
        const text = await message(response);
        sessionStorage.removeItem(KEY);
        stop();
        askForToken("The token was refused: " + text);
        return;
      }
      if (!response.ok) {
        main.hidden = true;
        showProblem(await message(response));
        return;
      }
      const html = await response.text();
      who.textContent = response.headers.get("X-Plugbox-Token") || "";
      signin.hidden = true;
      forget.hidden = false;
      main.hidden = false;
      live.classList.add("on");
      showProblem("");
      if (html !== shown) {
        main.innerHTML = html; // server-rendered with autoescaping; see ADR 0018
        shown = html;
      }
    } catch (err) {
      live.classList.remove("on");
      const next = main.dataset.poll === "on" ? "retrying every 2 seconds" : "reload the page to retry";
      showProblem("Cannot reach the plugbox host (" + err.message + "); " + next + ".");
    } finally {
      busy = false;
    }
  }

  function start() {
    stop();
    refresh();
    if (main.dataset.poll === "on") {
      timer = setInterval(() => { if (!document.hidden) refresh(); }, POLL_MS);
    }
  }

  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
  }

  const DONE = {
    trigger: (body) => ["Run " + body.run_id.slice(0, 8) + " queued — open it", "/ui/runs/" + encodeURIComponent(body.run_id)],
    pause: (body) => [body.job + " paused", null],
    resume: (body) => [body.job + " resumed", null],
    cancel: (body) => ["Run " + body.run_id.slice(0, 8) + " is being cancelled", null],
  };

  async function post(button) {
    button.disabled = true;
    try {
      const response = await fetch(button.dataset.post, {
        method: "POST",
        headers: { Authorization: "Bearer " + token() },
      });
      if (!response.ok) {
        toast(await message(response), "bad");
        return;
      }
      const [text, href] = DONE[button.dataset.what](await response.json());
      toast(text, "good", href);
    } catch (err) {
      toast("Cannot reach the plugbox host: " + err.message, "bad");
    } finally {
      button.disabled = false;
      shown = "";
      refresh();
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) return;
    sessionStorage.setItem(KEY, value);
    input.value = "";
    showProblem("");
    start();
  });

  forget.addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    stop();
    main.innerHTML = "";
    shown = "";
    askForToken("");
  });

  main.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-post]");
    if (button && !button.disabled) post(button);
  });

  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });

  if (token()) start();
  else askForToken("");
})();
