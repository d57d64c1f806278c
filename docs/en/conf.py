"""Sphinx configuration: MyST Markdown pages, API pages from docstrings, and
the ``paramwise_cfg`` key table generated from the code that defines the
keys (``internvl_optim.core.settings.SCHEMA``), so it cannot drift."""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
sys.path.insert(0, ROOT)

project = 'internvl_optim'
author = 'internvl_optim contributors'
extensions = ['myst_parser', 'sphinx.ext.autodoc', 'sphinx.ext.napoleon',
              'sphinx.ext.viewcode']
source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
master_doc = 'index'
exclude_patterns = ['_build']
html_theme = 'alabaster'
myst_heading_anchors = 3
autodoc_member_order = 'bysource'
autodoc_typehints = 'none'
napoleon_google_docstring = True
suppress_warnings = ['myst.xref_missing', 'myst.header']
nitpicky = False


def write_key_table(app):
    """``_generated/paramwise_cfg_keys.md`` from the settings module."""
    from internvl_optim.core.settings import SCHEMA
    out = os.path.join(app.srcdir, '_generated')
    os.makedirs(out, exist_ok=True)
    lines = ['| key | what it does, and its default | with `reproduce` |',
             '|---|---|---|']
    for key in SCHEMA:
        origin = ' (MMEngine)' if key.mmengine else ''
        presets = ', '.join(f'`{p}`' for p in key.presets
                            if key.name != 'reproduce')
        lines.append(f'| `{key.name}`{origin} | {key.doc} | {presets} |')
    with open(os.path.join(out, 'paramwise_cfg_keys.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')


def setup(app):
    app.connect('builder-inited', write_key_table)
