"""The tests are a package, so pytest imports each test module (and conftest.py) under its package name,
`tests.test_x`: a test that imports a helper from another test module (`from tests.test_ads import obj`) gets the
module pytest collected, not a second copy with module-level state and caches of its own."""
