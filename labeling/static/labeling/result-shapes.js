/* Conversions between Labelvault's annotation result JSON (labeling/results.py) and the
   shapes of the annotation libraries, in one place.

   Our regions are in IMAGE PIXELS and TEXT CHARACTER OFFSETS (Python str indices, i.e.
   Unicode code points):
     {id, type: "rectanglelabels", value: {x, y, width, height, rectanglelabels: [label]}, attributes}
     {id, type: "polygonlabels",   value: {points: [[x, y], ...], polygonlabels: [label]}, attributes}
     {id, type: "keypointlabels",  value: {x, y, keypointlabels: [label]}, attributes}
     {id, type: "choices",         value: {choices: [label, ...]}}
     {id, type: "labels",          value: {start, end, text, labels: [label]}, attributes}

   Annotorious 3 (images) is used with its own model (no W3C adapter): a selector
   {type: "RECTANGLE", geometry: {x, y, w, h, bounds}} or {type: "POLYGON", geometry:
   {points, bounds}}, in image pixels already. The Recogito text annotator gives
   selectors {quote, start, end} in UTF-16 code units of the container's text: the
   offsets are converted to code points here, so a text with emoji keeps Python's
   offsets.

   A classic script (no bundler): it defines window.LabelvaultShapes, and module.exports
   when loaded by Node. */
