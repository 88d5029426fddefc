"""Development tooling: the local stack, the `chorus` command, the local gateway, the image build.

Nothing in shared/ or services/ imports this package, and the image does not carry it
(tests/unit/test_runtime_imports.py proves the first, devtools/image.py's APP_PACKAGES the second).
"""
