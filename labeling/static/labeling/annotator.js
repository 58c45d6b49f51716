/* The annotator page (/projects/<id>/annotate): one task at a time, from the labelling
   REST API (session auth, CSRF header), without reloading the page.

   - The regions of the task are the page's state (`app.regions`, our result JSON, see
     result-shapes.js). Widgets draw them: Annotorious for boxes and polygons, an SVG
     layer of our own for keypoints, the Recogito text annotator for spans, the label
     buttons for classification. A widget reports what the user drew; the page keeps
     the labels and attributes, undo/redo (snapshots of the regions) and the draft.
   - Keys: a label's hotkey picks it (and relabels the selected region); Enter submits
     (Ctrl+Enter from anywhere); s skips with a reason; b goes back to my previous
     task; ? shows the instructions; Ctrl+Z / Ctrl+Shift+Z undo and redo; + - 0 zoom;
     wheel zooms, Space/Alt/middle-button drag pans; Delete removes the selected
     region; [ ] step through regions; arrows move it (Ctrl+arrows resize a box); n
     adds a box or point in the middle of the view.
   - Drafts autosave (debounced PUT), the lease is renewed every heartbeat_seconds,
     a refused submit shows the server's errors beside the canvas and keeps the task.
   - A task a reviewer rejected comes back with the review's comment in a banner
     (#returned) and the annotator's previous result loaded.
   - Modes: with `config.mode` naming a mode registered in window.LabelvaultModes
     (reviewer.js registers "review"), the same editor works another queue: the mode
     gives the queue's paths, the starting result, its own actions and keys, and gets
     a kit of this page's functions (see `modeKit`). Without one: the annotator. */
