"""Every place the gateway depends on a library's internals, with the versions it was checked
against. A test (tests/test_compat.py) fails with the name of the file to re-check when one of
them changes upstream."""
