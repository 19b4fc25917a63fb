"""The I/O layer: every file fmuia reads or writes goes through here.

Writers are atomic and respect the umask; readers turn every unreadable file into a
``fmuia.errors.DataError`` naming it. The data and submission formats are described
in ``docs/format.md``.
"""
