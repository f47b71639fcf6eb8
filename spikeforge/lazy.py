"""A click group whose subcommands are imported only when they run (or ``--help`` lists them)."""

import importlib

import click

__all__ = ["LazyGroup"]


class LazyGroup(click.Group):
    """``lazy`` maps a subcommand name to ``"module:attribute"`` of a click command."""

    def __init__(self, *args, lazy, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx):
        return sorted(self.lazy)

    def get_command(self, ctx, name):
        if name not in self.lazy:
            return None
        module, attribute = self.lazy[name].split(":")
        return getattr(importlib.import_module(module), attribute)
