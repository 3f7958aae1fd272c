#!/bin/sh
# The ctests python and python_asan: pytest with a base temporary directory of its own
# (mktemp -d under TMPDIR), removed afterwards. A fixed --basetemp in the build tree made two
# runs at once (two ctest in one build tree) collide: pytest empties its basetemp when it
# starts, and the other run's pip install lost its files.
# Usage: test_python.sh PYTHON PYTEST-ARGUMENTS...
set -u
py=$1
shift
tmp=$(mktemp -d "${TMPDIR:-/tmp}/tessera-pytest-XXXXXX") || exit 1
"$py" -m pytest -p no:cacheprovider -q --basetemp="$tmp/t" "$@"
rc=$?
rm -rf "$tmp"
exit $rc
