"""`when`, `unless`, `until`, `key` and `attach` must parse and use only data, contact and event."""

from __future__ import annotations

from collections.abc import Iterator

from jinja2 import TemplateSyntaxError

from clarion.check.context import CheckContext
from clarion.check.models import DigestStep, WaitStep
from clarion.check.rendering import (
    EXPRESSION_NAMES,
    parse_expression,
    parse_template,
    unknown_names,
)
from clarion.diagnostics import Diagnostic
from clarion.load import YamlPath


def expressions(ctx: CheckContext) -> Iterator[tuple[str, YamlPath, bool]]:
    """(source, path, is_template_string) for every expression in the config."""
    for index, route in enumerate(ctx.config.routes):
        if route.when is not None:
            yield route.when, ("routes", index, "when"), False
    for name, message in ctx.config.customer_messages.items():
        if message.attach is not None:
            yield message.attach, ("customer_messages", name, "attach"), True
    yield from _pacing_keys(ctx)
    for name, flow in ctx.config.flows.items():
        base: YamlPath = ("flows", name)
        if flow.when is not None:
            yield flow.when, (*base, "when"), False
        if flow.unless is not None:
            yield flow.unless, (*base, "unless"), False
        if flow.key is not None:
            yield flow.key, (*base, "key"), True
        for s, step in enumerate(flow.steps):
            if isinstance(step, WaitStep) and step.wait.until is not None:
                yield step.wait.until, (*base, "steps", s, "wait", "until"), False


def _pacing_keys(ctx: CheckContext) -> Iterator[tuple[str, YamlPath, bool]]:
    from clarion.check.rules.digests_and_throttles import throttles

    for throttle, path in throttles(ctx):
        yield throttle.key, (*path, "key"), True
    for name, flow in ctx.config.flows.items():
        for s, step in enumerate(flow.steps):
            if isinstance(step, DigestStep):
                yield step.digest.key, ("flows", name, "steps", s, "digest", "key"), True


def check(ctx: CheckContext) -> Iterator[Diagnostic]:
    for source, path, is_template in expressions(ctx):
        what = path[-1]
        try:
            ast = parse_template(source) if is_template else parse_expression(source)
        except TemplateSyntaxError as exc:
            yield ctx.error(
                "CL405",
                f"`{what}` does not parse: {exc.message}",
                path,
                hint='write a template string such as "{{ data.order_id }}"'
                if is_template
                else "write a Jinja2 expression such as data.amount >= 100000",
            )
            continue
        for unknown in unknown_names(ast, EXPRESSION_NAMES):
            yield ctx.error(
                "CL406",
                f"`{what}` uses {unknown!r}; expressions may use only data, contact and event",
                path,
                hint=f"did you mean data.{unknown}?",
            )
