"""The primitive ops, one ``Function`` subclass each, grouped by family.

Reading the calculus means reading these files: each op's ``forward`` and ``backward`` sit
together. Composite operations (``var``, ``flatten``, ``squeeze``, ...) are built from these in
``tensor.py`` and have no backward of their own.
"""
