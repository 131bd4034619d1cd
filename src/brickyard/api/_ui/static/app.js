// Brickyard workspace pages: what a plain form cannot do. Every page works without this script.
"use strict";

// MLflow's own UI links look like /#/experiments/1/runs/abc: send them to the page that shows them.
(function followMlflowLinks() {
  var m = /^#\/(experiments\/[^?]*)/.exec(window.location.hash || "");
  if (m && window.location.pathname === "/") {
    window.location.replace("/ml/" + m[1].split("/").map(encodeURIComponent).join("/"));
  }
})();

// After a streamed answer: the turn joins the conversation the form carries, and shows above the form.
function keepTurn(form, target) {
  var history = form.querySelector("[name=history]");
  var message = form.querySelector("[name=message]");
  var turns = [];
  try { turns = JSON.parse(history.value || "[]"); } catch (e) { turns = []; }
  var answer = target.textContent;
  turns.push({role: "user", content: message.value}, {role: "assistant", content: answer});
  history.value = JSON.stringify(turns);
  var chat = target.parentElement;
  [["user", message.value], ["assistant", answer]].forEach(function (turn) {
    var box = document.createElement("div");
    box.className = "msg " + turn[0];
    var who = document.createElement("b");
    who.textContent = turn[0] === "user" ? "You" : "Answer";
    box.appendChild(who);
    box.appendChild(document.createTextNode("\n" + turn[1]));
    chat.insertBefore(box, target);
  });
  target.textContent = "";
  target.hidden = true;
  message.value = "";
  message.focus();
}

document.addEventListener("DOMContentLoaded", function () {
  // Volume uploads of a file from disk: the bytes go as the request body, the CSRF token as a header.
  document.querySelectorAll("form.file-upload").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var input = form.querySelector("input[type=file]");
      var status = form.querySelector("[role=status]");
      if (!input.files.length) { status.textContent = "Choose a file first."; return; }
      var file = input.files[0];
      status.textContent = "Uploading " + file.name + "…";
      fetch(form.dataset.action + "&name=" + encodeURIComponent(file.name), {
        method: "POST", body: file, credentials: "same-origin",
        headers: {"X-CSRF-Token": form.dataset.csrf, "Content-Type": "application/octet-stream"}
      }).then(function (response) {
        if (response.ok) { window.location.reload(); return; }
        return response.text().then(function (text) { status.textContent = "Upload failed: " + text.slice(0, 300); });
      }).catch(function (error) { status.textContent = "Upload failed: " + error; });
    });
  });

  // Streaming chat (the playground): post the form, show the answer as it arrives, then link its trace.
  document.querySelectorAll("form[data-stream]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      var target = document.getElementById(form.dataset.stream);
      var link = document.getElementById(form.dataset.traceLink);
      var tools = form.querySelector("[name=tools]");
      if (!target || !window.ReadableStream || form.querySelector("[name=compare]").value ||
          (tools && tools.selectedOptions.length)) { return; }  // side by side, or with tools: the whole page
      event.preventDefault();
      var button = form.querySelector("button[type=submit]");
      button.disabled = true;
      target.textContent = "";
      target.hidden = false;
      var text = "";
      fetch(form.dataset.streamUrl, {method: "POST", body: new URLSearchParams(new FormData(form)),
                                     credentials: "same-origin"})
        .then(function (response) {
          if (!response.ok) { form.submit(); return; }  // the whole-page answer shows the error
          var reader = response.body.getReader();
          var decoder = new TextDecoder();
          function pump() {
            return reader.read().then(function (chunk) {
              if (chunk.done) { return; }
              text += decoder.decode(chunk.value, {stream: true});
              var mark = text.indexOf("\n\u001etrace:");
              target.textContent = mark >= 0 ? text.slice(0, mark) : text;
              if (mark >= 0 && link) {
                link.href = text.slice(mark + 8).trim();
                link.hidden = false;
              }
              return pump();
            });
          }
          return pump().then(function () { keepTurn(form, target); });
        })
        .catch(function (error) { target.textContent += "\n[" + error + "]"; })
        .then(function () { button.disabled = false; });
    });
  });
});
