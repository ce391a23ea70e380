"""Repository-wide pytest configuration: the docstring examples of `modeling_merit/` run as tests.

The examples are written as transformers writes its own: inside ```python fences, with the closing fence right after
the expected output. The standard doctest parser would read that fence as expected output, so these modules are
collected with transformers' parser (`HfDocTestParser`). `tests/conftest.py` holds the test fixtures.
"""

import doctest
from pathlib import Path

from _pytest.doctest import DoctestModule


DOCTESTED_PACKAGE = Path(__file__).resolve().parent / "modeling_merit"


class FencedDoctestModule(DoctestModule):
    """pytest's doctest collector with `HfDocTestParser` as the parser of every example it finds.

    (transformers' own `HfDoctestModule` predates pytest 9's `import_path` signature, so it cannot be used as is.)
    pytest builds its `DocTestFinder` without a parser argument, which binds the finder's default parser; that
    default is swapped for the duration of the collection only.
    """

    def collect(self):
        # imported here, not at the top: it imports torch and transformers (seconds), which the pytest-xdist
        # controller process would otherwise load before starting its workers
        from transformers.testing_utils import HfDocTestParser

        defaults = doctest.DocTestFinder.__init__.__defaults__
        verbose, _, recurse, exclude_empty = defaults
        doctest.DocTestFinder.__init__.__defaults__ = (verbose, HfDocTestParser(), recurse, exclude_empty)
        try:
            yield from super().collect()
        finally:
            doctest.DocTestFinder.__init__.__defaults__ = defaults


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix == ".py" and file_path.parent == DOCTESTED_PACKAGE:
        return FencedDoctestModule.from_parent(parent, path=file_path)
    return None
