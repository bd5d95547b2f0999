"""Real English text for tests and benchmarks: paragraphs of the standard library's docstrings."""

from __future__ import annotations

import importlib
import inspect
import re
import warnings

MODULES = [
    "argparse",
    "asyncio.events",
    "asyncio.tasks",
    "asyncio.streams",
    "collections",
    "concurrent.futures",
    "contextlib",
    "csv",
    "dataclasses",
    "datetime",
    "decimal",
    "difflib",
    "email.message",
    "fractions",
    "ftplib",
    "functools",
    "gettext",
    "glob",
    "gzip",
    "heapq",
    "hmac",
    "html.parser",
    "http.client",
    "http.cookies",
    "imaplib",
    "inspect",
    "ipaddress",
    "json",
    "logging",
    "logging.handlers",
    "mailbox",
    "mimetypes",
    "multiprocessing.pool",
    "numbers",
    "optparse",
    "os",
    "pathlib",
    "pickle",
    "pprint",
    "queue",
    "random",
    "re",
    "sched",
    "selectors",
    "shelve",
    "shlex",
    "shutil",
    "smtplib",
    "socket",
    "socketserver",
    "sqlite3",
    "ssl",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "timeit",
    "tkinter",
    "tokenize",
    "traceback",
    "turtle",
    "typing",
    "unittest.case",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "warnings",
    "wave",
    "weakref",
    "xml.dom.minidom",
    "zipfile",
    "zoneinfo",
]


def _paragraphs(doc: str) -> list[str]:
    parts = re.split(r"\n\s*\n", inspect.cleandoc(doc))
    return [" ".join(p.split()) for p in parts]


def _documented(module: object) -> list[object]:
    """The module, its members, and the members of its classes."""
    objects: list[object] = [module]
    for attr in sorted(dir(module)):
        with warnings.catch_warnings():  # `typing.io` and the like warn when touched
            warnings.simplefilter("ignore", DeprecationWarning)
            member = getattr(module, attr, None)
        objects.append(member)
        if inspect.isclass(member):
            objects.extend(vars(member).values())
    return objects


def english_paragraphs(count: int, min_words: int = 12, max_words: int = 120) -> list[str]:
    """`count` distinct paragraphs, deterministic for a given Python installation."""
    seen: set[str] = set()
    found: list[str] = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for obj in _documented(module):
            with warnings.catch_warnings():  # `typing.io` and the like warn when touched
                warnings.simplefilter("ignore", DeprecationWarning)
                doc = getattr(obj, "__doc__", None) if obj is not None else None
            if not isinstance(doc, str):
                continue
            for paragraph in _paragraphs(doc):
                words = paragraph.split()
                if not (min_words <= len(words) <= max_words) or paragraph in seen:
                    continue
                if sum(c.isalpha() for c in paragraph) < 0.6 * len(paragraph):
                    continue  # skip code samples and tables
                seen.add(paragraph)
                found.append(paragraph)
                if len(found) == count:
                    return found
    raise RuntimeError(f"only {len(found)} paragraphs found, wanted {count}")
