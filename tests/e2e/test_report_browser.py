"""The HTML savings report in a real headless Chromium: nothing clipped, the one-day chart drawn.

Chromium (Debian's package; `make system-deps` installs it) loads the page with a small script
that measures every chart label against its SVG and every table cell and KPI against its card,
then dumps the DOM with the findings. A deliberately clipped control proves the measure works.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

from extproc.accounting import UsageRecord, cost_usd
from extproc.config import Price
from extproc.report import build_report, render_html

PRICES = {"gpt-4o": Price(2.5, 10.0), "gpt-4o-mini": Price(0.15, 0.6), "llama-3.1-8b-instruct": Price(0.05, 0.1),
          "text-embedding-3-small": Price(0.02, 0.0)}
CLASSES = ["simple_queries", "complex_reasoning_and_analysis", "code_generation"]

MEASURE = """<script>
window.addEventListener("load", () => {
  const out = [];
  for (const svg of document.querySelectorAll("svg")) {
    const box = svg.getBoundingClientRect();
    for (const t of svg.querySelectorAll("text")) {
      const r = t.getBoundingClientRect();
      if (r.left < box.left - 0.5 || r.right > box.right + 0.5) out.push("label outside its chart: " + t.textContent);
    }
  }
  for (const card of document.querySelectorAll(".card, .kpi")) {
    const box = card.getBoundingClientRect();
    for (const el of card.querySelectorAll("td, th, .v, .l, h2")) {
      const r = el.getBoundingClientRect();
      if (r.right > box.right + 0.5 || el.scrollWidth > el.clientWidth + 1) out.push("overflow: " + el.textContent);
    }
  }
  const chart = document.querySelector('svg[aria-label="cost over time"]');
  document.body.setAttribute("data-points", chart.querySelectorAll("circle").length);
  document.body.setAttribute("data-clipped", JSON.stringify(out));
});
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed: run `make system-deps` (Debian package chromium)"
    return found


def measure(page: str, tmp_path) -> tuple[list[str], int]:
    path = tmp_path / "page.html"
    path.write_text(page.replace("</body>", MEASURE + "</body>"))
    dom = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1000,1400",
                          "--virtual-time-budget=3000", "--dump-dom", path.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    clipped = re.search(r'data-clipped="([^"]*)"', dom)
    points = re.search(r'data-points="(\d+)"', dom)
    assert clipped and points, dom[-2000:]
    return json.loads(clipped.group(1).replace("&quot;", '"')), int(points.group(1))


def one_day(now: float) -> list[UsageRecord]:
    records = []
    for i in range(300):
        model = ["gpt-4o-mini", "llama-3.1-8b-instruct", "gpt-4o"][i % 3]
        usage = UsageRecord(0, "", model, "p", input_tokens=500, output_tokens=300)
        records.append(UsageRecord(time=now - 6 * 3600 + i * 60, request_id=f"r{i}", model=model, provider="openai",
                                   request_class=CLASSES[i % 3], surface="support", tenant="helpdesk",
                                   input_tokens=500, output_tokens=300, cost_usd=cost_usd(usage, PRICES[model]),
                                   latency_ms=100.0 + i))
    records += [UsageRecord(time=now - 3 * 3600 + i * 30, request_id=f"e{i}", model="text-embedding-3-small",
                            provider="openai", input_tokens=2000, cost_usd=0.00004, endpoint="embeddings")
                for i in range(50)]
    return records


def test_the_html_report_shows_every_label_whole_and_a_one_day_chart(tmp_path):
    now = time.time()
    report = build_report(one_day(now), PRICES, "gpt-4o", since=now - 30 * 86400, until=now)
    page = render_html(report)
    clipped, points = measure(page, tmp_path)
    assert clipped == []
    assert points == 2 * len(report.timeline) and points >= 2     # both series drawn, one marker per hour
    assert report.by_endpoint["embeddings"].savings == 0.0
    # The screenshot, for a person to look at (kept with the test's files).
    shot = tmp_path / "report.png"
    (tmp_path / "report.html").write_text(page)
    subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1000,1400", f"--screenshot={shot}", (tmp_path / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000


def test_the_measure_sees_a_clipped_label(tmp_path):
    page = render_html(build_report(one_day(time.time()), PRICES, "gpt-4o"))
    # A label column 40 px wide, as the report had before: the class names stick out of the chart.
    broken = re.sub(r'(aria-label="savings by class".*?)<text x="[\d.]+"', r'\1<text x="40"', page, count=1,
                    flags=re.S)
    clipped, _ = measure(broken, tmp_path)
    assert any("label outside its chart" in c for c in clipped), clipped


def test_the_prompt_cache_table_and_the_shadow_row_fit_their_cards(tmp_path):
    """The report's cache-read KPIs and its "prompt cache by model" table (a model without a cached price
    included), and the shadow evaluation's own row, whole in the page like every other table."""
    import dataclasses
    now = time.time()
    prices = {**PRICES, "gpt-4o": Price(2.5, 10.0, cached_input=1.25),
              "gpt-4o-mini": Price(0.15, 0.6, cached_input=0.075)}
    records = [dataclasses.replace(r, cached_input_tokens=384, tenant="gateway" if i % 10 == 0 else r.tenant)
               for i, r in enumerate(one_day(now))]
    report = build_report(records, prices, "gpt-4o", since=now - 86400, until=now, overhead_tenants=("gateway",))
    page = render_html(report)
    assert "Prompt cache reads by model" in page and "(no cached price)" in page and "(shadow evaluation)" in page
    clipped, _ = measure(page, tmp_path)
    assert clipped == []
