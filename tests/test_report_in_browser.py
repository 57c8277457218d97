"""The report as a reader sees it: pages opened in a real headless browser (Debian's `chromium`, tests/headless_chromium.py),
which says whether every image loaded.

`snakemake --report` shows each HTML result from a `data:` URL (the zip report from a file deep in its data/ folder),
where no path relative to the page resolves; a report page must carry its figures inside it. The fast tests check
one page built the way the report rule builds it; the slow one opens `snakemake --report`'s HTML and zip reports of
the finished demo and shows every result as its button would.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from headless_chromium import IMAGES_JS, Chromium, check_report, chromium_binary
from pipeline_helpers import snakemake

needs_chromium = pytest.mark.skipif(chromium_binary() is None,
                                    reason="no chromium (apt-get install -y chromium; .ci/run installs it)")


def tiny_png(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1), dpi=20)
    ax.plot([0, 1], [0, 1])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def test_a_page_refuses_to_refer_to_a_figure_that_is_not_there(tmp_path: Path) -> None:
    from mileage.report.html import HtmlPageError, html_page

    with pytest.raises(HtmlPageError, match=r"figures/reward\.png"):
        html_page("![reward](figures/reward.png)", tmp_path, "demo")


def test_a_page_embeds_its_figures_and_linked_files(tmp_path: Path) -> None:
    from mileage.report.html import html_page

    tiny_png(tmp_path / "figures" / "reward.png")
    (tmp_path / "figures" / "reward.pdf").write_bytes(b"%PDF-1.4 stand-in")
    page = html_page("![reward](figures/reward.png) ([pdf](figures/reward.pdf)) [web](https://example.org)",
                     tmp_path, "demo")
    assert 'src="data:image/png;base64,' in page and 'href="data:application/pdf;base64,' in page
    assert 'download="reward.pdf"' in page and 'href="https://example.org"' in page
    assert "figures/" not in page


@needs_chromium
def test_a_report_page_shows_its_figures_where_no_relative_path_resolves(tmp_path: Path) -> None:
    from mileage.report.html import html_page

    tiny_png(tmp_path / "built" / "figures" / "reward.png")
    text = "# demo\n\n![reward](figures/reward.png)\n"
    shown = tmp_path / "shown"  # the page alone, as the report shows it: nothing beside it
    shown.mkdir()
    (shown / "report.html").write_text(html_page(text, tmp_path / "built", "demo"), encoding="utf-8")
    # What the pages were before: the figure by a relative path, which breaks there (the check can fail).
    (shown / "relative.html").write_text(f"<html><body>{text.replace('![reward](figures/reward.png)', '')}"
                                         '<img src="figures/reward.png"></body></html>', encoding="utf-8")
    with Chromium() as browser:
        browser.open((shown / "report.html").as_uri())
        images = browser.evaluate(IMAGES_JS)
        assert len(images) == 1 and images[0]["loaded"], images
        browser.open((shown / "relative.html").as_uri())
        assert [image["loaded"] for image in browser.evaluate(IMAGES_JS)] == [False]


@pytest.mark.slow
@needs_chromium
def test_every_image_of_every_page_of_snakemake_report_loads(demo_copy: Path) -> None:
    """The HTML and the zip report of the finished demo: the landing page says what the workflow is and names the
    experiment; every figure and every report page shows all its images."""
    snakemake(demo_copy, "--report", "report.html")
    snakemake(demo_copy, "--report", "report.zip")
    with zipfile.ZipFile(demo_copy / "report.zip") as archive:
        archive.extractall(demo_copy / "unzipped")
    zipped = next((demo_copy / "unzipped").glob("*/report.html"))
    for report in (demo_copy / "report.html", zipped):
        pages = check_report(report)
        text = pages.pop("landing page text")[0]["text"]
        assert "reinforcement learning of language models with miles" in text and "demo" in text, text[:500]
        broken = {page: [i["src"] for i in images if not i["loaded"]] for page, images in pages.items()}
        assert not any(broken.values()), (report, {p: b for p, b in broken.items() if b})
        reports = [page for page in pages if page.endswith("report/report.html")]
        assert reports and all(len(pages[page]) >= 5 for page in reports), {p: len(pages[p]) for p in reports}
        assert any(page.startswith("results/compare/") for page in pages)
