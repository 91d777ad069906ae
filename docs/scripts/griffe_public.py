"""Griffe extension for the API reference: a module that declares ``__all__`` shows only those
names (and its submodules); its other top-level names are implementation details."""

from __future__ import annotations

from typing import Any

import griffe


class PublicOnly(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        stack = [pkg]
        while stack:
            mod = stack.pop()
            for name, member in list(mod.members.items()):
                if not member.is_alias and member.is_module:
                    stack.append(member)
                elif mod.exports is not None and name not in mod.exports:
                    del mod.members[name]