(function () {
  "use strict";

  const S = window.LabelvaultShapes;
  const root = document.getElementById("annotator");
  if (!root || !S) return;
  const config = JSON.parse(document.getElementById("annotator-config").textContent);
  // The page's mode (see the header); null on the annotator page.
  let mode = null;

  // Autosave a draft this long after the last change: a burst of edits is one PUT.
  const DRAFT_DEBOUNCE_MS = 1200;
  // Edits of one region closer together than this are one undo step (a drag).
  const UNDO_COALESCE_MS = 700;
  const UNDO_LIMIT = 200;
  const ZOOM_STEP = 1.25;
  const ZOOM_MAX = 16;
  const SKIP_REASONS = [
    "Image or text unreadable",
    "Not clear which label applies",
    "Outside this project's scope",
    "Needs an expert",
  ];

  const $ = (selector) => root.querySelector(selector);
  const ui = {
    stage: $("#stage"),
    title: $("#task-title"),
    flags: $("#task-flags"),
    tool: $("#tool-hint"),
    labels: $("#labels"),
    labelsHint: $("#labels-hint"),
    regions: $("#regions"),
    regionCount: $("#region-count"),
    attributes: $("#attributes"),
    errors: $("#submit-errors"),
    notice: $("#notice"),
    save: $("#save-status"),
    doneToday: $("#done-today"),
    remaining: $("#remaining"),
    submit: $("#btn-submit"),
    skip: $("#btn-skip"),
    undo: $("#btn-undo"),
    redo: $("#btn-redo"),
    back: $("#btn-back"),
    queue: $("#btn-queue"),
    help: $("#btn-help"),
    zoomIn: $("#btn-zoom-in"),
    zoomOut: $("#btn-zoom-out"),
    zoomFit: $("#btn-zoom-fit"),
    zoomLevel: $("#zoom-level"),
    instructions: $("#instructions"),
    instructionsClose: $("#btn-instructions-close"),
    skipDialog: $("#skip-dialog"),
    skipForm: $("#skip-form"),
    skipError: $("#skip-error"),
    skipOther: $("#skip-other"),
    returned: $("#returned"),
  };

  const app = {
    task: null,
    lease: null,
    schema: null,
    type: null,
    labels: [],
    regions: [],
    selectedId: null,
    activeLabel: null,
    undo: [],
    redo: [],
    lastEdit: { key: null, at: 0 },
    widget: null,
    history: null, // my recent tasks (newest first), fetched when going back
    backIndex: -1, // -1: a task from the queue; n: the n-th of my recent tasks
    startedAt: 0,
    idempotencyKey: null,
    busy: false,
    leaseLost: false,
    heartbeat: null,
    draftTimer: null,
    draftDirty: false,
    errorIds: new Set(),
    progress: { done_today: 0, remaining: null },
    spaceDown: false,
  };

  // --- the REST API -------------------------------------------------------------------

  async function api(method, path, body, { keepalive = false } = {}) {
    const init = {
      method,
      credentials: "same-origin",
      keepalive,
      headers: { Accept: "application/json", "X-CSRFToken": config.csrfToken },
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(config.apiRoot + path, init);
    } catch (exc) {
      return { status: 0, ok: false, data: { detail: "Could not reach the server." } };
    }
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (exc) {
        data = { detail: `The server answered ${response.status}.` };
      }
    }
    if (response.status === 403 && data && /CSRF|credentials/i.test(data.detail || "")) {
      showNotice("Your session has ended: log in again in another tab, then retry.", "error");
    }
    return { status: response.status, ok: response.ok, data };
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    return "k" + Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  // --- small DOM helpers ----------------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key === "style") el.setAttribute("style", value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key in el && typeof value !== "string") el[key] = value;
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child.nodeType ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function showNotice(text, kind, action) {
    ui.notice.replaceChildren(h("span", { text }));
    if (action) {
      ui.notice.append(h("button", { type: "button", class: "link-button", onclick: action.run, text: action.label }));
    }
    ui.notice.className = `notice ${kind || "info"}`;
    ui.notice.hidden = false;
  }

  function hideNotice() {
    ui.notice.hidden = true;
  }

  function setSaveStatus(text) {
    ui.save.textContent = text;
  }

  function colorOf(label) {
    const found = app.labels.find((l) => l.name === label);
    return found ? found.color : "#8a93a6";
  }

  function hotkeyLabel(key) {
    return app.labels.find((l) => l.hotkey && l.hotkey === key) || null;
  }

  function attributeDefaults() {
    const attrs = {};
    for (const attr of (app.schema && app.schema.attributes) || []) {
      if (attr.default !== null && attr.default !== undefined) attrs[attr.name] = attr.default;
    }
    return attrs;
  }

  const isRegionType = () => ["bbox", "polygon", "keypoint", "ner"].includes(app.type);
  const isClassification = () => app.type === "image_class" || app.type === "text_class";

  // --- the regions: changes, undo, redo ------------------------------------------------

  /** Replace the regions after a user action. `coalesce`: a key naming a continuing
      edit (a drag): edits with the same key in quick succession are one undo step.
      `render`: redraw the widget (the change did not come from it). */
  function commit(next, { coalesce = null, render = true } = {}) {
    const now = performance.now();
    const merge = coalesce && app.lastEdit.key === coalesce && now - app.lastEdit.at < UNDO_COALESCE_MS;
    if (!merge) {
      app.undo.push(S.clone(app.regions));
      if (app.undo.length > UNDO_LIMIT) app.undo.shift();
    }
    app.redo = [];
    app.lastEdit = { key: coalesce, at: now };
    app.regions = next;
    if (app.selectedId && !next.some((r) => r.id === app.selectedId)) app.selectedId = null;
    if (render && app.widget) app.widget.render();
    changed();
  }

  function changed() {
    renderRegions();
    renderLabels();
    renderAttributes();
    updateButtons();
    scheduleDraft();
    if (mode && mode.changed) mode.changed();
  }

  function undo() {
    if (!app.undo.length) return;
    app.redo.push(S.clone(app.regions));
    app.regions = app.undo.pop();
    afterHistoryMove();
  }

  function redo() {
    if (!app.redo.length) return;
    app.undo.push(S.clone(app.regions));
    app.regions = app.redo.pop();
    afterHistoryMove();
  }

  function afterHistoryMove() {
    app.lastEdit = { key: null, at: 0 };
    if (app.selectedId && !app.regions.some((r) => r.id === app.selectedId)) app.selectedId = null;
    if (app.widget) {
      app.widget.deselect();
      app.widget.render();
    }
    changed();
  }

  function select(id, { fromWidget = false, edit = false } = {}) {
    app.selectedId = id;
    if (!fromWidget && app.widget) app.widget.select(id, edit);
    if (app.widget && app.widget.restyle) app.widget.restyle();
    renderRegions();
    renderAttributes();
    if (id) {
      const item = ui.regions.querySelector(`[data-id="${CSS.escape(id)}"]`);
      if (item) item.scrollIntoView({ block: "nearest" });
    }
  }

  function removeRegion(id) {
    if (!id) return;
    commit(app.regions.filter((r) => r.id !== id));
  }

  function relabel(id, label) {
    commit(app.regions.map((r) => (r.id === id ? S.withLabel(r, label) : r)));
  }

  /** A label's button or hotkey: classification toggles the choice; otherwise the label
      becomes the active one and the selected region takes it. */
  function pressLabel(label) {
    if (isClassification()) {
      const chosen = S.choicesOf(app.regions);
      let next;
      if (app.schema.multiple) {
        next = chosen.includes(label) ? chosen.filter((c) => c !== label) : [...chosen, label];
      } else {
        next = chosen.length === 1 && chosen[0] === label ? [] : [label];
      }
      // Keep the schema's order, so the same choices always read the same.
      next = app.labels.map((l) => l.name).filter((name) => next.includes(name));
      commit(S.choicesResult(next));
      return;
    }
    app.activeLabel = label;
    if (app.selectedId) relabel(app.selectedId, label);
    else renderLabels();
  }

  function selectNeighbour(step) {
    if (!app.regions.length) return;
    const index = app.regions.findIndex((r) => r.id === app.selectedId);
    const next = index < 0 ? (step > 0 ? 0 : app.regions.length - 1) : (index + step + app.regions.length) % app.regions.length;
    select(app.regions[next].id);
  }

  /** Arrow keys on the selected box or point: move (Shift: by 10 px); Ctrl+arrows
      change a box's width and height. */
  function nudge(dx, dy, resize) {
    const region = app.regions.find((r) => r.id === app.selectedId);
    if (!region || !app.task) return false;
    const view = app.widget && app.widget.view;
    const W = (view && view.width) || app.task.item.width;
    const H = (view && view.height) || app.task.item.height;
    const v = { ...region.value };
    if (region.type === "rectanglelabels") {
      if (resize) {
        v.width = Math.max(1, Math.min(W - v.x, v.width + dx));
        v.height = Math.max(1, Math.min(H - v.y, v.height + dy));
      } else {
        v.x = Math.max(0, Math.min(W - v.width, v.x + dx));
        v.y = Math.max(0, Math.min(H - v.height, v.y + dy));
      }
    } else if (region.type === "keypointlabels" && !resize) {
      v.x = Math.max(0, Math.min(W, v.x + dx));
      v.y = Math.max(0, Math.min(H, v.y + dy));
    } else {
      return false;
    }
    commit(app.regions.map((r) => (r.id === region.id ? { ...r, value: v } : r)), { coalesce: `nudge:${region.id}` });
    return true;
  }

  /** n: a new box (a fifth of the view) or point in the middle of what is visible. */
  function addAtCentre() {
    if (!app.widget || !app.widget.view || !(app.type === "bbox" || app.type === "keypoint")) return;
    const c = app.widget.view.visibleCentre();
    const label = app.activeLabel;
    let region;
    if (app.type === "keypoint") {
      region = S.keypoint(S.newId("k"), c.x, c.y, c, label, attributeDefaults());
    } else {
      const w = Math.max(4, c.visibleWidth / 5);
      const hgt = Math.max(4, c.visibleHeight / 5);
      const x = Math.max(0, c.x - w / 2);
      const y = Math.max(0, c.y - hgt / 2);
      region = {
        id: S.newId("b"),
        type: "rectanglelabels",
        value: {
          x: Math.round(x), y: Math.round(y), width: Math.round(w), height: Math.round(hgt),
          rectanglelabels: label ? [label] : [],
        },
      };
      const attrs = attributeDefaults();
      if (Object.keys(attrs).length) region.attributes = attrs;
    }
    commit([...app.regions, region]);
    select(region.id);
  }

  // --- side panel: labels, regions, attributes ------------------------------------------

  function renderLabels() {
    const chosen = isClassification() ? S.choicesOf(app.regions) : [];
    ui.labels.replaceChildren(
      ...app.labels.map((label) => {
        const pressed = isClassification() ? chosen.includes(label.name) : app.activeLabel === label.name;
        return h(
          "button",
          {
            type: "button",
            class: "label-btn",
            "aria-pressed": pressed ? "true" : "false",
            "data-label": label.name,
            style: `--label-color: ${label.color}`,
            title: label.hotkey ? `${label.name} (key ${label.hotkey})` : label.name,
            onclick: () => pressLabel(label.name),
            onmousedown: (e) => e.preventDefault(), // a click keeps the focus where it was
          },
          h("span", { class: "swatch", "aria-hidden": "true" }),
          h("span", { class: "label-name", text: label.name }),
          label.hotkey ? h("kbd", { text: label.hotkey }) : null,
        );
      }),
    );
  }

  function regionTitle(region, index) {
    return `${index + 1}. ${S.regionLabel(region) || "no label"}`;
  }

  function renderRegions() {
    if (!isRegionType()) {
      ui.regions.replaceChildren();
      ui.regionCount.textContent = "";
      ui.regions.closest("section").hidden = true;
      return;
    }
    ui.regions.closest("section").hidden = false;
    ui.regionCount.textContent = String(app.regions.length);
    if (!app.regions.length) {
      ui.regions.replaceChildren(h("li", { class: "empty-regions muted", text: emptyRegionsHint() }));
      return;
    }
    ui.regions.replaceChildren(
      ...app.regions.map((region, index) => {
        const label = S.regionLabel(region);
        const selected = region.id === app.selectedId;
        return h(
          "li",
          {
            class: `region${selected ? " selected" : ""}${app.errorIds.has(region.id) ? " has-error" : ""}`,
            "data-id": region.id,
            style: `--label-color: ${colorOf(label)}`,
          },
          h(
            "button",
            {
              type: "button",
              class: "region-select",
              "aria-pressed": selected ? "true" : "false",
              onclick: () => select(selected ? null : region.id, { edit: true }),
            },
            h("span", { class: "swatch", "aria-hidden": "true" }),
            h("span", { class: "region-name", text: regionTitle(region, index) }),
            h("span", { class: "region-where muted", text: S.describe(region) }),
          ),
          h("button", {
            type: "button",
            class: "region-delete",
            "aria-label": `Delete region ${index + 1} (${label || "no label"})`,
            title: "Delete (Del)",
            text: "×",
            onclick: () => removeRegion(region.id),
          }),
        );
      }),
    );
  }

  function emptyRegionsHint() {
    return {
      bbox: "No boxes yet: drag on the image.",
      polygon: "No polygons yet: click points on the image.",
      keypoint: "No points yet: click on the image.",
      ner: "No spans yet: select text.",
    }[app.type] || "";
  }

  function renderAttributes() {
    const attrs = (app.schema && app.schema.attributes) || [];
    const region = app.regions.find((r) => r.id === app.selectedId);
    if (!attrs.length || !region || !isRegionType()) {
      ui.attributes.hidden = true;
      ui.attributes.replaceChildren();
      return;
    }
    const values = region.attributes || {};
    const set = (name, value) => {
      commit(
        app.regions.map((r) => (r.id === region.id ? { ...r, attributes: { ...(r.attributes || {}), [name]: value } } : r)),
        { coalesce: `attr:${region.id}:${name}`, render: false },
      );
    };
    const fields = attrs.map((attr, i) => {
      const id = `attr-${i}`;
      const value = values[attr.name] !== undefined ? values[attr.name] : attr.default;
      if (attr.type === "bool") {
        return h(
          "label",
          { class: "attr attr-bool", for: id },
          h("input", { type: "checkbox", id, checked: Boolean(value), onchange: (e) => set(attr.name, e.target.checked) }),
          h("span", { text: attr.name }),
        );
      }
      let control;
      if (attr.type === "enum") {
        control = h(
          "select",
          { id, onchange: (e) => set(attr.name, e.target.value === "" ? null : e.target.value) },
          h("option", { value: "", text: "—" }),
          ...attr.options.map((o) => h("option", { value: o, text: o, selected: o === value })),
        );
      } else if (attr.type === "number") {
        control = h("input", {
          type: "number",
          id,
          value: value === null || value === undefined ? "" : String(value),
          min: attr.min === null || attr.min === undefined ? null : String(attr.min),
          max: attr.max === null || attr.max === undefined ? null : String(attr.max),
          step: "any",
          onchange: (e) => set(attr.name, e.target.value === "" ? null : Number(e.target.value)),
        });
      } else {
        control = h("input", {
          type: "text",
          id,
          value: value === null || value === undefined ? "" : String(value),
          onchange: (e) => set(attr.name, e.target.value),
        });
      }
      return h("label", { class: "attr", for: id }, h("span", { text: attr.name }), control);
    });
    const index = app.regions.indexOf(region);
    ui.attributes.replaceChildren(h("h2", { text: `Attributes of ${regionTitle(region, index)}` }), ...fields);
    ui.attributes.hidden = false;
  }

  function renderProgress() {
    if (mode && mode.renderProgress) return mode.renderProgress();
    const p = app.progress;
    ui.doneToday.textContent = Number(p.done_today || 0).toLocaleString();
    ui.remaining.textContent = p.remaining === null || p.remaining === undefined ? "–" : Number(p.remaining).toLocaleString();
  }

  function updateButtons() {
    const hasTask = Boolean(app.task);
    // A mode brings its own actions: the annotator's submit, skip and queue buttons are
    // not on its page.
    if (ui.submit) ui.submit.disabled = !hasTask || app.busy;
    if (ui.skip) {
      ui.skip.disabled = !hasTask || !app.lease || app.busy;
      ui.skip.hidden = hasTask && !app.lease;
    }
    ui.undo.disabled = !app.undo.length;
    ui.redo.disabled = !app.redo.length;
    if (ui.queue) ui.queue.hidden = app.backIndex < 0;
    const zoomable = Boolean(app.widget && app.widget.zoom);
    for (const button of [ui.zoomIn, ui.zoomOut, ui.zoomFit]) button.disabled = !zoomable;
    if (mode && mode.updateButtons) mode.updateButtons();
  }

  // --- errors from a refused submit -------------------------------------------------------

  function showErrors(data) {
    const errors = (data && data.errors && data.errors.length ? data.errors : [{ field: data && data.field, detail: (data && data.detail) || "The annotation was refused." }]);
    app.errorIds = new Set();
    const items = errors.map((error) => {
      const match = /^result\[(\d+)\]/.exec(error.field || "");
      let prefix = "";
      if (match) {
        const index = Number(match[1]);
        const region = app.regions[index];
        if (region) {
          app.errorIds.add(region.id);
          prefix = `${isRegionType() ? "Region " : ""}${regionTitle(region, index)}: `;
        }
      }
      // The detail starts with the field's path, which the region's name replaces.
      const detail = prefix && error.field ? (error.detail || "").replace(`${error.field}: `, "") : error.detail;
      return h("li", { text: prefix + (detail || "invalid") });
    });
    ui.errors.replaceChildren(
      h("strong", { text: "Not submitted — fix this and submit again:" }),
      h("ul", {}, items),
    );
    ui.errors.hidden = false;
    renderRegions();
  }

  function clearErrors() {
    ui.errors.hidden = true;
    ui.errors.replaceChildren();
    if (app.errorIds.size) {
      app.errorIds = new Set();
      renderRegions();
    }
  }

  // --- drafts and the lease -------------------------------------------------------------

  function scheduleDraft() {
    if (!app.task || (mode && !mode.drafts)) return;
    app.draftDirty = true;
    setSaveStatus("Unsaved changes");
    clearTimeout(app.draftTimer);
    app.draftTimer = setTimeout(() => saveDraft(), DRAFT_DEBOUNCE_MS);
  }

  async function saveDraft({ keepalive = false } = {}) {
    clearTimeout(app.draftTimer);
    if (!app.task || !app.draftDirty) return;
    app.draftDirty = false;
    const taskId = app.task.id;
    setSaveStatus("Saving draft…");
    const res = await api("PUT", `tasks/${taskId}/draft`, { result: app.regions }, { keepalive });
    if (!app.task || app.task.id !== taskId) return;
    if (res.ok) {
      if (!app.draftDirty) setSaveStatus(`Draft saved ${new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}`);
    } else {
      app.draftDirty = true;
      setSaveStatus("Draft not saved");
    }
  }

  function startHeartbeat() {
    stopHeartbeat();
    if (!app.lease) return;
    const seconds = Math.max(5, Number(app.lease.heartbeat_seconds) || 60);
    const leaseId = app.lease.id;
    app.heartbeat = setInterval(async () => {
      const res = await api("PATCH", leasePath(leaseId));
      if (!app.lease || app.lease.id !== leaseId) return;
      if (res.status === 409) {
        stopHeartbeat();
        app.leaseLost = true;
        showNotice("Your hold on this task has ended (lease lost): it may go to someone else. Your draft is kept.", "warn", {
          label: "Get the next task",
          run: () => loadNext(),
        });
      } else if (res.ok && res.data) {
        app.lease.expires_at = res.data.expires_at;
      }
    }, seconds * 1000);
  }

  function stopHeartbeat() {
    clearInterval(app.heartbeat);
    app.heartbeat = null;
  }

  async function releaseLease({ keepalive = false } = {}) {
    const lease = app.lease;
    app.lease = null;
    stopHeartbeat();
    if (lease) await api("DELETE", leasePath(lease.id), undefined, { keepalive });
  }

  function leasePath(id) {
    return mode ? mode.leasePath(id) : `leases/${id}`;
  }

  // --- loading tasks ----------------------------------------------------------------------

  function startingPoint(task) {
    if (mode) return mode.startingPoint(task);
    if (Array.isArray(task.draft)) return { result: task.draft, note: "Restored your draft." };
    if (task.annotation && task.annotation.revision) {
      const rev = task.annotation.revision;
      if (task.review) return { result: rev.result, note: `Your annotation (revision ${rev.number}) is loaded: correct it as the reviewer asks and submit.` };
      return { result: rev.result, note: `Editing your submitted annotation (revision ${rev.number}): submitting adds a revision.` };
    }
    const predictions = (task.predictions || []).slice().sort((a, b) => (b.score ?? -Infinity) - (a.score ?? -Infinity));
    if (predictions.length) {
      const p = predictions[0];
      const score = p.score === null || p.score === undefined ? "" : ` (score ${Number(p.score).toFixed(2)})`;
      return { result: p.result, note: `Starting from the pre-annotations of ${p.model_name}${score}: correct them and submit.` };
    }
    return { result: [], note: null };
  }

  function clearTask() {
    if (app.widget) app.widget.destroy();
    app.widget = null;
    app.task = null;
    app.regions = [];
    app.selectedId = null;
    app.undo = [];
    app.redo = [];
    app.errorIds = new Set();
    app.leaseLost = false;
    clearTimeout(app.draftTimer);
    app.draftDirty = false;
    clearErrors();
    hideNotice();
    showReturned(null);
    ui.stage.replaceChildren();
    setSaveStatus("");
    if (mode && mode.clear) mode.clear();
  }

  /** The banner of a task a reviewer sent back: who, and what they said. */
  function showReturned(review) {
    if (!ui.returned) return;
    if (!review) {
      ui.returned.hidden = true;
      ui.returned.replaceChildren();
      return;
    }
    const when = review.created_at ? new Date(review.created_at) : null;
    ui.returned.replaceChildren(
      h("strong", { text: `Returned by ${review.reviewer || "a reviewer"}: ` }),
      h("span", { class: "returned-comment", text: review.comment || "" }),
      when && !Number.isNaN(when.getTime()) ? h("span", { class: "returned-when", text: ` (${when.toLocaleString()})` }) : null,
    );
    ui.returned.hidden = false;
  }

  async function showTask(task, { lease = null, backIndex = -1 } = {}) {
    clearTask();
    app.task = task;
    app.lease = lease;
    app.backIndex = backIndex;
    app.schema = task.schema_revision.schema;
    app.type = app.schema.type;
    app.labels = app.schema.labels || [];
    if (!app.labels.some((l) => l.name === app.activeLabel)) app.activeLabel = app.labels.length ? app.labels[0].name : null;
    if (task.progress) app.progress = task.progress;
    const start = startingPoint(task);
    app.regions = S.normaliseResult(start.result, app.type);
    app.startedAt = performance.now();
    app.idempotencyKey = uuid();
    root.dataset.state = "task";
    root.dataset.taskId = String(task.id);
    root.dataset.schemaType = app.type;
    ui.title.textContent = task.item.external_id;
    ui.title.title = task.item.external_id;
    ui.flags.replaceChildren(
      ...[
        backIndex >= 0 ? h("span", { class: "flag", text: "your earlier task" }) : null,
        task.schema_revision.number > 1 ? h("span", { class: "flag muted", text: `schema r${task.schema_revision.number}` }) : null,
      ].filter(Boolean),
    );
    ui.tool.textContent = toolHint();
    if (start.note) showNotice(start.note, "info");
    if (!mode) showReturned(task.review || null);
    if (mode && mode.show) mode.show(task);
    renderProgress();
    renderLabels();
    renderRegions();
    renderAttributes();
    updateButtons();
    try {
      app.widget = await mountWidget(task);
    } catch (exc) {
      showNotice(`Could not show this item: ${exc && exc.message ? exc.message : exc}`, "error");
      return;
    }
    if (app.task !== task) return; // another task was loaded meanwhile
    app.widget.render();
    updateButtons();
    app.widget.focus();
    if (lease) startHeartbeat();
  }

  function toolHint() {
    return {
      bbox: "Drag on the image to draw a box · n adds one · click a box to edit it",
      polygon: "Click points on the image; click the first point (or double-click) to close",
      keypoint: "Click to place a point · drag to move · n adds one",
      image_class: "Pick the label(s) that apply: buttons or their keys",
      text_class: "Pick the label(s) that apply: buttons or their keys",
      ner: "Select text with the mouse (or Shift+arrows) to mark a span",
    }[app.type] || "";
  }

  function showEmpty(message) {
    clearTask();
    stopHeartbeat();
    app.lease = null;
    app.backIndex = -1;
    root.dataset.state = "empty";
    delete root.dataset.taskId;
    ui.title.textContent = "";
    ui.flags.replaceChildren();
    ui.tool.textContent = "";
    ui.labels.replaceChildren();
    renderRegions();
    renderAttributes();
    renderProgress();
    updateButtons();
    const empty = mode && mode.empty ? mode.empty() : null;
    ui.stage.replaceChildren(
      h(
        "div",
        { class: "stage-message" },
        h("h2", { text: message || (empty ? empty.title : "Nothing left for you in this project") }),
        h("p", { class: "muted", text: empty ? empty.detail : "Every task you may take is done, or held by someone else for now." }),
        h(
          "p",
          {},
          h("a", { href: config.dashboardUrl, text: "Back to the project" }),
          empty ? null : [" · ", h("button", { type: "button", class: "link-button", onclick: () => goBack(), text: "Review my last task (b)" })],
        ),
      ),
    );
  }

  async function loadNext() {
    if (app.busy) return;
    app.busy = true;
    updateButtons();
    try {
      await saveDraft();
      if (app.lease) await releaseLease();
      root.dataset.state = "loading";
      const res = await api("POST", mode ? mode.nextPath : `projects/${config.projectId}/next`);
      app.history = null;
      if (res.status === 204) {
        showEmpty();
      } else if (res.ok && res.data && res.data.task) {
        await showTask(res.data.task, { lease: res.data.lease || null });
      } else {
        root.dataset.state = "error";
        showNotice((res.data && res.data.detail) || `Could not get a task (${res.status}).`, "error", { label: "Try again", run: () => loadNext() });
      }
    } finally {
      app.busy = false;
      updateButtons();
    }
  }

  async function goBack() {
    if (app.busy) return;
    app.busy = true;
    updateButtons();
    try {
      await saveDraft();
      if (!app.history || app.backIndex < 0) {
        const res = await api("GET", `projects/${config.projectId}/history`);
        if (!res.ok) {
          showNotice((res.data && res.data.detail) || "Could not load your recent tasks.", "error");
          return;
        }
        const rows = Array.isArray(res.data) ? res.data : (res.data && res.data.results) || [];
        // The task on screen (when I annotated it before) is not a step back.
        app.history = rows.filter((row) => !(app.task && app.backIndex < 0 && row.task === app.task.id));
      }
      const index = app.backIndex + 1;
      const row = app.history[index];
      if (!row) {
        showNotice(app.history.length ? "That was your oldest recent task." : "You have not submitted a task in this project yet.", "info");
        return;
      }
      const res = await api("GET", `tasks/${row.task}`);
      if (!res.ok) {
        showNotice((res.data && res.data.detail) || `Could not open task ${row.task}.`, "error");
        return;
      }
      if (app.lease) await releaseLease();
      await showTask(res.data, { lease: null, backIndex: index });
    } finally {
      app.busy = false;
      updateButtons();
    }
  }

  // --- submit and skip --------------------------------------------------------------------

  async function submit() {
    if (mode) return mode.submit ? mode.submit() : undefined;
    if (!app.task || app.busy) return;
    if (app.widget && app.widget.finishDrawing) app.widget.finishDrawing();
    app.busy = true;
    updateButtons();
    clearTimeout(app.draftTimer);
    setSaveStatus("Submitting…");
    const task = app.task;
    try {
      const res = await api("POST", `tasks/${task.id}/annotations/`, {
        result: app.regions,
        lease: app.lease ? app.lease.id : null,
        lead_time_ms: Math.round(performance.now() - app.startedAt),
        idempotency_key: app.idempotencyKey,
      });
      if (res.status === 201 || res.status === 200) {
        app.draftDirty = false;
        if (app.backIndex < 0) app.progress = { ...app.progress, done_today: (app.progress.done_today || 0) + 1 };
        stopHeartbeat();
        app.lease = null; // the submit ended it
        app.busy = false;
        await loadNext();
        return;
      }
      setSaveStatus("Not submitted");
      if (res.status === 400) {
        showErrors(res.data);
      } else if (res.status === 409) {
        showErrors({ detail: (res.data && res.data.detail) || "Your hold on this task has ended." });
        showNotice("This task is no longer yours to submit (lease lost).", "warn", { label: "Get the next task", run: () => loadNext() });
      } else {
        showErrors({ detail: (res.data && res.data.detail) || `The server answered ${res.status}; try again.` });
      }
      app.draftDirty = true;
      scheduleDraft();
    } finally {
      app.busy = false;
      updateButtons();
    }
  }

  function openSkip() {
    if (!app.task || !app.lease || app.busy) return;
    ui.skipForm.reset();
    ui.skipError.hidden = true;
    ui.skipDialog.showModal();
    const first = ui.skipForm.querySelector("input[type=radio]");
    if (first) first.focus();
  }

  async function sendSkip(event) {
    event.preventDefault();
    const data = new FormData(ui.skipForm);
    let reason = data.get("reason") || "";
    if (reason === "other") reason = (data.get("other") || "").trim();
    if (!reason) {
      ui.skipError.textContent = "Give a reason.";
      ui.skipError.hidden = false;
      (reason === "" && data.get("reason") === "other" ? ui.skipOther : ui.skipForm.querySelector("input[type=radio]")).focus();
      return;
    }
    const task = app.task;
    const res = await api("POST", `tasks/${task.id}/skip`, { lease: app.lease ? app.lease.id : null, reason });
    if (!res.ok) {
      ui.skipError.textContent = (res.data && res.data.detail) || `Not skipped (${res.status}).`;
      ui.skipError.hidden = false;
      return;
    }
    ui.skipDialog.close();
    stopHeartbeat();
    app.lease = null;
    app.draftDirty = false;
    await loadNext();
  }

  // --- instructions -------------------------------------------------------------------------

  function toggleInstructions(force) {
    const show = force === undefined ? ui.instructions.hidden : force;
    ui.instructions.hidden = !show;
    ui.help.setAttribute("aria-expanded", show ? "true" : "false");
    if (show) ui.instructions.focus();
    else if (app.widget) app.widget.focus();
  }

  // --- the image view: zoom and pan ----------------------------------------------------------

  /** An image in the stage, zoomable (wheel, + - 0) and pannable (Space/Alt/middle
      drag, arrows). Zoom changes the image's CSS size inside a scrolling box, so the
      annotation layers on it (which scale with their image) stay aligned. */
  function ImageView(task) {
    const inner = h("div", { class: "stage-inner" });
    const wrap = h("div", { class: "canvas-wrap" });
    const img = h("img", { alt: task.item.external_id, draggable: false, class: "task-image" });
    wrap.append(img);
    inner.append(wrap);
    ui.stage.replaceChildren(inner);
    const stage = ui.stage;
    const view = { img, wrap, inner, scale: 1, fit: true, width: 0, height: 0, listeners: [] };

    view.ready = new Promise((resolve, reject) => {
      img.onload = () => {
        view.width = img.naturalWidth;
        view.height = img.naturalHeight;
        resolve();
      };
      img.onerror = () => reject(new Error("the image did not load"));
    });
    img.src = task.item.url;

    view.fitScale = () => {
      const pad = 16;
      const sw = Math.max(50, stage.clientWidth - pad);
      const sh = Math.max(50, stage.clientHeight - pad);
      return Math.min(sw / view.width, sh / view.height, ZOOM_MAX);
    };
    view.setScale = (scale, anchor) => {
      const min = Math.min(view.fitScale(), 1) / 4;
      scale = Math.min(ZOOM_MAX, Math.max(min, scale));
      const rect = img.getBoundingClientRect();
      const ax = anchor ? anchor.x : rect.left + Math.min(rect.width, stage.clientWidth) / 2;
      const ay = anchor ? anchor.y : rect.top + Math.min(rect.height, stage.clientHeight) / 2;
      const px = (ax - rect.left) / view.scale;
      const py = (ay - rect.top) / view.scale;
      view.scale = scale;
      img.style.width = `${view.width * scale}px`;
      img.style.height = `${view.height * scale}px`;
      const after = img.getBoundingClientRect();
      stage.scrollLeft += after.left + px * scale - ax;
      stage.scrollTop += after.top + py * scale - ay;
      ui.zoomLevel.textContent = `${Math.round(scale * 100)}%`;
      view.listeners.forEach((fn) => fn(scale));
    };
    view.zoomBy = (factor, anchor) => {
      view.fit = false;
      view.setScale(view.scale * factor, anchor);
    };
    view.zoomFit = () => {
      view.fit = true;
      view.setScale(view.fitScale());
      stage.scrollLeft = 0;
      stage.scrollTop = 0;
    };
    view.onScale = (fn) => view.listeners.push(fn);
    view.clientToImage = (clientX, clientY) => {
      const rect = img.getBoundingClientRect();
      return { x: ((clientX - rect.left) / rect.width) * view.width, y: ((clientY - rect.top) / rect.height) * view.height };
    };
    view.visibleCentre = () => {
      const s = stage.getBoundingClientRect();
      const r = img.getBoundingClientRect();
      const left = Math.max(s.left, r.left);
      const right = Math.min(s.right, r.right);
      const top = Math.max(s.top, r.top);
      const bottom = Math.min(s.bottom, r.bottom);
      const c = view.clientToImage((left + right) / 2, (top + bottom) / 2);
      return { ...c, visibleWidth: (right - left) / view.scale, visibleHeight: (bottom - top) / view.scale, width: view.width, height: view.height };
    };

    // Wheel: zoom around the pointer.
    const onWheel = (event) => {
      event.preventDefault();
      const factor = Math.exp(-event.deltaY * (event.deltaMode === 1 ? 0.05 : 0.0015));
      view.zoomBy(factor, { x: event.clientX, y: event.clientY });
    };
    // Pan: Space or Alt held, or the middle button. Capture phase: the drawing tools
    // underneath never see this pointer.
    let pan = null;
    const onPointerDown = (event) => {
      if (!(app.spaceDown || event.altKey || event.button === 1)) return;
      event.preventDefault();
      event.stopPropagation();
      pan = { x: event.clientX, y: event.clientY, left: stage.scrollLeft, top: stage.scrollTop, id: event.pointerId };
      stage.setPointerCapture(event.pointerId);
      stage.classList.add("panning");
    };
    const onPointerMove = (event) => {
      if (!pan || event.pointerId !== pan.id) return;
      event.stopPropagation();
      stage.scrollLeft = pan.left - (event.clientX - pan.x);
      stage.scrollTop = pan.top - (event.clientY - pan.y);
    };
    const onPointerUp = (event) => {
      if (!pan || event.pointerId !== pan.id) return;
      event.stopPropagation();
      pan = null;
      stage.classList.remove("panning");
    };
    const onResize = () => {
      if (view.fit && view.width) view.zoomFit();
    };
    // A fitted image follows the stage's size (window resized, a notice shown).
    const resizeObserver = new ResizeObserver(onResize);
    stage.addEventListener("wheel", onWheel, { passive: false });
    stage.addEventListener("pointerdown", onPointerDown, true);
    stage.addEventListener("pointermove", onPointerMove, true);
    stage.addEventListener("pointerup", onPointerUp, true);
    resizeObserver.observe(stage);
    view.destroy = () => {
      stage.removeEventListener("wheel", onWheel);
      stage.removeEventListener("pointerdown", onPointerDown, true);
      stage.removeEventListener("pointermove", onPointerMove, true);
      stage.removeEventListener("pointerup", onPointerUp, true);
      resizeObserver.disconnect();
      stage.classList.remove("panning");
    };
    view.pan = (dx, dy) => stage.scrollBy({ left: dx, top: dy });
    return view;
  }

  // --- widgets --------------------------------------------------------------------------------

  async function mountWidget(task) {
    if (["bbox", "polygon", "keypoint", "image_class"].includes(app.type)) {
      if (!task.item.url) throw new Error("the task has no image URL");
      const view = ImageView(task);
      await view.ready;
      view.zoomFit();
      if (app.type === "keypoint") return keypointWidget(view);
      if (app.type === "image_class") return viewOnlyWidget(view);
      return annotoriousWidget(view, app.type === "polygon" ? "polygon" : "rectangle");
    }
    if (typeof task.item.text !== "string") throw new Error("the task has no text");
    if (app.type === "ner") return spanWidget(task.item.text);
    return textOnlyWidget(task.item.text);
  }

  function zoomCommands(view) {
    return {
      in: () => view.zoomBy(ZOOM_STEP),
      out: () => view.zoomBy(1 / ZOOM_STEP),
      fit: () => view.zoomFit(),
    };
  }

  /** image_class: the image, zoomable; the labels are the whole job. */
  function viewOnlyWidget(view) {
    return {
      view,
      zoom: zoomCommands(view),
      render() {},
      select() {},
      deselect() {},
      focus: () => ui.stage.focus({ preventScroll: true }),
      destroy: () => view.destroy(),
    };
  }

  /** Boxes and polygons with Annotorious. It draws and edits shapes; every change it
      makes to its store comes back here as our regions (labels and attributes kept by
      id). Changes made here (undo, relabel, keys) are written into its store with
      `applying` set, so they do not echo back. */
  function annotoriousWidget(view, tool) {
    const size = { width: view.width, height: view.height };
    const style = (annotation, state) => {
      const color = colorOf(S.annotoriousLabel(annotation));
      const selected = annotation.id === app.selectedId || Boolean(state && state.selected);
      return { fill: color, fillOpacity: selected ? 0.3 : 0.12, stroke: color, strokeOpacity: 1, strokeWidth: selected ? 3 : 2 };
    };
    const anno = Annotorious.createImageAnnotator(view.img, {
      drawingEnabled: true,
      // Boxes: press, drag, release. Polygons: a click per point, closed by a click on
      // the first (in drag mode a polygon's first edge would have to be dragged).
      drawingMode: tool === "polygon" ? "click" : "drag",
      userSelectAction: "EDIT",
      style,
    });
    anno.setDrawingTool(tool);
    let applying = false;
    const apply = (fn) => {
      applying = true;
      try {
        fn();
      } finally {
        applying = false;
      }
    };

    const collect = (changes) => {
      const before = new Map(app.regions.map((r) => [r.id, r]));
      const seen = new Set();
      const next = [];
      const fresh = [];
      const drop = [];
      const byId = new Map(anno.getAnnotations().map((a) => [a.id, a]));
      const ordered = [...app.regions.map((r) => r.id).filter((id) => byId.has(id)), ...[...byId.keys()].filter((id) => !before.has(id))];
      for (const id of ordered) {
        if (seen.has(id)) continue;
        seen.add(id);
        const previous = before.get(id);
        const region = S.fromAnnotorious(byId.get(id), size, previous, app.activeLabel, attributeDefaults());
        if (!region) {
          drop.push(id);
          continue;
        }
        if (!previous) fresh.push(region);
        next.push(region);
      }
      const onlyUpdates = !changes.created.length && !changes.deleted.length;
      // A shape just drawn is the selected region at once: its label key may come next.
      if (fresh.length) app.selectedId = fresh[fresh.length - 1].id;
      commit(next, { render: false, coalesce: onlyUpdates ? `edit:${changes.updated.map((u) => u.newValue.id).join(",")}` : null });
      if (fresh.length || drop.length) {
        // Outside the store's notification: give the new shapes their label, drop the
        // degenerate ones, and leave edit mode so the next drag draws again.
        setTimeout(() => {
          apply(() => {
            drop.forEach((id) => anno.removeAnnotation(id));
            // The region as it is now: a label key may have come in the meantime.
            fresh.forEach(({ id }) => {
              const region = app.regions.find((r) => r.id === id);
              if (region && anno.getAnnotationById(id)) anno.updateAnnotation(S.toAnnotorious(region));
            });
          });
          if (fresh.length) {
            anno.cancelSelected();
            select(fresh[fresh.length - 1].id, { fromWidget: true });
          }
        }, 0);
      }
    };
    anno.state.store.observe((event) => {
      if (!applying) collect(event.changes);
    });
    // A shape the user clicked becomes the selected region. Only user selections carry
    // their pointer event: the selection Annotorious makes of a shape just drawn (which
    // this page ends at once, to keep drawing) does not, and is not followed.
    const unsubscribe = anno.state.selection.subscribe((state) => {
      if (!state || !state.event || !state.selected || !state.selected.length) return;
      const id = state.selected[0].id;
      if (id !== app.selectedId) select(id, { fromWidget: true });
    });
    // A click on the image outside every shape deselects.
    let down = null;
    const onDown = (e) => {
      down = { x: e.clientX, y: e.clientY };
    };
    const onUp = (e) => {
      if (!down || e.button !== 0 || Math.hypot(e.clientX - down.x, e.clientY - down.y) > 4) return;
      if (tool !== "rectangle" || !app.selectedId) return; // polygon clicks place points
      const p = view.clientToImage(e.clientX, e.clientY);
      if (!anno.state.store.getAt(p.x, p.y, undefined, 2)) select(null, { fromWidget: true });
    };
    anno.element.addEventListener("pointerdown", onDown);
    anno.element.addEventListener("pointerup", onUp);

    return {
      view,
      anno,
      zoom: zoomCommands(view),
      render() {
        apply(() => {
          const want = new Map(app.regions.map((r) => [r.id, r]));
          const selected = anno.getSelected().map((a) => a.id);
          if (selected.some((id) => !want.has(id))) anno.cancelSelected();
          for (const a of anno.getAnnotations()) if (!want.has(a.id)) anno.removeAnnotation(a.id);
          for (const region of app.regions) {
            const current = anno.getAnnotationById(region.id);
            if (!current) anno.addAnnotation(S.toAnnotorious(region));
            else if (!S.sameAsAnnotorious(region, current, size)) anno.updateAnnotation(S.toAnnotorious(region));
          }
        });
        anno.setStyle(style);
      },
      restyle: () => anno.setStyle(style),
      select(id, edit) {
        if (!id) anno.cancelSelected();
        else if (edit) anno.setSelected(id, true);
        anno.setStyle(style);
      },
      deselect: () => anno.cancelSelected(),
      cancelDrawing: () => anno.cancelDrawing(),
      finishDrawing() {},
      focus: () => {
        const svg = anno.element.querySelector("svg");
        (svg || ui.stage).focus({ preventScroll: true });
      },
      destroy() {
        unsubscribe();
        anno.element.removeEventListener("pointerdown", onDown);
        anno.element.removeEventListener("pointerup", onUp);
        anno.destroy();
        view.destroy();
      },
    };
  }

  /** Keypoints: an SVG layer of our own over the image (Annotorious 3 has no point
      tool in its core). Click places a point with the active label, drag moves one. */
  function keypointWidget(view) {
    const NS = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("class", "kp-layer");
    svg.setAttribute("viewBox", `0 0 ${view.width} ${view.height}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("tabindex", "0");
    svg.setAttribute("role", "application");
    svg.setAttribute("aria-label", "Image: click to place a point");
    view.wrap.append(svg);
    const size = { width: view.width, height: view.height };
    let drag = null;

    const render = () => {
      const r = 6 / view.scale;
      svg.replaceChildren(
        ...app.regions.map((region) => {
          const g = document.createElementNS(NS, "g");
          const selected = region.id === app.selectedId;
          g.setAttribute("class", `kp${selected ? " selected" : ""}`);
          g.dataset.id = region.id;
          const color = colorOf(S.regionLabel(region));
          const halo = document.createElementNS(NS, "circle");
          halo.setAttribute("class", "kp-halo");
          halo.setAttribute("cx", region.value.x);
          halo.setAttribute("cy", region.value.y);
          halo.setAttribute("r", String(r * (selected ? 2.1 : 1.6)));
          const dot = document.createElementNS(NS, "circle");
          dot.setAttribute("class", "kp-dot");
          dot.setAttribute("cx", region.value.x);
          dot.setAttribute("cy", region.value.y);
          dot.setAttribute("r", String(r));
          dot.setAttribute("fill", color);
          const title = document.createElementNS(NS, "title");
          title.textContent = S.regionLabel(region) || "no label";
          g.append(halo, dot, title);
          return g;
        }),
      );
    };
    view.onScale(render);

    const onDown = (event) => {
      if (event.button !== 0) return;
      event.preventDefault();
      svg.focus({ preventScroll: true });
      const p = view.clientToImage(event.clientX, event.clientY);
      const hit = event.target.closest && event.target.closest("g.kp");
      let id;
      if (hit) {
        id = hit.dataset.id;
        select(id, { fromWidget: true });
      } else {
        const region = S.keypoint(S.newId("k"), p.x, p.y, size, app.activeLabel, attributeDefaults());
        id = region.id;
        app.selectedId = id;
        commit([...app.regions, region]);
        select(id, { fromWidget: true });
      }
      drag = { id, pointer: event.pointerId, moved: false };
      svg.setPointerCapture(event.pointerId);
    };
    const onMove = (event) => {
      if (!drag || event.pointerId !== drag.pointer) return;
      const p = view.clientToImage(event.clientX, event.clientY);
      drag.moved = true;
      commit(
        app.regions.map((r) => (r.id === drag.id ? S.keypoint(r.id, p.x, p.y, size, S.regionLabel(r), r.attributes) : r)),
        { coalesce: `move:${drag.id}` },
      );
    };
    const onUp = (event) => {
      if (drag && event.pointerId === drag.pointer) drag = null;
    };
    svg.addEventListener("pointerdown", onDown);
    svg.addEventListener("pointermove", onMove);
    svg.addEventListener("pointerup", onUp);

    return {
      view,
      zoom: zoomCommands(view),
      render,
      restyle: render,
      select: () => render(),
      deselect() {},
      focus: () => svg.focus({ preventScroll: true }),
      destroy() {
        svg.remove();
        view.destroy();
      },
    };
  }

  /** A text in a scrolling page; + - 0 change its font size. */
  function TextView(text, { annotatable }) {
    const doc = h("div", {
      class: `text-doc${annotatable ? " annotatable" : ""}`,
      tabindex: "0",
      "aria-label": annotatable ? "Text: select a span with the mouse, or move with the arrows and extend with Shift+arrows" : "Text",
    });
    doc.textContent = text;
    const scroller = h("div", { class: "text-scroll" }, doc);
    ui.stage.replaceChildren(scroller);
    let size = 1;
    const setSize = (value) => {
      size = Math.min(2.5, Math.max(0.6, value));
      doc.style.fontSize = `${size}rem`;
      ui.zoomLevel.textContent = `${Math.round(size * 100)}%`;
    };
    setSize(1);
    return {
      doc,
      scroller,
      zoom: { in: () => setSize(size * 1.15), out: () => setSize(size / 1.15), fit: () => setSize(1) },
    };
  }

  function textOnlyWidget(text) {
    const view = TextView(text, { annotatable: false });
    return {
      zoom: view.zoom,
      render() {},
      select() {},
      deselect() {},
      focus: () => view.doc.focus({ preventScroll: true }),
      destroy() {},
    };
  }

  /** Entity spans with the Recogito text annotator. Its offsets (UTF-16) become code
      points in result-shapes.js. Keyboard: the text is focusable; arrows move a caret,
      Shift+arrows extend the selection, and releasing Shift makes the span. */
  function spanWidget(text) {
    const view = TextView(text, { annotatable: true });
    const offsets = S.textOffsets(text);
    const style = (annotation, state) => {
      const color = colorOf(S.recogitoLabel(annotation));
      const selected = annotation.id === app.selectedId || Boolean(state && state.selected);
      return { fill: color, fillOpacity: selected ? 0.55 : 0.3, underlineColor: color, underlineThickness: selected ? 3 : 2, underlineOffset: 1 };
    };
    const r6o = RecogitoJS.createTextAnnotator(view.doc, { style, renderer: "SPANS" });
    let applying = false;
    const apply = (fn) => {
      applying = true;
      try {
        fn();
      } finally {
        applying = false;
      }
    };
    const collect = (changes) => {
      const before = new Map(app.regions.map((r) => [r.id, r]));
      const byId = new Map(r6o.getAnnotations().map((a) => [a.id, a]));
      const ordered = [...app.regions.map((r) => r.id).filter((id) => byId.has(id)), ...[...byId.keys()].filter((id) => !before.has(id))];
      const next = [];
      const fresh = [];
      const drop = [];
      for (const id of ordered) {
        const previous = before.get(id);
        const region = S.fromRecogito(byId.get(id), offsets, text, previous, app.activeLabel, attributeDefaults());
        if (!region) {
          drop.push(id);
          continue;
        }
        if (!previous) fresh.push(region);
        next.push(region);
      }
      const onlyUpdates = !changes.created.length && !changes.deleted.length;
      if (fresh.length) app.selectedId = fresh[fresh.length - 1].id;
      commit(next, { render: false, coalesce: onlyUpdates ? `span:${changes.updated.map((u) => u.newValue.id).join(",")}` : null });
      if (fresh.length || drop.length) {
        setTimeout(() => {
          apply(() => {
            drop.forEach((id) => r6o.removeAnnotation(id));
            fresh.forEach(({ id }) => {
              const region = app.regions.find((r) => r.id === id);
              if (region && r6o.getAnnotationById(id)) r6o.updateAnnotation(S.toRecogito(region, offsets, text));
            });
          });
          if (fresh.length) select(fresh[fresh.length - 1].id, { fromWidget: true });
          r6o.setStyle(style);
        }, 0);
      }
    };
    r6o.state.store.observe((event) => {
      if (!applying) collect(event.changes);
    });
    r6o.on("selectionChanged", (annotations) => {
      const id = annotations.length ? annotations[0].id : null;
      if (id !== app.selectedId && (id || !applying)) select(id, { fromWidget: true });
    });

    // Keyboard caret: the browser moves a caret only in editable text, so arrows move
    // the selection here (Selection.modify), Ctrl by words.
    const onKeyDown = (event) => {
      const dir = { ArrowLeft: "backward", ArrowRight: "forward", ArrowUp: "backward", ArrowDown: "forward" }[event.key];
      if (!dir || event.altKey || event.metaKey) return;
      const sel = document.getSelection();
      if (!sel.rangeCount || !view.doc.contains(sel.anchorNode)) {
        const node = view.doc.firstChild;
        if (!node) return;
        sel.collapse(node, 0);
      }
      const unit = event.key === "ArrowUp" || event.key === "ArrowDown" ? "line" : event.ctrlKey ? "word" : "character";
      sel.modify(event.shiftKey ? "extend" : "move", dir, unit);
      event.preventDefault();
    };
    view.doc.addEventListener("keydown", onKeyDown);

    return {
      zoom: {
        in: () => { view.zoom.in(); r6o.state.store.recalculatePositions && r6o.state.store.recalculatePositions(); },
        out: () => { view.zoom.out(); r6o.state.store.recalculatePositions && r6o.state.store.recalculatePositions(); },
        fit: () => { view.zoom.fit(); r6o.state.store.recalculatePositions && r6o.state.store.recalculatePositions(); },
      },
      ownsArrows: (target) => target === view.doc,
      render() {
        apply(() => {
          const want = new Map(app.regions.map((r) => [r.id, r]));
          for (const a of r6o.getAnnotations()) if (!want.has(a.id)) r6o.removeAnnotation(a.id);
          for (const region of app.regions) {
            const current = r6o.getAnnotationById(region.id);
            if (!current) r6o.addAnnotation(S.toRecogito(region, offsets, text));
            else if (!S.sameAsRecogito(region, current, offsets)) r6o.updateAnnotation(S.toRecogito(region, offsets, text));
          }
        });
        r6o.setStyle(style);
      },
      restyle: () => r6o.setStyle(style),
      select(id) {
        apply(() => (id ? r6o.setSelected(id) : r6o.cancelSelected()));
        r6o.setStyle(style);
      },
      deselect: () => apply(() => r6o.cancelSelected()),
      focus: () => view.doc.focus({ preventScroll: true }),
      destroy() {
        view.doc.removeEventListener("keydown", onKeyDown);
        r6o.destroy();
      },
    };
  }

  // --- keys ---------------------------------------------------------------------------------

  function isTyping(el) {
    if (!el || el === document.body) return false;
    if (el.isContentEditable) return true;
    if (el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    if (el.tagName === "INPUT") return !["checkbox", "radio", "button", "submit", "reset", "range", "color"].includes(el.type);
    return false;
  }

  function isControl(el) {
    return Boolean(el && el.closest && el.closest("button, a[href], input, select, textarea, summary, [role=button]"));
  }

  function handled(event) {
    event.preventDefault();
    event.stopPropagation();
  }

  function onKeyDown(event) {
    const target = event.target;
    const typing = isTyping(target);
    const ctrl = event.ctrlKey || event.metaKey;
    const key = event.key;
    const lower = key.length === 1 ? key.toLowerCase() : key;
    if (root.querySelector("dialog[open]")) {
      // The dialog's own keys (Escape closes it); no shape is undone behind it.
      if (ctrl && ["z", "y"].includes(lower)) event.stopPropagation();
      return;
    }

    if (ctrl && !event.altKey) {
      if (key === "Enter") return handled(event), submit();
      if (typing) {
        // The field undoes its own text; Annotorious (listening on the document) must
        // not undo a shape as well.
        if (["z", "y"].includes(lower)) event.stopPropagation();
        return;
      }
      if (lower === "z" && !event.shiftKey) return handled(event), undo();
      if ((lower === "z" && event.shiftKey) || lower === "y") return handled(event), redo();
      // Select-all would become one span over the whole text (the text annotator turns
      // every selection into a span).
      if (lower === "a") return handled(event);
      const arrow = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[key];
      if (arrow && app.widget && !(app.widget.ownsArrows && app.widget.ownsArrows(target))) {
        const step = event.shiftKey ? 10 : 1;
        if (nudge(arrow[0] * step, arrow[1] * step, true)) handled(event);
      }
      return;
    }
    if (typing) {
      if (key === "Escape") target.blur();
      return;
    }
    if (event.altKey) return;
    if (key === " " && !isControl(target)) {
      app.spaceDown = true;
      ui.stage.classList.add("pan-ready");
      if (!(app.widget && app.widget.ownsArrows && app.widget.ownsArrows(target))) event.preventDefault();
      return;
    }
    if (!app.task && !["b", "?"].includes(lower)) return;
    // A mode's own keys (the reviewer's decisions) come before the labels' hotkeys.
    if (mode && mode.key && !event.shiftKey && key.length === 1 && mode.key(lower)) return handled(event);

    // A label's hotkey wins over the page's own single keys.
    if (!event.shiftKey && key.length === 1) {
      const label = hotkeyLabel(lower);
      if (label) return handled(event), pressLabel(label.name);
    }
    const arrow = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[key];
    if (arrow) {
      if (app.widget && app.widget.ownsArrows && app.widget.ownsArrows(target)) return;
      if (isControl(target) && !target.closest("svg")) return;
      const step = event.shiftKey ? 10 : 1;
      if (nudge(arrow[0] * step, arrow[1] * step, false)) return handled(event);
      if (app.widget && app.widget.view) {
        handled(event);
        app.widget.view.pan(arrow[0] * 60, arrow[1] * 60);
      }
      return;
    }
    switch (key) {
      case "Enter":
        if (isControl(target)) return;
        handled(event);
        submit();
        return;
      case "Escape":
        if (!ui.instructions.hidden) return handled(event), toggleInstructions(false);
        if (app.widget && app.widget.cancelDrawing) app.widget.cancelDrawing();
        if (app.selectedId) select(null);
        return;
      case "Delete":
      case "Backspace":
        if (app.selectedId) {
          handled(event);
          removeRegion(app.selectedId);
        }
        return;
      case "?":
        return handled(event), toggleInstructions();
      case "+":
      case "=":
        if (app.widget && app.widget.zoom) handled(event), app.widget.zoom.in();
        return;
      case "-":
      case "_":
        if (app.widget && app.widget.zoom) handled(event), app.widget.zoom.out();
        return;
      case "0":
      case "Home":
        if (app.widget && app.widget.zoom) handled(event), app.widget.zoom.fit();
        return;
      case "[":
        return handled(event), selectNeighbour(-1);
      case "]":
        return handled(event), selectNeighbour(1);
      default:
        break;
    }
    if (event.shiftKey) return;
    if (lower === "n") return handled(event), addAtCentre();
    if (mode) return;
    if (lower === "s") return handled(event), openSkip();
    if (lower === "b") return handled(event), goBack();
  }

  function onKeyUp(event) {
    if (event.key === " ") {
      app.spaceDown = false;
      ui.stage.classList.remove("pan-ready");
    }
  }

  // --- wiring -------------------------------------------------------------------------------

  function buildSkipReasons() {
    const list = ui.skipForm.querySelector(".skip-reasons");
    list.replaceChildren(
      ...SKIP_REASONS.map((reason, i) =>
        h("label", { class: "choice" }, h("input", { type: "radio", name: "reason", value: reason, required: i === 0 }), h("span", { text: reason })),
      ),
      h("label", { class: "choice" }, h("input", { type: "radio", name: "reason", value: "other" }), h("span", { text: "Other:" })),
    );
    ui.skipOther.addEventListener("focus", () => {
      const other = ui.skipForm.querySelector("input[value=other]");
      if (other) other.checked = true;
    });
  }

  /** What a mode may use of this page. */
  function modeKit() {
    return {
      app,
      config,
      api,
      h,
      showNotice,
      hideNotice,
      showErrors,
      clearErrors,
      loadNext,
      stopHeartbeat,
      updateButtons,
      setSaveStatus,
      /** Show another result in the editor (a fresh start: no undo across it). */
      setRegions(result) {
        app.regions = S.normaliseResult(result || [], app.type);
        app.selectedId = null;
        app.undo = [];
        app.redo = [];
        app.lastEdit = { key: null, at: 0 };
        clearErrors();
        if (app.widget) {
          app.widget.deselect();
          app.widget.render();
        }
        changed();
      },
    };
  }

  function init() {
    const makeMode = config.mode ? (window.LabelvaultModes || {})[config.mode] : null;
    if (config.mode && !makeMode) throw new Error(`annotator.js: no mode ${config.mode} (is its script loaded first?)`);
    mode = makeMode ? makeMode(modeKit()) : null;
    if (!mode) {
      buildSkipReasons();
      ui.submit.addEventListener("click", () => submit());
      ui.skip.addEventListener("click", () => openSkip());
      ui.back.addEventListener("click", () => goBack());
      ui.queue.addEventListener("click", () => loadNext());
      ui.skipForm.addEventListener("submit", sendSkip);
      ui.skipForm.querySelector("[data-cancel]").addEventListener("click", () => ui.skipDialog.close());
      ui.skipDialog.addEventListener("close", () => app.widget && app.widget.focus());
    }
    ui.undo.addEventListener("click", () => undo());
    ui.redo.addEventListener("click", () => redo());
    ui.help.addEventListener("click", () => toggleInstructions());
    ui.instructionsClose.addEventListener("click", () => toggleInstructions(false));
    ui.zoomIn.addEventListener("click", () => app.widget && app.widget.zoom && app.widget.zoom.in());
    ui.zoomOut.addEventListener("click", () => app.widget && app.widget.zoom && app.widget.zoom.out());
    ui.zoomFit.addEventListener("click", () => app.widget && app.widget.zoom && app.widget.zoom.fit());
    window.addEventListener("keydown", onKeyDown, true);
    window.addEventListener("keyup", onKeyUp, true);
    window.addEventListener("blur", () => {
      app.spaceDown = false;
      ui.stage.classList.remove("pan-ready");
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") saveDraft({ keepalive: true });
    });
    // The lease is kept when the page goes: a reload asks for the next task again and
    // gets the same lease back (the API renews a live one); a closed tab holds the slot
    // until the lease expires. Releasing here would race with the reload's request.
    window.addEventListener("pagehide", () => saveDraft({ keepalive: true }));
    // The page's state for tests and for people reading the DOM.
    root.annotator = { app, mode, submit, undo, redo, select, pressLabel, loadNext, goBack };
    loadNext();
  }

  init();
})();
