/* Load before the vendor UMD builds. @recogito/text-annotator 4.1's UMD build still reads
   `process.env.NODE_ENV` (from nanostores, which expects a bundler to replace it), so
   without a `process` global it throws on load. */
window.process = window.process || { env: { NODE_ENV: "production" } };
