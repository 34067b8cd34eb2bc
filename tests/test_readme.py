"""README.md names only files of the repository, and every one it names exists."""
import re

#: Top-level folders of the repository: a word of the README starting with one is a path in it.
REPO_FOLDERS = ('benchmarks/', 'configs/', 'docs/', 'medtrans/', 'projects/', 'requirements/',
                'tests/', 'tools/')


def _paths(readme: str):
    """Markdown link targets, and the repository paths in code spans and code blocks."""
    targets = re.findall(r'\]\(([^)\s]+)\)', readme)
    code = re.findall(r'```.*?```', readme, flags=re.S) + re.findall(r'`([^`\n]+)`', readme)
    words = (word.strip('.,;:()[]"\'') for text in code for word in text.split())
    # Placeholders (<config name>, {val,test}, ...) are not files.
    paths = [w for w in words if w.startswith(REPO_FOLDERS) and not re.search(r'[<>{}*]|\.\.\.', w)]
    return targets, paths


def test_readme_links_resolve_inside_the_repository(repo_root):
    readme = (repo_root / 'README.md').read_text(encoding='utf-8')
    # A clone holds only the repository: nothing above it (../shared/...) nor absolute paths.
    assert '../' not in readme
    targets, paths = _paths(readme)
    local = [t for t in targets if not re.match(r'[a-z]+://|#|mailto:', t)]
    assert [t for t in local if not (repo_root / t.split('#')[0]).exists()] == []
    assert len(paths) > 50  # the check reads what it should
    assert sorted({p for p in paths if not (repo_root / p).exists()}) == []


def test_the_check_catches_a_missing_file():
    targets, paths = _paths('see `docs/nope.md` and [x](docs/paper.md); '
                            '```\npython tools/infer.py CONFIG\n``` `work_dirs/<name>/`')
    assert targets == ['docs/paper.md'] and paths == ['tools/infer.py', 'docs/nope.md']
