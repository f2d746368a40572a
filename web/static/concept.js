// The concept page: typeset the lesson's math, turn the text box into a Python editor, and
// keep what the learner types in the browser until it is submitted.
document.addEventListener("DOMContentLoaded", () => {
  if (window.katex) {
    document.querySelectorAll(".math").forEach((el) => {
      try {
        window.katex.render(el.textContent, el, { displayMode: el.classList.contains("block"), throwOnError: false });
      } catch (e) { /* leave the TeX as text */ }
    });
  }
  const area = document.getElementById("editor");
  if (!area) return;
  const form = document.getElementById("submit-form");
  const key = "draft:" + location.pathname;
  try {  // what was typed here before and not submitted
    const draft = localStorage.getItem(key);
    if (draft !== null && !document.getElementById("submit-error")) area.value = draft;
  } catch (e) { /* private mode */ }
  let editor = null;
  if (window.CodeMirror) {
    editor = window.CodeMirror.fromTextArea(area, {
      mode: "python", lineNumbers: true, indentUnit: 4, tabSize: 4, indentWithTabs: false,
      extraKeys: { Tab: (cm) => cm.execCommand(cm.somethingSelected() ? "indentMore" : "insertSoftTab") },
    });
    editor.on("change", () => { try { localStorage.setItem(key, editor.getValue()); } catch (e) { /* private mode */ } });
    window.graderEditor = editor;
  }
  document.getElementById("reset").addEventListener("click", () => {
    if (!confirm("Replace your code with the skeleton?")) return;
    const skeleton = area.dataset.skeleton;
    if (editor) editor.setValue(skeleton); else area.value = skeleton;
  });
  form.addEventListener("submit", () => {
    if (editor) editor.save();
    try { localStorage.removeItem(key); } catch (e) { /* ignore */ }
  });
});
