"""The tiny int8 builds of tests/measure/runtimes, for test_portable.py."""

from tests.measure.runtimes.conftest import digits, int8_models  # noqa: F401  (fixtures)
