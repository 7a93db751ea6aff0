"""The docs stay true to the code: every test that doc/SEMANTICS.md, doc/NAMES.md and
doc/SHARED-CACHE.md name as the proof of a promise exists, and doc/ARCHITECTURE.md and
Package.swift's header name every module. No mount is needed; these read files only."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROMISE_DOCS = ["doc/SEMANTICS.md", "doc/NAMES.md", "doc/SHARED-CACHE.md"]


def swift_tests(root=ROOT):
    """{suite: set of its functions}, from every Swift file under Tests/ (an extension counts)."""
    suites = {}
    for path in (root / "Tests").rglob("*.swift"):
        text = path.read_text(errors="replace")
        declared = re.findall(r"\b(?:struct|class|enum|extension)\s+(\w+)", text)
        functions = set(re.findall(r"\bfunc\s+(\w+)", text))
        for suite in declared:
            suites.setdefault(suite, set()).update(functions)
    return suites


def python_tests(root=ROOT):
    """{file name: set of its test functions}, for Tests/e2e and the bench's own tests."""
    found = {}
    for path in list((root / "Tests").rglob("test_*.py")) + list((root / "bench").rglob("test_*.py")):
        found.setdefault(path.name, set()).update(re.findall(r"^\s*def\s+(test_\w+)", path.read_text(), re.M))
    return found


def missing_references(text, swift, python):
    """The test names in `text` (in backquotes) that name no test."""
    every_python_test = set().union(*python.values()) if python else set()
    # Each form a doc names a test by, and whether a name of that form exists.
    forms = [
        (r"(?:e2e\s+)?(test_\w+\.py)::(test_\w+)", lambda m: m[2] in python.get(m[1], set())),
        (r"test_\w+\.py", lambda m: m[0] in python),
        (r"test_\w+", lambda m: m[0] in every_python_test),
        (r"([A-Z]\w*Tests)\.(\w+)", lambda m: m[2] in swift.get(m[1], set())),
        (r"[A-Z]\w*Tests", lambda m: m[0] in swift),
    ]
    missing = []
    for reference in re.findall(r"`([^`\n]+)`", text):
        for pattern, exists in forms:
            if match := re.fullmatch(pattern, reference.strip()):
                if not exists(match):
                    missing.append(reference.strip())
                break
    return missing


@pytest.mark.parametrize("doc", PROMISE_DOCS)
def test_every_test_a_promise_names_exists(doc):
    text = (ROOT / doc).read_text()
    swift, python = swift_tests(), python_tests()
    references = re.findall(r"`(?:e2e\s+)?(?:test_\w+(?:\.py)?(?:::test_\w+)?|[A-Z]\w*Tests(?:\.\w+)?)`", text)
    assert len(references) >= 10, f"{doc} names only {len(references)} tests: the check would prove little"
    assert missing_references(text, swift, python) == [], f"{doc} names tests that do not exist"


def test_every_test_any_doc_names_exists():
    """The other docs name fewer tests, but those they name must exist too."""
    swift, python = swift_tests(), python_tests()
    docs = [ROOT / "README.md"] + sorted((ROOT / "doc").glob("*.md"))
    missing = {doc.name: found for doc in docs if (found := missing_references(doc.read_text(), swift, python))}
    assert missing == {}, f"docs name tests that do not exist: {missing}"


def test_the_check_finds_a_missing_test():
    swift = {"ReadPathTests": {"readsWork"}}
    python = {"test_s3_mount.py": {"test_ls"}}
    text = (
        "`ReadPathTests.readsWork`, `ReadPathTests.gone`, `NoSuchTests`, `test_ls`, `test_gone`, "
        "`test_s3_mount.py::test_ls`, `test_s3_mount.py::test_gone`, `test_nowhere.py`, `ReadPathTests`"
    )
    assert missing_references(text, swift, python) == [
        "ReadPathTests.gone",
        "NoSuchTests",
        "test_gone",
        "test_s3_mount.py::test_gone",
        "test_nowhere.py",
    ]


def modules():
    return sorted(p.name for p in (ROOT / "Sources").iterdir() if p.is_dir())


def test_the_architecture_map_names_every_module():
    text = (ROOT / "doc/ARCHITECTURE.md").read_text()
    assert len(modules()) >= 10
    missing = [name for name in modules() if not re.search(rf"\b{name}\b", text)]
    assert missing == [], f"doc/ARCHITECTURE.md does not name {missing}"


def test_package_swift_header_names_every_module():
    header = "".join(
        line for line in (ROOT / "Package.swift").read_text().splitlines(keepends=True) if line.startswith("//")
    )
    missing = [name for name in modules() if not re.search(rf"\b{name}\b", header)]
    assert missing == [], f"Package.swift's header does not name {missing}"


def package_graph():
    """{module: set of the modules (and swift-system's SystemPackage) it depends on}, from Package.swift,
    for the modules under Sources/."""
    text = (ROOT / "Package.swift").read_text()
    names = set(modules()) | {"SystemPackage"}
    graph = {}
    for chunk in re.split(r"\.(?=(?:target|executableTarget|testTarget|systemLibrary)\()", text)[1:]:
        name = re.search(r'name:\s*"(\w+)"', chunk)[1]
        if name not in modules():
            continue
        listed = re.search(r"dependencies:\s*\[(.*?)\]", chunk, re.S)
        graph[name] = {d for d in re.findall(r'"(\w+)"', listed[1]) if d in names} if listed else set()
    return graph


def mermaid_graph():
    """The edges of the picture in doc/ARCHITECTURE.md."""
    text = (ROOT / "doc/ARCHITECTURE.md").read_text()
    block = re.search(r"```mermaid\n(.*?)```", text, re.S)
    assert block, "doc/ARCHITECTURE.md has no mermaid graph"
    graph = {}
    for source, target in re.findall(r"^\s*(\w+)\s*-->\s*(\w+)", block[1], re.M):
        graph.setdefault(source, set()).add(target)
    return graph


def reachable(graph):
    closure = {}
    for start in graph:
        seen, todo = set(), list(graph[start])
        while todo:
            node = todo.pop()
            if node not in seen:
                seen.add(node)
                todo += graph.get(node, ())
        closure[start] = seen
    return closure


def test_the_architecture_picture_is_the_package_graph():
    """The picture may leave out an edge that others imply, but what each module can reach through it
    is exactly what Package.swift lets it use."""
    package, picture = package_graph(), mermaid_graph()
    assert len(package) >= 10
    assert set(picture) <= set(package), f"the picture names modules Package.swift does not: {set(picture) - set(package)}"
    wanted, drawn = reachable(package), reachable(picture)
    differences = {
        module: {"only in Package.swift": sorted(wanted[module] - drawn.get(module, set())),
                 "only in the picture": sorted(drawn.get(module, set()) - wanted[module])}
        for module in package if wanted[module] != drawn.get(module, set())
    }
    assert differences == {}
