"""The report as HTML: one self-contained page, or a folder of static pages (`index.html`: summary, tasks,
robustness, models, method; `tasks/<task>.html`: one task each).

Jinja2 with autoescape on: model names, paths, commands and cards are user data and are never marked safe; the
only markup made in Python is the SVG of `plots` and the citation links of `cards.linked`, both built from escaped
parts, and the summary's JSON, escaped so that no string in it can close its script block. CSS and the script
(`templates/report.css.j2`, `templates/report.js.j2`) are inlined: a page loads nothing from anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from jinja2 import Environment, PackageLoader, select_autoescape

from xbench.analysis.cards import METHOD_CITATION, METHOD_LINKS, linked
from xbench.analysis.report import ALPHA, Report, Section, json_script
from xbench.analysis.significance import T_TEST_MIN_UNITS
from xbench.tasks.spec import SETTINGS

FILTER_NAMES = {"family": "Task family", "domain": "Domain", "lang": "Query language", "setting": "Setting"}


def _pretty(value: object) -> str:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False)


def _tone(tone: float | None) -> str:
    """A drop cell's background: red where the domain scores lower (a positive drop), blue where it scores higher,
    stronger the larger the drop relative to the table's largest."""
    if tone is None or tone == 0:
        return ""
    rgb = "215,48,39" if tone > 0 else "69,117,180"
    return f"background:rgba({rgb},{0.08 + 0.5 * abs(tone):.2f})"


def _sort_key(value: float | None) -> str:
    """A cell's data-v: ten significant digits order any two values the page tells apart ("" = missing, last)."""
    return "" if value is None else f"{value:.10g}"


def _web_link(value: str | None) -> str | None:
    """A card's link when it is a web address; anything else (a `javascript:` URL in a submitted card) is not."""
    return value if value and value.startswith(("https://", "http://")) else None


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("xbench.analysis", "templates"),
                      autoescape=select_autoescape(["html", "j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pretty=_pretty, linked=linked, json_script=json_script, tone=_tone, web_link=_web_link,
                       sort_key=_sort_key)
    return env


def _render(report: Report, sections: list[Section], front: bool, task_href: Callable[[str], str],
            home: str) -> str:
    """One page: the front part (summary, tasks, robustness, models, method) and/or task sections. `task_href`:
    where a task's section is; `home`: the front page's address from this page ("" on it)."""
    template = _environment().get_template("report.html.j2")
    return template.render(report=report, sections=sections, front=front, task_href=task_href, home=home,
                           single=front and bool(sections), settings=SETTINGS, filter_names=FILTER_NAMES,
                           alpha=ALPHA, t_test_min_units=T_TEST_MIN_UNITS, method_citation=METHOD_CITATION,
                           method_links=METHOD_LINKS)


def page(report: Report) -> str:
    """Everything on one self-contained page; task sections fold open from the task list."""
    return _render(report, report.sections, True, lambda name: f"#task-{name}", "")


def pages(report: Report) -> dict[str, str]:
    """A folder of pages: relative path -> HTML. Task names are file-name safe (the spec's name pattern)."""
    out = {"index.html": _render(report, [], True, lambda name: f"tasks/{name}.html", "")}
    for section in report.sections:
        out[f"tasks/{section.spec.name}.html"] = _render(report, [section], False,
                                                         lambda name: f"{name}.html", "../index.html")
    return out

