// Renders an item's prompts and option probabilities from the inline JSON blob, on demand.
// Every string is placed with textContent, so text from study files and models never becomes markup.
(function () {
  "use strict";
  var data = null;
  function load() {
    if (data === null) {
      var blob = document.getElementById("prompt-data");
      data = blob ? JSON.parse(blob.textContent) : { lines: [], items: {} };
    }
    return data;
  }
  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }
  function message(lines) {
    var table = load().lines;
    return lines.map(function (index) { return table[index]; }).join("\n");
  }
  function probabilityRows(prompt, options) {
    // prompt: [proxy, wording, order, labels, displayToCanonical, system, user, probs, answer, outcome, mass, generated]
    var box = element("div", "probs");
    var labels = prompt[3], shown = prompt[4], probs = prompt[7], answer = prompt[8];
    shown.forEach(function (canonical, position) {
      var probability = probs ? probs[canonical] : null;
      var row = element("div", "prob-row" + (canonical === answer ? " chosen" : ""));
      row.appendChild(element("span", "prob-label", labels[position]));
      var track = element("div", "prob-track");
      var bar = element("div", "prob-bar");
      bar.style.width = (probability === null ? 0 : Math.max(0, Math.min(1, probability)) * 100) + "%";
      track.appendChild(bar);
      track.title = options[canonical];
      row.appendChild(track);
      row.appendChild(element("span", "prob-value", probability === null ? "n/a" : (probability * 100).toFixed(1) + "%"));
      box.appendChild(row);
      var text = element("div", "prob-option note", options[canonical]);
      box.appendChild(text);
    });
    return box;
  }
  function card(prompt, options) {
    var box = element("div", "prompt-card");
    var outcome = prompt[9] && prompt[9] !== "answered" ? " · " + prompt[9] : "";
    box.appendChild(element("h4", null, prompt[0] + " · " + prompt[1] + " · order " + prompt[2] + outcome));
    if (prompt[5].length) {
      box.appendChild(element("div", "note", "system"));
      box.appendChild(element("pre", "message", message(prompt[5])));
    }
    box.appendChild(element("div", "note", "user"));
    box.appendChild(element("pre", "message", message(prompt[6])));
    var mass = prompt[10] === null ? "" : " (mass on the options before renormalising: " + (prompt[10] * 100).toFixed(1) + "%)";
    box.appendChild(element("div", "note", "probability of each option, in the order shown" + mass));
    box.appendChild(probabilityRows(prompt, options));
    if (prompt[11]) {
      box.appendChild(element("div", "note", "the model's answer"));
      box.appendChild(element("pre", "message generated", prompt[11]));
    }
    return box;
  }
  function render(itemId, query) {
    var target = document.getElementById("prompt-viewer");
    if (!target) { return; }
    var item = load().items[itemId];
    target.textContent = "";
    if (!item) { target.appendChild(element("p", "note", "No prompts recorded for this item.")); return; }
    target.setAttribute("data-item", itemId);
    var words = (query || "").toLowerCase().split(/\s+/).filter(Boolean);
    var shown = item.prompts.filter(function (prompt) {
      var text = (prompt[0] + " " + prompt[1] + " " + prompt[2]).toLowerCase();
      return words.every(function (word) { return text.indexOf(word) !== -1; });
    });
    target.appendChild(element("h3", null, "Item " + itemId + ": " + shown.length + " of " + item.prompts.length + " prompts"));
    shown.forEach(function (prompt) { target.appendChild(card(prompt, item.options)); });
  }
  function itemFromHash() {
    var hash = window.location.hash;
    if (hash.indexOf("#prompts/") !== 0) { return null; }
    try { return decodeURIComponent(hash.slice("#prompts/".length)); } catch (error) { return null; }
  }
  function showFromHash() {
    var itemId = itemFromHash();
    if (itemId === null) { return; }
    var picker = document.getElementById("prompt-item");
    if (picker) { picker.value = itemId; }
    var filter = document.getElementById("prompt-filter");
    render(itemId, filter ? filter.value : "");
    var section = document.getElementById("prompts");
    if (section) {
      if (section.tagName === "DETAILS") { section.open = true; }
      section.scrollIntoView();
    }
  }
  function fillPicker() {
    var picker = document.getElementById("prompt-item");
    if (!picker) { return; }
    Object.keys(load().items).forEach(function (itemId) {
      var option = element("option", null, itemId);
      option.value = itemId;
      picker.appendChild(option);
    });
    var filter = document.getElementById("prompt-filter");
    function update() { render(picker.value, filter ? filter.value : ""); }
    picker.addEventListener("change", update);
    if (filter) { filter.addEventListener("input", update); }
  }
  document.addEventListener("DOMContentLoaded", function () {
    fillPicker();
    window.addEventListener("hashchange", showFromHash);
    showFromHash();
  });
})();
