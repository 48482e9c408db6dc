"""Refusing flags that neither imgshard nor Beam knows, before anything runs.

Beam only logs `Discarding unparseable args` and goes on, so `--sed 4` would run the whole
conversion with seed 0: wrong bytes under a promise of "same seed, same bytes". A flag that
only a Java runner understands (the Flink or Spark job server takes options the Python SDK
does not declare) is passed on with `--allow-unknown-flags`.
"""

from __future__ import annotations

import argparse
import difflib

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

__all__ = ["add_unknown_flags_argument", "check_unknown_flags"]


def add_unknown_flags_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-unknown-flags",
        action="store_true",
        help="pass flags that neither imgshard nor the Beam Python SDK knows on to the runner "
        "(e.g. options of a Java job server) instead of refusing them",
    )


def _beam_parser() -> argparse.ArgumentParser:
    """Every flag of every PipelineOptions class, as Beam itself assembles them."""
    parser = _BeamArgumentParser(allow_abbrev=False)
    classes = {str(cls): cls for cls in PipelineOptions.__subclasses__()}
    for cls in classes.values():
        cls._add_argparse_args(parser)  # noqa: SLF001  (Beam's own way to list its flags)
    return parser


def _flag_names(parser: argparse.ArgumentParser) -> list[str]:
    return [s for action in parser._actions for s in action.option_strings if s.startswith("--")]


def _unknown(beam_args: list[str], beam_parser: argparse.ArgumentParser) -> list[str]:
    """The flags (and stray words) in `beam_args` that Beam's parser does not take."""
    try:
        _, unknown = beam_parser.parse_known_args(beam_args)
    except SystemExit:  # a known Beam flag with a bad value: Beam reports it when it parses
        return []
    found = []
    for i, arg in enumerate(unknown):
        if arg.startswith("-"):
            found.append(arg.split("=", 1)[0])
        elif i == 0 or not unknown[i - 1].startswith("-") or "=" in unknown[i - 1]:
            found.append(arg)  # a word that is no flag's value
    return found


def check_unknown_flags(
    beam_args: list[str],
    own_parser: argparse.ArgumentParser,
    allow: bool = False,
    passable: bool = True,
) -> None:
    """Raises ValueError naming each unknown flag and the closest known one.

    Args:
      allow: pass unknown flags on (--allow-unknown-flags).
      passable: whether the command has --allow-unknown-flags to offer.
    """
    if allow:
        return
    beam_parser = _beam_parser()
    unknown = _unknown(beam_args, beam_parser)
    if not unknown:
        return
    known = _flag_names(own_parser) + _flag_names(beam_parser)
    problems = []
    for flag in unknown:
        if not flag.startswith("-"):
            problems.append(f"unexpected argument {flag!r}")
            continue
        # Beam spells its flags with underscores, imgshard with dashes: compare both ways.
        spelled = {flag, flag.replace("_", "-"), "--" + flag.lstrip("-").replace("-", "_")}
        close = [
            match
            for candidate in sorted(spelled)
            for match in difflib.get_close_matches(candidate, known, n=1, cutoff=0.75)
        ]
        hint = f" (did you mean {close[0]}?)" if close else ""
        problems.append(f"unknown flag {flag}{hint}")
    advice = "fix the spelling"
    if passable:
        advice += ", or pass --allow-unknown-flags to hand it to the runner as is"
    raise ValueError(
        "; ".join(problems) + f". Neither imgshard nor Beam knows it, and the run would ignore "
        f"it; {advice}"
    )
