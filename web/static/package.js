// A package's page: while a worker validates it, follow the validation live over server-sent
// events ("checking wrong/loop (5 of 14)", and each check as it ends), then reload on the result.
document.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("package-state");
  if (!el || !["queued", "validating"].includes(el.dataset.state)) return;
  const text = document.getElementById("package-progress");
  const bar = document.getElementById("package-progress-bar");
  const log = document.getElementById("package-log");
  const show = (p) => {
    if (!p || !p.message) return;
    text.textContent = p.message;
    bar.max = p.total || 1;
    bar.value = Math.max((p.current || 1) - 1, 0);  // checks done before this one
  };
  const note = (p) => {
    const item = document.createElement("li");
    item.textContent = `${p.subject}: ${p.ok ? "ok" : "wrong"} (got ${p.got})`;
    item.className = p.ok ? "passed" : "failed";
    log.appendChild(item);
    bar.value = p.current || bar.value;
  };
  if (!window.EventSource) {  // no streams: check the state now and then
    const poll = async () => {
      try {
        const response = await fetch(`/instructor/packages/${el.dataset.package}/state`, { credentials: "same-origin" });
        if (response.ok) {
          const data = await response.json();
          if (data.state !== el.dataset.state) { location.reload(); return; }
          show(data.progress);
        }
      } catch (e) { /* try again */ }
      setTimeout(poll, 1500);
    };
    setTimeout(poll, 1500);
    return;
  }
  const source = new EventSource(`/instructor/packages/${el.dataset.package}/events`);
  source.addEventListener("state", (e) => {
    const s = JSON.parse(e.data);
    if (s.state === "validating" && !s.progress && el.dataset.state === "queued") text.textContent = "Validating…";
    show(s.progress);
  });
  source.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    if (p.kind === "running") text.textContent = "Validating…";
    else if (p.kind === "check" && p.ok == null) show(p);
    else if (p.kind === "check") note(p);
    else if (p.kind === "stage") show(p);  // calibrating the speed checks
  });
  source.addEventListener("done", () => {
    source.close();
    text.textContent = "Done: loading the report…";
    location.reload();
  });
});
