/* The project form's schema editor: "Start from an example" fills the JSON textarea
   (asking first when it holds something else); htmx validates and previews it
   (labeling/templates/labeling/project_form.html). */
(function () {
  "use strict";
  const select = document.getElementById("schema-example");
  const textarea = document.getElementById("id_label_schema");
  const data = document.getElementById("schema-examples");
  if (!select || !textarea || !data) return;
  const examples = JSON.parse(data.textContent);
  const isExample = (text) => Object.values(examples).some((e) => e.trim() === text.trim());

  select.addEventListener("change", () => {
    const example = examples[select.value];
    if (!example) return;
    const current = textarea.value;
    if (current.trim() && !isExample(current) && !window.confirm("Replace the schema you wrote with this example?")) {
      select.value = "";
      return;
    }
    textarea.value = example;
    textarea.dispatchEvent(new Event("input", { bubbles: true }));
    select.value = "";
    textarea.focus();
  });
})();
