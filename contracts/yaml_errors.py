"""A YAML syntax error as a person reads it: line and column in the named file, the offending line and a caret.

PyYAML says `in "<unicode string>", line 3, column 5` twice (the text was read before it was parsed, so it has
no file name). Every loader of a file a person wrote (the agent's and the sieve's configs, the price file, the
training config, the CloudFormation template) tells it this way; the caller names the file.
"""

from __future__ import annotations

import yaml


def syntax_message(exc: yaml.YAMLError) -> str:
    """PyYAML's error told by line and column, without its `in "<unicode string>"` (the caller names the file)."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return str(exc)
    mark = exc.problem_mark
    text = f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    if exc.context and exc.context_mark is not None:
        text += f" ({exc.context}, from line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
    for where in (mark, exc.context_mark):  # the file's end shows nothing: then the line the context began on
        snippet = where.get_snippet() if where is not None else None
        if snippet and snippet.split("\n")[0].strip():
            return f"{text}\n{snippet}"
    return text
