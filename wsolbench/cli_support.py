"""What the ``wsolbench`` group does around every command: ``--debug`` anywhere before ``--``, and the one line
printed for a user error or a Ctrl-C.

Stdlib only, so the command line's start stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

DEBUG_FLAG = "--debug"

#: The exit code of a run stopped with Ctrl-C: 128 + SIGINT, as shells report it.
INTERRUPTED_EXIT_CODE = 130

#: The key of ``click.Context.meta`` (shared by a context and its children) under which a subcommand leaves
#: ``(name, params)`` for the group, which reports an interruption.
INVOKED_KEY = "wsolbench.invoked"


def lift_debug(args: Sequence[str]) -> list[str]:
    """``args`` with every ``--debug`` before a bare ``--`` moved to the front, where the group reads it: so
    ``wsolbench bench --debug ...`` works as ``wsolbench --debug bench ...``. After ``--`` it is an argument."""
    args = list(args)
    end = args.index("--") if "--" in args else len(args)
    head = [a for a in args[:end] if a != DEBUG_FLAG]
    if len(head) == end:
        return args
    return [DEBUG_FLAG, *head, *args[end:]]


def interrupted_message(command: str | None, params: Mapping[str, Any]) -> str:
    """The one line after a Ctrl-C of ``command`` (with its parsed ``params``): what was kept, how to continue.

    A bench or sweep reuses its finished runs and resumes interrupted ones from their checkpoint without being
    asked (``wsolbench.bench.executor``); ``train`` refuses a run with a checkpoint unless given ``--resume``
    (or ``--rerun``), and with ``--resume`` but no checkpoint yet starts it from scratch.
    """
    output_dir = params.get("output_dir")
    if command in ("bench", "sweep") and output_dir is not None and not params.get("dry_run"):
        return (f"interrupted: finished runs and checkpoints are kept in {output_dir}; run the same command again "
                "to continue (finished runs are reused, interrupted ones resume from their last checkpoint)")
    if command == "train" and output_dir is not None:
        return (f"interrupted: the run's last checkpoint (written every epoch) is kept in {output_dir}; run the same "
                "command with --resume to continue")
    return "interrupted: run the same command again"
