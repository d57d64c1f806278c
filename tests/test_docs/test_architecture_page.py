"""The code-layout page is true: the files of one lr's walk exist, there
are at most eight, their line counts are near what the page says; the
pipeline imports exactly the steps the page lists; and the package's
imports form a stack: no cycle anywhere, and the core imports nothing of
the glue."""
import ast
import os
import re

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
PACKAGE = os.path.join(ROOT, 'internvl_optim')
PAGE = open(os.path.join(ROOT, 'docs', 'en', 'architecture.md'),
            encoding='utf-8').read()


def section(title: str) -> str:
    start = PAGE.index(title)
    end = PAGE.find('\n#', start + len(title))
    return PAGE[start:end if end > 0 else None]


def table_rows(text: str):
    """The cells of each body row of the first table in ``text``."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith('|'))
    rows = []
    for line in lines[first:]:
        if not line.startswith('|'):
            break
        rows.append(line)
    return [[c.strip() for c in row.strip('|').split('|')]
            for row in rows[2:]]


def lines_of(path: str) -> int:
    with open(os.path.join(PACKAGE, path), encoding='utf-8') as f:
        return sum(1 for _ in f)


def test_the_walk_is_at_most_eight_files_that_exist():
    rows = table_rows(section("## One parameter's lr, file by file"))
    files = [re.fullmatch(r'`([^`]+)`', row[1]).group(1) for row in rows]
    assert 1 <= len(files) <= 8, files
    assert [int(row[0]) for row in rows] == list(range(1, len(rows) + 1))
    for path, row in zip(files, rows):
        assert os.path.isfile(os.path.join(PACKAGE, path)), path
        stated, actual = int(row[3]), lines_of(path)
        assert abs(stated - actual) <= 0.15 * actual, (
            f'{path}: the page says {stated} lines, it has {actual}')
    total = re.search(r'(\w+) files, ([\d,]+) lines',
                      section("## One parameter's lr, file by file"))
    assert int(total.group(2).replace(',', '')) == sum(
        int(row[3]) for row in rows)


def _imports(path: str, module: str):
    """Modules of the package that ``path`` (module ``module``) imports,
    anywhere in the file except under ``if TYPE_CHECKING``."""
    tree = ast.parse(open(path, encoding='utf-8').read())
    package = module if path.endswith('__init__.py') else \
        module.rsplit('.', 1)[0]
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and 'TYPE_CHECKING' in ast.unparse(
                node.test):
            skip.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names
                         if a.name.startswith('internvl_optim'))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit('.', node.level - 1)[0] \
                    if node.level > 1 else package
                target = f'{base}.{node.module}' if node.module else base
            elif (node.module or '').startswith('internvl_optim'):
                target = node.module
            else:
                continue
            for alias in node.names:
                sub = f'{target}.{alias.name}'
                found.add(sub if sub in MODULES else target)
    return {m for m in found if m in MODULES and m != module}


def _modules():
    out = {}
    for folder, _, names in os.walk(PACKAGE):
        for name in names:
            if not name.endswith('.py'):
                continue
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
            out[rel[:-len('.__init__')] if rel.endswith('__init__')
                else rel] = path
    return out


MODULES = _modules()
GRAPH = {m: _imports(p, m) for m, p in MODULES.items()}


def test_the_pipeline_imports_exactly_the_steps_the_page_lists():
    rows = table_rows(section("### The pipeline's steps"))
    listed = {'internvl_optim.' + re.fullmatch(r'`([^`]+)`', row[1]).group(1)
              .rstrip('/').replace('.py', '').replace('/', '.')
              for row in rows}
    assert GRAPH['internvl_optim.core.pipeline'] == listed


def test_no_import_cycle_in_the_package():
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = 'open'
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 'open':
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 'done'

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)
    assert cycles == []


def test_the_core_imports_nothing_of_the_glue():
    glue = ('engine', 'runtime', 'guards', 'checkpoint', 'analysis',
            'trainers', 'multimodal', 'models', 'datasets', 'torch_api')
    wrong = {(m, i) for m, deps in GRAPH.items()
             if m.startswith('internvl_optim.core')
             for i in deps if i.split('.')[1] in glue}
    assert wrong == set()


def test_the_schema_imports_no_rule():
    below = GRAPH['internvl_optim.core.settings']
    assert not any('layer_rules' in m or m.endswith('model_view')
                   for m in below), below
