/* The reviewer's page (/projects/<id>/review): annotator.js's editor in "review" mode.

   The queue is the review queue (POST projects/<id>/review/next, review leases); a task
   opens with its proposed label in the editor. The side panel lists the proposal (its
   source and confidence), every annotation (annotator, lead time; "View" loads it into
   the editor) and the earlier reviews. Decisions (POST tasks/<id>/reviews):
   - Accept (a): the label shown as it is: the proposal, or the annotation viewed.
   - Reject (r): a comment for the annotator (required), on the annotation viewed (a
     choice when the task has several); the task goes back to them.
   - Fix & accept (f): the edited label, as a new revision by the reviewer. Accept is
     for an unedited label and Fix for an edited one, so neither loses an edit.
   After a decision the next task loads; no drafts are kept for reviewers. */
(function () {
  "use strict";

  function reviewMode(kit) {
    const { app, api, h, config } = kit;
    const byId = (id) => document.getElementById(id);
    const ui = {
      decided: byId("review-decided"),
      pending: byId("review-pending"),
      proposal: byId("review-proposal"),
      annotations: byId("review-annotations"),
      earlier: byId("review-earlier"),
      history: byId("review-history"),
      accept: byId("btn-accept"),
      reject: byId("btn-reject"),
      fix: byId("btn-fix"),
      dialog: byId("reject-dialog"),
      form: byId("reject-form"),
      comment: byId("reject-comment"),
      target: byId("reject-annotation"),
      targetRow: byId("reject-target-row"),
      error: byId("reject-error"),
    };
    // What the editor shows: "proposal" or an annotation id; `baseline` is that result
    // as loaded, so an edit is any difference from it.
    const state = { view: "proposal", baseline: "[]", decided: 0 };

    const proposalOf = (task) => task.proposal || { result: [], source: "annotation", annotation: null, confidence: null };
    const annotationsOf = (task) => task.annotations || [];
    const edited = () => Boolean(app.task) && JSON.stringify(app.regions) !== state.baseline;

    function annotatorOf(id) {
      const found = app.task && annotationsOf(app.task).find((a) => a.id === id);
      return found ? found.annotator : null;
    }

    function leadTime(ms) {
      if (ms === null || ms === undefined) return "lead time unknown";
      const s = Math.round(ms / 1000);
      return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
    }

    function when(iso) {
      const d = iso ? new Date(iso) : null;
      return d && !Number.isNaN(d.getTime()) ? d.toLocaleString() : "";
    }

    function proposalText(proposal) {
      if (proposal.source === "consensus") return "Consensus of the annotations";
      const who = annotatorOf(proposal.annotation);
      return who ? `The annotation of ${who}` : "The annotation";
    }

    // --- the side panel -------------------------------------------------------------

    function render() {
      const task = app.task;
      ui.decided.textContent = String(state.decided);
      if (!task) {
        ui.proposal.replaceChildren();
        ui.annotations.replaceChildren();
        ui.earlier.replaceChildren();
        ui.history.hidden = true;
        return;
      }
      const proposal = proposalOf(task);
      const confidence = proposal.confidence === null || proposal.confidence === undefined ? null : Number(proposal.confidence);
      ui.proposal.replaceChildren(
        h(
          "button",
          {
            type: "button",
            class: "review-view",
            "aria-pressed": state.view === "proposal" ? "true" : "false",
            "data-view": "proposal",
            onclick: () => view("proposal"),
          },
          h("span", { class: "review-who", text: "Proposed label" }),
          h("span", { class: "review-what muted", text: proposalText(proposal) }),
        ),
        h(
          "p",
          { class: "review-confidence", id: "review-confidence" },
          "Confidence ",
          h("strong", { text: confidence === null ? "–" : `${Math.round(confidence * 100)}%` }),
          confidence !== null && confidence < Number(config.consensusThreshold)
            ? h("span", { class: "flag", title: `under the project's threshold of ${Math.round(config.consensusThreshold * 100)}%`, text: "low" })
            : null,
        ),
      );
      const annotations = annotationsOf(task);
      ui.annotations.replaceChildren(
        ...(annotations.length
          ? annotations.map((a) => {
              const rev = a.revision || {};
              return h(
                "li",
                { "data-annotation-id": String(a.id) },
                h(
                  "button",
                  {
                    type: "button",
                    class: "review-view",
                    "aria-pressed": state.view === a.id ? "true" : "false",
                    title: "Show this annotation in the editor",
                    onclick: () => view(a.id),
                  },
                  h("span", { class: "review-who", text: a.annotator }),
                  h("span", {
                    class: "review-what muted",
                    text: `revision ${rev.number || 1} · ${leadTime(rev.lead_time_ms)}${rev.created_by && rev.created_by !== a.annotator ? ` · by ${rev.created_by}` : ""}`,
                  }),
                  a.needs_rework ? h("span", { class: "flag", text: "sent back" }) : null,
                ),
              );
            })
          : [h("li", { class: "muted", text: "No annotations." })]),
      );
      const reviews = task.reviews || [];
      ui.earlier.replaceChildren(
        ...(reviews.length
          ? reviews.map((r) =>
              h(
                "li",
                { class: `review-${r.decision}` },
                h("span", { class: "review-decision", text: { accept: "Accepted", reject: "Rejected", fix: "Fixed" }[r.decision] || r.decision }),
                ` by ${r.reviewer}`,
                r.annotation && annotatorOf(r.annotation) ? ` (annotation of ${annotatorOf(r.annotation)})` : "",
                h("span", { class: "muted review-when", text: ` ${when(r.created_at)}` }),
                r.comment ? h("q", { class: "review-comment", text: r.comment }) : null,
              ),
            )
          : [h("li", { class: "muted", text: "None yet." })]),
      );
      ui.history.href = `${config.projectUrl}tasks/${task.id}/history`;
      ui.history.hidden = false;
    }

    /** Show the proposal or one annotation in the editor. */
    function view(which) {
      if (!app.task || app.busy) return;
      if (which === state.view && !edited()) return;
      // Switching shows another result: the reviewer's edits would be gone.
      if (edited() && !window.confirm("Discard your edits to the label shown?")) return;
      let result;
      if (which === "proposal") {
        result = proposalOf(app.task).result;
      } else {
        const a = annotationsOf(app.task).find((x) => x.id === which);
        if (!a) return;
        result = (a.revision && a.revision.result) || [];
      }
      state.view = which;
      kit.setRegions(result);
      state.baseline = JSON.stringify(app.regions);
      kit.hideNotice();
      render();
      updateButtons();
    }

    function updateButtons() {
      const ready = Boolean(app.task) && Boolean(app.lease) && !app.busy;
      const changedLabel = edited();
      ui.accept.disabled = !ready || changedLabel;
      ui.accept.title = changedLabel ? "You edited the label: Fix & accept submits your version (or undo your edits)" : "Accept the label shown";
      ui.reject.disabled = !ready || !annotationsOf(app.task || {}).length;
      ui.fix.disabled = !ready || !changedLabel;
      if (app.task && !app.busy) kit.setSaveStatus(changedLabel ? "Edited: not sent yet" : "");
    }

    // --- decisions ---------------------------------------------------------------------

    /** The annotation a decision is about: the one viewed, else the proposal's, else
        the only one, else the first (the API asks for one on a fix of a consensus). */
    function targetAnnotation({ firstIfMany = false } = {}) {
      if (state.view !== "proposal") return state.view;
      const proposal = proposalOf(app.task);
      if (proposal.annotation) return proposal.annotation;
      const annotations = annotationsOf(app.task);
      if (annotations.length === 1 || (firstIfMany && annotations.length)) return annotations[0].id;
      return null;
    }

    /** Send a decision and answer the API's {status, ok, data}: when taken, the next
        task loads; a refusal is shown beside the canvas unless `quiet` (a lost lease
        always is). Null when there was nothing to decide. */
    async function decide(body, { quiet = false } = {}) {
      if (!app.task || !app.lease || app.busy) return null;
      const task = app.task;
      app.busy = true;
      kit.updateButtons();
      kit.clearErrors();
      kit.setSaveStatus("Sending…");
      try {
        const res = await api("POST", `tasks/${task.id}/reviews`, { ...body, lease: app.lease.id });
        if (res.status === 201 || res.status === 200) {
          state.decided += 1;
          kit.stopHeartbeat();
          app.lease = null; // the decision ended it
          app.busy = false;
          if (ui.dialog.open) ui.dialog.close();
          await kit.loadNext();
          return res;
        }
        kit.setSaveStatus("Not sent");
        if (quiet && res.status !== 409) return res;
        if (res.status === 409) {
          kit.showNotice((res.data && res.data.detail) || "This task is no longer yours to review (lease lost).", "warn", {
            label: "Get the next task",
            run: () => kit.loadNext(),
          });
        } else {
          kit.showErrors(res.data || { detail: `The server answered ${res.status}; try again.` });
        }
        return res;
      } finally {
        app.busy = false;
        kit.updateButtons();
      }
    }

    function accept() {
      if (app.task && edited()) {
        kit.showNotice("You edited the label: Fix & accept (f) submits your version; undo your edits to accept it as it was.", "warn");
        return;
      }
      if (ui.accept.disabled) return;
      const body = { decision: "accept" };
      if (state.view !== "proposal") body.annotation = state.view;
      decide(body);
    }

    function fix() {
      if (ui.fix.disabled) return;
      if (app.widget && app.widget.finishDrawing) app.widget.finishDrawing();
      const body = { decision: "fix", result: app.regions };
      const annotation = targetAnnotation({ firstIfMany: true });
      if (annotation) body.annotation = annotation;
      decide(body);
    }

    function openReject() {
      if (ui.reject.disabled) return;
      const annotations = annotationsOf(app.task);
      const target = targetAnnotation();
      ui.form.reset();
      ui.error.hidden = true;
      ui.target.replaceChildren(
        ...annotations.map((a) => h("option", { value: String(a.id), text: `${a.annotator} (revision ${(a.revision && a.revision.number) || 1})`, selected: a.id === target })),
      );
      ui.targetRow.hidden = annotations.length < 2;
      ui.dialog.showModal();
      ui.comment.focus();
    }

    async function sendReject(event) {
      event.preventDefault();
      const comment = ui.comment.value.trim();
      if (!comment) {
        ui.error.textContent = "Say what the annotator should change: they see this comment.";
        ui.error.hidden = false;
        ui.comment.focus();
        return;
      }
      const body = { decision: "reject", comment };
      if (ui.target.value) body.annotation = Number(ui.target.value);
      const res = await decide(body, { quiet: true });
      if (res && !res.ok && ui.dialog.open) {
        ui.error.textContent = (res.data && res.data.detail) || `Not rejected (${res.status}).`;
        ui.error.hidden = false;
      }
    }

    ui.accept.addEventListener("click", accept);
    ui.reject.addEventListener("click", openReject);
    ui.fix.addEventListener("click", fix);
    ui.form.addEventListener("submit", sendReject);
    ui.form.querySelector("[data-cancel]").addEventListener("click", () => ui.dialog.close());
    ui.dialog.addEventListener("close", () => app.widget && app.widget.focus());

    return {
      nextPath: `projects/${config.projectId}/review/next`,
      leasePath: (id) => `review-leases/${id}`,
      drafts: false,
      startingPoint(task) {
        state.view = "proposal";
        const proposal = proposalOf(task);
        const edits = task.reviews && task.reviews.length ? " It was reviewed before: see below." : "";
        return { result: proposal.result || [], note: `${proposalText(proposal)} is proposed: accept it, reject it with a comment, or edit it and Fix & accept.${edits}` };
      },
      show() {
        state.baseline = JSON.stringify(app.regions);
        render();
        updateButtons();
      },
      clear() {
        state.baseline = "[]";
        render();
      },
      changed: updateButtons,
      updateButtons,
      renderProgress() {
        const pending = app.task ? app.progress && app.progress.pending : 0;
        ui.pending.textContent = pending === null || pending === undefined ? "–" : Number(pending).toLocaleString();
        ui.decided.textContent = String(state.decided);
      },
      key(lower) {
        if (!app.task) return false;
        if (lower === "a") return accept(), true;
        if (lower === "r") return openReject(), true;
        if (lower === "f") return fix(), true;
        return false;
      },
      empty: () => ({
        title: "Nothing waits for review",
        detail: state.decided
          ? `You made ${state.decided} decision${state.decided === 1 ? "" : "s"} here. New tasks come in as annotators submit: check back later.`
          : "Every submitted task is reviewed, or held by another reviewer for now. Check back later.",
      }),
      // For tests and people reading the DOM.
      state,
      view,
    };
  }

  window.LabelvaultModes = { ...(window.LabelvaultModes || {}), review: reviewMode };
})();