(function (root, factory) {
  "use strict";
  const api = factory();
  if (typeof module === "object" && module.exports) module.exports = api;
  else root.LabelvaultShapes = api;
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  // Schema type -> region type of its results (labeling.schema.REGION_TYPES).
  const REGION_TYPES = {
    bbox: "rectanglelabels",
    polygon: "polygonlabels",
    keypoint: "keypointlabels",
    image_class: "choices",
    text_class: "choices",
    ner: "labels",
  };
  // Region type -> the key of its label list inside `value`.
  const LABEL_KEYS = {
    rectanglelabels: "rectanglelabels",
    polygonlabels: "polygonlabels",
    keypointlabels: "keypointlabels",
    labels: "labels",
    choices: "choices",
  };
  // Pixel coordinates keep two decimals: finer than any screen, short in JSON.
  const round = (n) => Math.round(n * 100) / 100;
  const clamp = (n, lo, hi) => Math.min(Math.max(n, lo), hi);

  let serial = 0;
  function newId(prefix) {
    serial += 1;
    const rand = Math.random().toString(36).slice(2, 8);
    return `${prefix || "r"}${Date.now().toString(36)}${rand}${serial}`;
  }

  function regionLabel(region) {
    const key = LABEL_KEYS[region.type];
    const labels = (region.value && region.value[key]) || [];
    return labels.length ? labels[0] : null;
  }

  function withLabel(region, label) {
    const key = LABEL_KEYS[region.type];
    return { ...region, value: { ...region.value, [key]: label == null ? [] : [label] } };
  }

  function clone(value) {
    return JSON.parse(JSON.stringify(value));
  }

  // --- images: Annotorious ------------------------------------------------------------

  function boundsOf(points) {
    const xs = points.map((p) => p[0]);
    const ys = points.map((p) => p[1]);
    return {
      minX: Math.min(...xs),
      minY: Math.min(...ys),
      maxX: Math.max(...xs),
      maxY: Math.max(...ys),
    };
  }

  function tagBody(annotationId, label) {
    return label == null
      ? []
      : [{ id: `${annotationId}-label`, annotation: annotationId, purpose: "tagging", value: label }];
  }

  /** Our region (rectangle or polygon) -> an Annotorious annotation. */
  function toAnnotorious(region) {
    const label = regionLabel(region);
    let selector;
    if (region.type === "rectanglelabels") {
      const { x, y, width, height } = region.value;
      selector = {
        type: "RECTANGLE",
        geometry: {
          x, y, w: width, h: height,
          bounds: { minX: x, minY: y, maxX: x + width, maxY: y + height },
        },
      };
    } else if (region.type === "polygonlabels") {
      const points = region.value.points.map((p) => [p[0], p[1]]);
      selector = { type: "POLYGON", geometry: { points, bounds: boundsOf(points) } };
    } else {
      throw new Error(`not an Annotorious region type: ${region.type}`);
    }
    return {
      id: region.id,
      bodies: tagBody(region.id, label),
      target: { annotation: region.id, selector },
    };
  }

  /** The label an Annotorious annotation carries in its tagging body (or null). */
  function annotoriousLabel(annotation) {
    const body = (annotation.bodies || []).find((b) => b.purpose === "tagging");
    return body ? body.value : null;
  }

  /** The geometry part of our value for an Annotorious annotation, clamped to the image
      (a drag may end outside it). Returns null for an unknown or degenerate shape. */
  function annotoriousValue(annotation, size) {
    const selector = annotation.target && annotation.target.selector;
    if (!selector) return null;
    const W = size.width;
    const H = size.height;
    if (selector.type === "RECTANGLE") {
      const g = selector.geometry;
      // A rotated rectangle has no place in our schema: keep its bounding box.
      const b = g.rot ? g.bounds : { minX: g.x, minY: g.y, maxX: g.x + g.w, maxY: g.y + g.h };
      const x0 = clamp(Math.min(b.minX, b.maxX), 0, W);
      const y0 = clamp(Math.min(b.minY, b.maxY), 0, H);
      const x1 = clamp(Math.max(b.minX, b.maxX), 0, W);
      const y1 = clamp(Math.max(b.minY, b.maxY), 0, H);
      if (x1 - x0 <= 0 || y1 - y0 <= 0) return null;
      return {
        type: "rectanglelabels",
        value: { x: round(x0), y: round(y0), width: round(x1 - x0), height: round(y1 - y0) },
      };
    }
    if (selector.type === "POLYGON") {
      const points = selector.geometry.points.map((p) => [
        round(clamp(p[0], 0, W)),
        round(clamp(p[1], 0, H)),
      ]);
      if (points.length < 3) return null;
      return { type: "polygonlabels", value: { points } };
    }
    return null;
  }

  /** An Annotorious annotation -> our region, keeping `previous`'s label and attributes
      (or `label` and `attributes` for a new one). */
  function fromAnnotorious(annotation, size, previous, label, attributes) {
    const shape = annotoriousValue(annotation, size);
    if (!shape) return null;
    const key = LABEL_KEYS[shape.type];
    const keepLabel = previous ? regionLabel(previous) : label;
    const region = {
      id: annotation.id,
      type: shape.type,
      value: { ...shape.value, [key]: keepLabel == null ? [] : [keepLabel] },
    };
    const attrs = previous ? previous.attributes : attributes;
    if (attrs && Object.keys(attrs).length) region.attributes = clone(attrs);
    return region;
  }

  /** Do a region and an Annotorious annotation show the same shape and label? */
  function sameAsAnnotorious(region, annotation, size) {
    const shape = annotoriousValue(annotation, size);
    if (!shape || shape.type !== region.type) return false;
    if (annotoriousLabel(annotation) !== regionLabel(region)) return false;
    const a = shape.value;
    const b = region.value;
    if (shape.type === "rectanglelabels") {
      return a.x === b.x && a.y === b.y && a.width === b.width && a.height === b.height;
    }
    return JSON.stringify(a.points) === JSON.stringify(b.points.map((p) => [p[0], p[1]]));
  }

  // --- keypoints (our own SVG layer) ----------------------------------------------------

  function keypoint(id, x, y, size, label, attributes) {
    const region = {
      id,
      type: "keypointlabels",
      value: {
        x: round(clamp(x, 0, size.width)),
        y: round(clamp(y, 0, size.height)),
        keypointlabels: label == null ? [] : [label],
      },
    };
    if (attributes && Object.keys(attributes).length) region.attributes = clone(attributes);
    return region;
  }

  // --- text offsets: UTF-16 code units <-> code points ----------------------------------

  /** Offsets of one text: `toCodePoint(u16)` and `toUtf16(cp)`, identity when the text
      has no character outside the Basic Multilingual Plane. */
  function textOffsets(text) {
    if (!/[\uD800-\uDFFF]/.test(text)) {
      return { toCodePoint: (n) => n, toUtf16: (n) => n, length: text.length };
    }
    const cpAtU16 = new Array(text.length + 1);
    const u16AtCp = [];
    let cp = 0;
    for (let i = 0; i < text.length; ) {
      const code = text.codePointAt(i);
      const width = code > 0xffff ? 2 : 1;
      cpAtU16[i] = cp;
      if (width === 2) cpAtU16[i + 1] = cp + 1; // inside a pair: round up
      u16AtCp.push(i);
      i += width;
      cp += 1;
    }
    cpAtU16[text.length] = cp;
    u16AtCp.push(text.length);
    return {
      toCodePoint: (n) => cpAtU16[clamp(n, 0, text.length)],
      toUtf16: (n) => u16AtCp[clamp(n, 0, u16AtCp.length - 1)],
      length: cp,
    };
  }

  /** Slice of `text` between code point offsets. */
  function codePointSlice(text, offsets, start, end) {
    return text.slice(offsets.toUtf16(start), offsets.toUtf16(end));
  }

  // --- text: Recogito text annotator -------------------------------------------------

  /** Our span region -> a Recogito annotation (its range is revived from the offsets). */
  function toRecogito(region, offsets, text) {
    const start = offsets.toUtf16(region.value.start);
    const end = offsets.toUtf16(region.value.end);
    return {
      id: region.id,
      bodies: tagBody(region.id, regionLabel(region)),
      target: {
        annotation: region.id,
        selector: [{ quote: text.slice(start, end), start, end }],
      },
    };
  }

  function recogitoLabel(annotation) {
    return annotoriousLabel(annotation);
  }

  /** A Recogito annotation -> our span region (the first selector: a span is one
      stretch of text). Returns null for an empty span. */
  function fromRecogito(annotation, offsets, text, previous, label, attributes) {
    const selectors = (annotation.target && annotation.target.selector) || [];
    if (!selectors.length) return null;
    const u16Start = Math.min(...selectors.map((s) => s.start));
    const u16End = Math.max(...selectors.map((s) => s.end));
    const start = offsets.toCodePoint(u16Start);
    const end = offsets.toCodePoint(u16End);
    if (end <= start) return null;
    const keepLabel = previous ? regionLabel(previous) : label;
    const region = {
      id: annotation.id,
      type: "labels",
      value: {
        start,
        end,
        text: codePointSlice(text, offsets, start, end),
        labels: keepLabel == null ? [] : [keepLabel],
      },
    };
    const attrs = previous ? previous.attributes : attributes;
    if (attrs && Object.keys(attrs).length) region.attributes = clone(attrs);
    return region;
  }

  function sameAsRecogito(region, annotation, offsets) {
    const selectors = (annotation.target && annotation.target.selector) || [];
    if (selectors.length !== 1) return false;
    return (
      offsets.toCodePoint(selectors[0].start) === region.value.start &&
      offsets.toCodePoint(selectors[0].end) === region.value.end &&
      recogitoLabel(annotation) === regionLabel(region)
    );
  }

  // --- classification -------------------------------------------------------------------

  /** The chosen labels of a classification result. */
  function choicesOf(regions) {
    const region = regions.find((r) => r.type === "choices");
    return region ? [...region.value.choices] : [];
  }

  /** A classification result: one "choices" region, or none when nothing is chosen. */
  function choicesResult(choices, id) {
    return choices.length ? [{ id: id || "choices", type: "choices", value: { choices: [...choices] } }] : [];
  }

  // --- whole results ---------------------------------------------------------------------

  /** A result from the server (draft, prediction, earlier revision) made usable: only
      regions of the schema's type, each with an id, labels as lists. */
  function normaliseResult(result, schemaType) {
    const wanted = REGION_TYPES[schemaType];
    const seen = new Set();
    return (Array.isArray(result) ? result : [])
      .filter((r) => r && typeof r === "object" && r.type === wanted && r.value)
      .map((r) => {
        const region = clone(r);
        if (!region.id || seen.has(region.id)) region.id = newId();
        seen.add(region.id);
        const key = LABEL_KEYS[region.type];
        if (!Array.isArray(region.value[key])) region.value[key] = [];
        return region;
      });
  }

  /** One line describing a region's place, for the regions list. */
  function describe(region) {
    const v = region.value;
    switch (region.type) {
      case "rectanglelabels":
        return `${Math.round(v.width)}×${Math.round(v.height)} at ${Math.round(v.x)},${Math.round(v.y)}`;
      case "polygonlabels":
        return `${v.points.length} points`;
      case "keypointlabels":
        return `at ${Math.round(v.x)},${Math.round(v.y)}`;
      case "labels":
        return `“${(v.text || "").length > 40 ? v.text.slice(0, 39) + "…" : v.text || ""}”`;
      default:
        return "";
    }
  }

  return {
    REGION_TYPES,
    LABEL_KEYS,
    newId,
    clone,
    regionLabel,
    withLabel,
    toAnnotorious,
    fromAnnotorious,
    annotoriousLabel,
    sameAsAnnotorious,
    keypoint,
    textOffsets,
    codePointSlice,
    toRecogito,
    fromRecogito,
    recogitoLabel,
    sameAsRecogito,
    choicesOf,
    choicesResult,
    normaliseResult,
    describe,
  };
});
