// The AI chat's streamed replies: the form posts to its data-stream address and the server-sent events of
// the answer (delta, then done or failed) fill the transcript as they arrive. A message refused before the
// call answers with the page and the messages at the fields, shown in place of the page's content.
// Without this script the form posts normally and the page answers with the whole reply.
"use strict";
(function () {
  if (!window.fetch || !window.TextDecoder || !window.ReadableStream || !window.DOMParser) {
    return;
  }

  function entry(role, text) {
    var item = document.createElement("li");
    item.className = "msg " + role;
    var who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "You" : "Assistant";
    var body = document.createElement("p");
    body.className = "text";
    body.textContent = text;
    item.appendChild(who);
    item.appendChild(body);
    document.getElementById("transcript").appendChild(item);
    return body;
  }

  function remember(role, text) {
    var field = document.createElement("input");
    field.type = "hidden";
    field.name = "history";
    field.value = role + ":" + text;
    document.getElementById("history").appendChild(field);
  }

  function showPage(html) {
    var page = new DOMParser().parseFromString(html, "text/html");
    var main = page.getElementById("main");
    if (main) {
      document.getElementById("main").replaceWith(main);
      var invalid = document.querySelector("[aria-invalid=true]");
      if (invalid) {
        invalid.focus();
      }
    }
  }

  // Reads server-sent events: blocks separated by a blank line, of `event:` and `data:` lines.
  function read(reader, handle) {
    var decoder = new TextDecoder();
    var buffer = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) {
          return;
        }
        buffer += decoder.decode(chunk.value, { stream: true });
        var end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          var block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          var name = "message";
          var data = [];
          block.split("\n").forEach(function (line) {
            if (line.indexOf("event:") === 0) {
              name = line.slice(6).trim();
            } else if (line.indexOf("data:") === 0) {
              data.push(line.slice(5).replace(/^ /, ""));
            }
          });
          if (data.length) {
            handle(name, JSON.parse(data.join("\n")));
          }
        }
        return pump();
      });
    }
    return pump();
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form.id !== "chat-form") {
      return;
    }
    event.preventDefault();
    var send = document.getElementById("send");
    var prompt = document.getElementById("prompt");
    var status = document.getElementById("billed");
    var transcript = document.getElementById("transcript");
    var text = prompt.value;
    var body = new URLSearchParams(new FormData(form));
    send.disabled = true;
    fetch(form.getAttribute("data-stream"), { method: "POST", body: body, credentials: "same-origin" })
      .then(function (response) {
        if (response.redirected) {
          window.location.assign(response.url);
          return null;
        }
        var type = response.headers.get("content-type") || "";
        if (type.indexOf("text/event-stream") !== 0) {
          return response.text().then(showPage);
        }
        document.getElementById("chat-errors").textContent = "";
        entry("user", text);
        var reply = entry("assistant", "");
        var replied = "";
        prompt.value = "";
        transcript.setAttribute("aria-busy", "true");
        status.textContent = "Replying…";
        var ended = false;
        return read(response.body.getReader(), function (name, data) {
          if (name === "delta") {
            replied += data;
            reply.textContent = replied;
          } else if (name === "done") {
            remember("u", text);
            remember("a", replied);
            status.textContent = data.billed ? "Last reply: " + data.billed : "Reply complete.";
          } else if (name === "failed") {
            status.textContent = data.message + " Only what arrived was charged.";
          }
          ended = ended || name === "done" || name === "failed";
        }).then(function () {
          if (!ended) {
            status.textContent = "The reply was cut short. Only what arrived was charged.";
          }
        });
      })
      .catch(function () {
        status.textContent = "The reply could not be read. Reload the page and try again.";
      })
      .then(function () {
        var button = document.getElementById("send");
        if (button) {
          button.disabled = false;
        }
        var list = document.getElementById("transcript");
        if (list) {
          list.removeAttribute("aria-busy");
        }
      });
  });
})();
