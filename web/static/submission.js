// The submission page: follow grading live over server-sent events, then show the verdict;
// draw the performance chart once graded.
document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live && live.dataset.state !== "system_error") follow(live);
  const data = document.getElementById("perf-data");
  if (data && window.Chart) chart(JSON.parse(data.textContent));
});

function follow(live) {
  const id = live.dataset.submission;
  const text = document.getElementById("live-text");
  const bar = document.getElementById("live-progress");
  const log = document.getElementById("live-log");
  const source = new EventSource(`/submissions/${id}/events`);
  const note = (message) => {
    if (!message || (log.lastChild && log.lastChild.textContent === message)) return;
    const item = document.createElement("li");
    item.textContent = message;
    log.appendChild(item);
  };
  source.addEventListener("state", (e) => {
    const s = JSON.parse(e.data);
    if (s.state === "queued") {
      text.textContent = s.position == null ? "Queued" : (s.position === 0 ? "Queued: you are next" : `Queued: ${s.position} ahead of you`);
    } else if (s.state === "running") {
      text.textContent = "Grading…";
    }
  });
  source.addEventListener("progress", (e) => {
    const p = JSON.parse(e.data);
    if (p.kind === "queued") {
      text.textContent = p.position ? `Queued: ${p.position} ahead of you` : "Queued: you are next";
    } else if (p.kind === "running") {
      text.textContent = "Grading…";
      note(p.attempt > 1 ? `Started again (attempt ${p.attempt})` : "Started");
    } else if (p.kind === "test") {
      text.textContent = `Running test ${p.current} of ${p.total}`;
      bar.max = p.total || 1;
      bar.value = p.current || 0;
    } else if (p.message) {
      text.textContent = p.message;
      note(p.message);
    }
  });
  source.addEventListener("done", () => {
    source.close();
    text.textContent = "Done: loading the results…";
    location.reload();
  });
}

function chart(rows) {
  const canvas = document.getElementById("perf-chart");
  if (!canvas || !rows.length) return;
  const ratios = rows.filter((r) => r.kind === "ratio");
  if (!ratios.length) return;
  new window.Chart(canvas, {
    type: "bar",
    data: {
      labels: ratios.map((r) => `${r.name} (${r.metric})`),
      datasets: [
        { label: "Yours (× reference)", data: ratios.map((r) => r.ratio),
          backgroundColor: ratios.map((r) => (r.passed ? "#3fa56a" : "#d9822b")) },
        { label: "Threshold", data: ratios.map((r) => r.threshold), backgroundColor: "#c3c9d4" },
        { label: "Reference", data: ratios.map(() => 1), backgroundColor: "#8da2fb" },
      ],
    },
    options: {
      animation: false, indexAxis: "y", responsive: true,
      scales: { x: { beginAtZero: true, title: { display: true, text: "× the reference (lower is better)" } } },
      plugins: { tooltip: { callbacks: { afterLabel: (ctx) => {
        const r = ratios[ctx.dataIndex];
        return ctx.datasetIndex === 0 ? `yours ${r.yours.toPrecision(3)} ${r.unit}, reference ${r.reference.toPrecision(3)} ${r.unit}` : "";
      } } } },
    },
  });
}
