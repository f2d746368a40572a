// A package's page: while a worker validates it, check its state and reload when it changes.
document.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("package-state");
  if (!el || !["queued", "validating"].includes(el.dataset.state)) return;
  const poll = async () => {
    try {
      const response = await fetch(`/instructor/packages/${el.dataset.package}/state`, { credentials: "same-origin" });
      if (response.ok) {
        const data = await response.json();
        if (data.state !== el.dataset.state) { location.reload(); return; }
      }
    } catch (e) { /* try again */ }
    setTimeout(poll, 1500);
  };
  setTimeout(poll, 1500);
});
