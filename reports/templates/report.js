(function () {
  "use strict";
  // Filters read and write the address bar (#backend=torch:cpu&status=fail&topic=masking), so a link
  // can point at one slice of the report. Every filterable element is parsed once; filtering only
  // flips `hidden` on elements whose visibility changes, and hides backend columns with one CSS rule.
  var STATE_LABELS = { pass: "pass", fail: "fail", error: "error", xfail: "xfail", xpass: "xpass", skip: "n/a", notrun: "not run" };
  var STATUS_ALIASES = { "n/a": "skip", "na": "skip", "not-run": "notrun", "not_run": "notrun", "notrun": "notrun" };
  var bar = document.getElementById("filters");
  var backendBoxes = Array.prototype.slice.call(bar.querySelectorAll("input[name=backend]"));
  var statusBoxes = Array.prototype.slice.call(bar.querySelectorAll("input[name=status]"));
  var levelSelect = bar.querySelector("select[name=level]");
  var topicSelect = bar.querySelector("select[name=topic]");
  var search = bar.querySelector("input[name=q]");
  var shown = document.getElementById("shown");
  var dynamicStyle = document.createElement("style");
  document.head.appendChild(dynamicStyle);
  var backendIndex = {};
  backendBoxes.forEach(function (box, index) { backendIndex[box.value] = index; });

  function parse(element) {
    var tokens = (element.getAttribute("data-st") || "").split(" ").filter(Boolean).map(function (token) {
      var cut = token.indexOf(":");
      return [Number(token.slice(0, cut)), token.slice(cut + 1)];
    });
    return {
      element: element,
      topic: element.getAttribute("data-topic") || "",
      level: element.getAttribute("data-level") || "",
      text: element.getAttribute("data-text") || "",
      tokens: tokens,
      matrixRow: element.tagName === "TR",
      block: element.closest(".mblock"),
      visible: true,
      open: false,
      detail: null
    };
  }
  var items = Array.prototype.map.call(document.querySelectorAll("[data-st]"), parse);
  var topicHeads = Array.prototype.slice.call(document.querySelectorAll("tr[data-topic-head]"));
  var matrixTotal = items.filter(function (item) { return item.matrixRow; }).length;

  function currentFilter() {
    return {
      backends: backendBoxes.filter(function (box) { return box.checked; }).map(function (box) { return box.value; }),
      statuses: statusBoxes.filter(function (box) { return box.checked; }).map(function (box) { return box.value; }),
      level: levelSelect.value,
      topic: topicSelect.value,
      q: search.value.trim()
    };
  }

  function apply(filter) {
    var backendSet = null, statusSet = null;
    if (filter.backends.length) {
      backendSet = {};
      filter.backends.forEach(function (name) { if (name in backendIndex) { backendSet[backendIndex[name]] = true; } });
    }
    if (filter.statuses.length) {
      statusSet = {};
      filter.statuses.forEach(function (name) { statusSet[name] = true; });
    }
    var hiddenColumns = [];
    if (backendSet) {
      backendBoxes.forEach(function (box, index) { if (!backendSet[index]) { hiddenColumns.push(".b" + index); } });
    }
    dynamicStyle.textContent = hiddenColumns.length ? hiddenColumns.join(",") + "{display:none!important}" : "";
    var words = filter.q.toLowerCase().split(/\s+/).filter(Boolean);
    var visibleByTopic = {};
    var visibleRows = 0;
    for (var i = 0; i < items.length; i++) {
      var item = items[i];
      var visible = (!filter.level || item.level === filter.level) && (!filter.topic || item.topic === filter.topic);
      for (var w = 0; visible && w < words.length; w++) { visible = item.text.indexOf(words[w]) !== -1; }
      if (visible && (backendSet || statusSet)) {
        visible = false;
        for (var t = 0; t < item.tokens.length; t++) {
          var token = item.tokens[t];
          if ((!backendSet || backendSet[token[0]]) && (!statusSet || statusSet[token[1]])) { visible = true; break; }
        }
      }
      if (visible !== item.visible) {
        item.element.hidden = !visible;
        item.visible = visible;
        if (item.detail) { item.detail.hidden = !(visible && item.open); }
      }
      if (visible && item.matrixRow) {
        visibleRows++;
        visibleByTopic[item.topic] = true;
      }
    }
    topicHeads.forEach(function (head) { head.hidden = !visibleByTopic[head.getAttribute("data-topic-head")]; });
    // A block whose rows are all filtered out is hidden whole, so no empty tables take up room.
    var blockShown = new Map();
    for (var k = 0; k < items.length; k++) {
      if (items[k].block) { blockShown.set(items[k].block, blockShown.get(items[k].block) || items[k].visible); }
    }
    blockShown.forEach(function (visible, block) { if (block.hidden === visible) { block.hidden = !visible; } });
    shown.textContent = visibleRows + " of " + matrixTotal + " properties";
  }

  function toHash(filter) {
    var parts = [];
    if (filter.backends.length) { parts.push("backend=" + filter.backends.map(encodeURIComponent).join(",")); }
    if (filter.statuses.length) { parts.push("status=" + filter.statuses.join(",")); }
    if (filter.level) { parts.push("level=" + encodeURIComponent(filter.level)); }
    if (filter.topic) { parts.push("topic=" + encodeURIComponent(filter.topic)); }
    if (filter.q) { parts.push("q=" + encodeURIComponent(filter.q)); }
    return parts.join("&");
  }

  function fromParams(params) {
    function list(name) {
      var values = [];
      params.getAll(name).forEach(function (value) { values = values.concat(value.split(",")); });
      return values.map(function (value) { return value.trim(); }).filter(Boolean);
    }
    return {
      backends: list("backend"),
      statuses: list("status").map(function (name) { return STATUS_ALIASES[name.toLowerCase()] || name.toLowerCase(); }),
      level: (params.get("level") || "").toUpperCase(),
      topic: params.get("topic") || "",
      q: params.get("q") || params.get("text") || ""
    };
  }

  function setControls(filter) {
    backendBoxes.forEach(function (box) { box.checked = filter.backends.indexOf(box.value) !== -1; });
    statusBoxes.forEach(function (box) { box.checked = filter.statuses.indexOf(box.value) !== -1; });
    levelSelect.value = filter.level;
    if (levelSelect.value !== filter.level) { levelSelect.value = ""; }
    topicSelect.value = filter.topic;
    if (topicSelect.value !== filter.topic) { topicSelect.value = ""; }
    search.value = filter.q;
  }

  function isFilterHash(hash) { return hash.indexOf("=") !== -1; }

  function readAddress() {
    var hash = location.hash.replace(/^#/, "");
    var params = new URLSearchParams(isFilterHash(hash) ? hash : location.search.replace(/^\?/, ""));
    var filter = fromParams(params);
    setControls(filter);
    apply(currentFilter());
  }

  function writeAddress() {
    var hash = toHash(currentFilter());
    var url = location.pathname + location.search + (hash ? "#" + hash : "");
    try { history.replaceState(null, "", url); } catch (error) { location.hash = hash; }
  }

  var pending = 0;
  function onChange() {
    apply(currentFilter());
    writeAddress();
  }
  bar.addEventListener("change", onChange);
  search.addEventListener("input", function () {
    clearTimeout(pending);
    pending = setTimeout(onChange, 120);
  });
  document.getElementById("reset").addEventListener("click", function () {
    setControls({ backends: [], statuses: [], level: "", topic: "", q: "" });
    onChange();
  });
  window.addEventListener("hashchange", function () {
    if (isFilterHash(location.hash)) { readAddress(); }
  });

  // A property's details live in one JSON map (rendered and escaped by the server); a row's panel is
  // built the first time it is opened, as a table row right under the property's matrix row.
  var detailsData = null;
  function detailsHtml(id) {
    if (!detailsData) { detailsData = JSON.parse(document.getElementById("property-details").textContent); }
    return detailsData[id] || "";
  }
  var rowItems = {};
  var rowIds = [];
  items.forEach(function (item) {
    if (item.matrixRow) {
      var id = item.element.getAttribute("data-p");
      rowItems[id] = item;
      rowIds.push(id);
    }
  });
  function setOpen(item, open) {
    if (open && !item.detail) {
      var row = item.element;
      var detail = document.createElement("tr");
      detail.className = "detail";
      var cell = document.createElement("td");
      cell.colSpan = row.cells.length;
      cell.innerHTML = detailsHtml(row.getAttribute("data-p"));
      detail.appendChild(cell);
      row.parentNode.insertBefore(detail, row.nextSibling);
      item.detail = detail;
    }
    item.open = open;
    item.element.classList.toggle("open", open);
    if (item.detail) { item.detail.hidden = !(open && item.visible); }
  }
  function openProperty(id) {
    var item = rowItems[id];
    if (!item) { return false; }
    if (!item.visible) {  // reached from a link while filtered out: show it anyway
      item.visible = true;
      item.element.hidden = false;
      var head = document.querySelector('tr[data-topic-head="' + CSS.escape(item.topic) + '"]');
      if (head) { head.hidden = false; }
      if (item.block) { item.block.hidden = false; }
    }
    setOpen(item, true);
    item.element.scrollIntoView({ block: "start" });
    return true;
  }
  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) { return; }
    var row = target.closest("tr.row");
    if (row && !target.closest("button")) {
      var item = rowItems[row.getAttribute("data-p")];
      setOpen(item, !item.open);
      event.preventDefault();
      return;
    }
    var link = target.closest("a.plink");
    if (link && openProperty(decodeURIComponent(link.getAttribute("href").slice(3)))) {
      event.preventDefault();
      return;
    }
    var square = target.closest("rect[data-r]");
    if (square) { openProperty(rowIds[Number(square.getAttribute("data-r"))]); return; }
    if (target.classList.contains("copy")) {
      var text = target.parentNode.querySelector("code").textContent;
      var done = function () { target.textContent = "Copied"; setTimeout(function () { target.textContent = "Copy"; }, 1500); };
      var fallback = function () {
        var area = document.createElement("textarea");
        area.value = text;
        document.body.appendChild(area);
        area.select();
        try { document.execCommand("copy"); } catch (error) { /* nothing more to try */ }
        area.remove();
        done();
      };
      if (navigator.clipboard && navigator.clipboard.writeText) {
        navigator.clipboard.writeText(text).then(done, fallback);
      } else {
        fallback();
      }
    }
  });
  // The grid's squares get their tooltip when first hovered, rather than thousands of <title>s up front.
  var grid = document.getElementById("grid");
  if (grid) {
    grid.addEventListener("mouseover", function (event) {
      var square = event.target;
      if (!(square instanceof Element) || !square.hasAttribute("data-r") || square.firstChild) { return; }
      var title = document.createElementNS("http://www.w3.org/2000/svg", "title");
      var state = square.getAttribute("class").replace(/^g g-/, "");
      title.textContent = rowIds[Number(square.getAttribute("data-r"))] + " · " +
        square.parentNode.getAttribute("data-backend") + ": " + (STATE_LABELS[state] || state);
      square.appendChild(title);
    });
  }
  document.getElementById("expand").addEventListener("click", function () {
    items.forEach(function (item) {
      if (item.matrixRow && item.visible && item.tokens.some(function (token) { return token[1] === "fail" || token[1] === "error"; })) {
        setOpen(item, true);
      }
    });
  });
  document.getElementById("collapse").addEventListener("click", function () {
    items.forEach(function (item) { if (item.open) { setOpen(item, false); } });
  });

  // Anchors land below the sticky bar (scroll-margin-top uses its height); on a narrow screen the bar
  // is not sticky, so nothing covers them. The matrix scrolls in its own box only when it must, so
  // where its columns fit, the sticky header still works.
  var matrixBox = document.getElementById("matrix-table");
  function measureBar() {
    var sticky = getComputedStyle(bar).position === "sticky";
    document.documentElement.style.setProperty("--filters-height", (sticky ? bar.offsetHeight : 0) + "px");
    var head = document.querySelector("table.matrix.head");
    var headSticky = head && sticky && getComputedStyle(head).position === "sticky";
    document.documentElement.style.setProperty("--matrix-head-height", (headSticky ? head.offsetHeight : 0) + "px");
    if (matrixBox) {
      matrixBox.classList.remove("fits");
      matrixBox.classList.toggle("fits", matrixBox.scrollWidth <= matrixBox.clientWidth + 1);
    }
  }
  window.addEventListener("resize", measureBar);
  measureBar();

  var initial = location.hash.replace(/^#/, "");
  if (isFilterHash(initial) || location.search) {
    readAddress();
  } else if (initial.indexOf("p-") === 0) {
    openProperty(decodeURIComponent(initial.slice(2)));
  }
  document.documentElement.setAttribute("data-ready", "1");
})();
