"""The labelled set of the retrieval scenario: the Debian FAQ among Debian Reference sections.

Queries are the FAQ's questions (its section headings that end with "?"); each one's only
relevant record is the text of its answer section, heading left out. Distractors are the
sections of the Debian Reference (another team's manual on the same subject, so they share
its vocabulary). Every record's metadata holds `title`, the chapter it comes from, which the
"title" lever may prepend to each chunk. Both sets are Debian packages (`debian-faq`,
`debian-reference-en`), installed with apt-get when missing.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

FAQ_DIR = Path("/usr/share/doc/debian/FAQ")
REFERENCE_DIR = Path("/usr/share/debian-reference")
PACKAGES = ("debian-faq", "debian-reference-en")
MIN_CHARS = 80  # a heading over nothing but its subsections is no record

_HEADING = re.compile(r"h[1-5]")
_NUMBER = re.compile(r"^\s*(?:Chapter\s+|Appendix\s+)?[\dA-Z]+(?:\.\d+)*\.?\s+")
_SKIP = frozenset({"script", "style", "head"})


@dataclass
class Section:
    level: int
    heading: str
    chapter: str
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return _tidy(" ".join(self.parts))


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str


@dataclass(frozen=True)
class Query:
    text: str
    relevant: str  # the id of the one relevant document


@dataclass(frozen=True)
class Corpus:
    documents: list[Document]
    queries: list[Query]


class _Sections(HTMLParser):
    """A page's text cut at every heading: each section runs to the next heading."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[Section] = []
        self.chapter = ""
        self._heading: list[str] | None = None
        self._level = 0
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif _HEADING.fullmatch(tag):
            self._heading, self._level = [], int(tag[1])
        elif tag in ("p", "li", "pre", "tr", "br", "div") and self.sections:
            self.sections[-1].parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif _HEADING.fullmatch(tag) and self._heading is not None:
            heading = _tidy(" ".join(self._heading))
            if self._level == 1:
                self.chapter = _NUMBER.sub("", heading)
            self.sections.append(Section(self._level, heading, self.chapter))
            self._heading = None

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        data = data.replace("\n", " ")  # the page source's line breaks mean nothing
        if self._heading is not None:
            self._heading.append(data)
        elif self.sections:
            self.sections[-1].parts.append(data)


def _tidy(text: str) -> str:
    lines = (" ".join(line.split()) for line in html.unescape(text).splitlines())
    return "\n".join(line for line in lines if line)


def page_sections(path: Path) -> list[Section]:
    parser = _Sections()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return [s for s in parser.sections if s.level >= 2 and len(s.text) >= MIN_CHARS]


def ensure_installed() -> None:
    """apt-get install the two documentation packages when their pages are missing."""
    if _pages(FAQ_DIR) and _pages(REFERENCE_DIR):
        return
    if shutil.which("apt-get") is None:
        raise RuntimeError(f"the retrieval benchmark needs the Debian packages {PACKAGES}")
    command = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    if subprocess.run(command, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, check=True)
        subprocess.run(command, capture_output=True, check=True)


def _pages(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.en.html")) if directory.is_dir() else []


def load_corpus() -> Corpus:
    """Every FAQ answer (a query each) and every Debian Reference section."""
    ensure_installed()
    documents: list[Document] = []
    queries: list[Query] = []
    for page in _pages(FAQ_DIR):
        for n, section in enumerate(page_sections(page)):
            question = _NUMBER.sub("", section.heading)
            if not question.endswith("?"):
                continue
            doc_id = f"faq:{page.name.split('.')[0]}:{n}"
            documents.append(Document(doc_id, section.text, section.chapter))
            queries.append(Query(question, doc_id))
    for page in _pages(REFERENCE_DIR):
        for n, section in enumerate(page_sections(page)):
            doc_id = f"ref:{page.name.split('.')[0]}:{n}"
            documents.append(Document(doc_id, section.text, section.chapter))
    return Corpus(documents, queries)


def sample(corpus: Corpus, queries: int, distractors: int) -> Corpus:
    """The first `queries` questions with their answers, and every k-th distractor."""
    chosen = corpus.queries[:queries]
    wanted = {q.relevant for q in chosen}
    others = [d for d in corpus.documents if d.id.startswith("ref:")]
    step = max(1, len(others) // max(1, distractors))
    kept = others[::step][:distractors]
    answers = [d for d in corpus.documents if d.id in wanted]
    return Corpus(answers + kept, chosen)
