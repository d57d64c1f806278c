"""The docs site as a reader sees it: built with Sphinx, every Markdown
table renders as a table (a table split by a blank line shows its later
rows as raw ``| ... |`` text)."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
pytest.importorskip('myst_parser')

#: a paragraph that starts and ends with a pipe: a table row left as text
STRAY_ROW = re.compile(r'<p>\s*\|[^<]*\|\s*</p>', re.S)


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('site')
    result = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-q', '-b', 'html',
         os.path.join(ROOT, 'docs', 'en'), str(out)],
        capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def pages(site):
    return {name: open(os.path.join(site, name), encoding='utf-8').read()
            for name in os.listdir(site) if name.endswith('.html')}


def test_no_page_shows_a_table_row_as_text(site):
    found = {name: STRAY_ROW.findall(html)[:1]
             for name, html in pages(site).items() if STRAY_ROW.search(html)}
    assert found == {}


def test_the_compatibility_table_has_a_row_per_preset(site):
    html = pages(site)['compatibility.html']
    table = html[html.index('<table'):]
    table = table[:table.index('</table>')]
    rows = re.findall(r'<tr[^>]*>', table)
    presets = re.findall(r"<td><p><code class=\"docutils literal notranslate\">"
                         r"<span class=\"pre\">'(\w+)'</span>", table)
    assert presets == ['mmseg', 'internvl_segmentation',
                       'internimage_segmentation', 'internimage_detection',
                       'internimage_classification']
    assert len(rows) == 1 + len(presets)  # the header and one per preset


def test_the_key_reference_lists_every_key(site):
    from internvl_optim.core.settings import SCHEMA
    html = pages(site)['paramwise_cfg.html']
    for key in SCHEMA:
        assert f'<span class="pre">{key.name}</span>' in html, key.name
