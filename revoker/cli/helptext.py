"""``--help`` people can read: options in groups, and examples per command."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

# Which group each option's help goes in, by parameter name; the rest go under "Options".
GROUPS: dict[str, tuple[str, ...]] = {
    "Input": (
        "keys",
        "app_id",
        "regions",
        "shard_spec",
        "shard_count",
        "skip_invalid",
        "scanner",
        "rules",
        "all_findings",
        "allow_non_ascii_keys",
    ),
    "What to do": (
        "verify",
        "verify_delay",
        "disconnect",
        "disconnect_timeout",
        "absent_ok",
        "expired",
        "older_than",
        "new_keys_file",
        "append",
        "expires_after",
        "show_all",
    ),
    "Target": ("base_url", "fallback_url", "allow_base_path", "auth", "credentials_file"),
    "Pacing and retries": ("concurrency", "max_rps", "max_attempts", "timeout"),
    "Audit": ("audit_log", "resume", "sign_key", "reveal_keys", "fallback"),
    "Output": ("output", "fmt", "dry_run"),
    "Verification": ("verify_chain", "expect_head", "public_key", "require_chain"),
}
_GROUP_OF = {name: group for group, names in GROUPS.items() for name in names}


class HelpCommand(click.Command):
    """A command whose ``--help`` lists its options in groups and ends with examples.

    ``examples``: (command line, what it does) pairs, shown as written.
    """

    def __init__(self, *args: Any, examples: Sequence[tuple[str, str]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.examples = tuple(examples)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {name: [] for name in GROUPS}
        sections["Options"] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None or isinstance(param, click.Argument):
                continue
            sections[_GROUP_OF.get(param.name or "", "Options")].append(record)
        for title, records in sections.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        if not self.examples:
            return
        with formatter.section("Examples"):
            for line, what in self.examples:
                # Written as is: click would rewrap a command line.
                indent = " " * formatter.current_indent
                formatter.write(f"{indent}# {what}\n{indent}{line}\n")
