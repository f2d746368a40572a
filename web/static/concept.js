// The concept page: typeset the lesson's math, turn the text box into a Python editor, keep what
// the learner types as a draft in the browser, and refuse code over the size limit before sending.
//
// The draft is {source, after}: the code, and the newest submission it was typed after (the page's
// data-latest, "" for none). It stays until something newer replaces it. While no newer submission
// exists (after a refusal, a reload, a closed tab) the page puts it back in the editor; once one
// exists (it was submitted from here, or from elsewhere) it is dropped, and the editor starts from
// that submission, which the server puts in it. Submitting saves it first, so code that is refused
// comes back.
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
  const latest = area.dataset.latest || "";
  const key = "draft:" + location.pathname;

  const readDraft = () => {
    let raw = null;
    try { raw = localStorage.getItem(key); } catch (e) { return null; }  // storage off
    if (raw === null) return null;
    try {
      const draft = JSON.parse(raw);
      if (draft && typeof draft.source === "string") return { source: draft.source, after: String(draft.after ?? "") };
    } catch (e) { /* a draft kept as plain text: typed since the last submission */ }
    return { source: raw, after: latest };
  };
  const draft = readDraft();
  if (draft !== null) {
    if (draft.after === latest) {
      area.value = draft.source;
    } else {
      try { localStorage.removeItem(key); } catch (e) { /* storage off */ }
    }
  }

  let editor = null;
  if (window.CodeMirror) {
    editor = window.CodeMirror.fromTextArea(area, {
      mode: "python", lineNumbers: true, lineWrapping: true, indentUnit: 4, tabSize: 4, indentWithTabs: false,
      extraKeys: { Tab: (cm) => cm.execCommand(cm.somethingSelected() ? "indentMore" : "insertSoftTab") },
    });
    // a wrapped line goes on under its own indentation, two columns further in
    const charWidth = editor.defaultCharWidth();
    editor.on("renderLine", (cm, line, elt) => {
      const indent = (2 + window.CodeMirror.countColumn(line.text, null, cm.getOption("tabSize"))) * charWidth;
      elt.style.textIndent = "-" + indent + "px";
      elt.style.paddingLeft = 4 + indent + "px";
    });
    editor.refresh();
    window.graderEditor = editor;
  }
  const code = () => (editor ? editor.getValue() : area.value);

  let timer = null;  // a save waiting for typing to pause
  let unsaved = false;  // the last save failed (storage full or off): leaving the page would lose the code
  let sending = false;
  const save = () => {
    clearTimeout(timer);
    timer = null;
    try {
      localStorage.setItem(key, JSON.stringify({ source: code(), after: latest }));
      unsaved = false;
    } catch (e) {
      unsaved = true;
    }
  };
  const saveSoon = () => { clearTimeout(timer); timer = setTimeout(save, 300); };
  if (editor) editor.on("change", saveSoon); else area.addEventListener("input", saveSoon);
  window.addEventListener("pagehide", () => { if (timer !== null) save(); });
  window.addEventListener("beforeunload", (event) => {
    if (timer !== null) save();
    if (unsaved && !sending) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
  // a page kept whole by the browser and shown again by Back: ask for it again, for the history
  // and the editor as they are now
  window.addEventListener("pageshow", (event) => { if (event.persisted) location.reload(); });

  document.getElementById("reset").addEventListener("click", () => {
    if (!confirm("Replace your code with the skeleton?")) return;
    const skeleton = area.dataset.skeleton;
    if (editor) editor.setValue(skeleton); else { area.value = skeleton; saveSoon(); }
  });

  // the sizes as the server writes them (rounded up), and its refusal with the name and size
  const humanSize = (n) => {
    if (n < 1024) return n + " bytes";
    const [unit, name] = n < 1024 * 1024 ? [1024, "KB"] : [1024 * 1024, "MB"];
    return String(Math.ceil((n * 10) / unit) / 10) + " " + name;
  };
  const refusal = (template, name, size) =>
    template.replace(/\{(name|size)\}/g, (whole, field) => (field === "name" ? name : humanSize(size)));
  const tooLarge = () => {
    const upload = document.getElementById("upload");
    const file = upload && upload.files && upload.files[0];
    if (file) {  // the server grades the file when there is one
      const notebook = file.name.toLowerCase().endsWith(".ipynb");
      const limit = Number(notebook ? form.dataset.notebookLimit : form.dataset.sourceLimit);
      const template = notebook ? form.dataset.tooLargeNotebook : form.dataset.tooLargeModule;
      return file.size > limit ? refusal(template, file.name, file.size) : null;
    }
    const size = new TextEncoder().encode(code()).length;
    return size > Number(form.dataset.sourceLimit) ? refusal(form.dataset.tooLargeModule, form.dataset.module, size) : null;
  };
  const showError = (message) => {
    let box = document.getElementById("submit-error");
    if (!box) {
      box = document.createElement("p");
      box.className = "flash error";
      box.setAttribute("role", "alert");
      box.id = "submit-error";
      form.before(box);
    }
    box.textContent = message;
    box.scrollIntoView({ block: "nearest" });
  };

  form.addEventListener("submit", (event) => {
    if (editor) editor.save();
    save();  // kept until a newer submission replaces it: a refused one comes back
    const problem = tooLarge();
    if (problem) {
      event.preventDefault();
      showError(problem);
      return;
    }
    sending = true;
  });
});
