"""Root pytest hook file: import the real workspace packages before any test file is collected.

Under `--import-mode=importlib`, a test file such as shared/tests/test_x.py (no __init__.py) is imported as
`shared.tests.test_x`, and pytest creates the missing parents from folder locations, so `shared` would become a
namespace package for the repository folder shared/ and shadow the installed `shared` (src layout). Importing the
real packages first puts them in sys.modules, where pytest finds them instead.
"""

import benchmarks  # noqa: F401
import shared  # noqa: F401
