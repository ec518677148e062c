"""Class names and prompt templates of zero-shot classification sets, and the check that a set
has them.

A zero-shot set's `dataset.json` carries `class_names` (label i is `class_names[i]`) and
`templates` (strings with one `{}`: `template.format(name)` is a prompt). `vlscale data import`
takes them from a named set (`imagenet` class names; `openai` or `simple` templates: open_clip's
own ImageNet lists, imported, never copied), from a file, or from class-folder names. The
evaluator and the driver's pre-flight check call `check_zero_shot_shards`, so a set without them
fails before training, in one line that names the flag that fixes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from vlscale.errors import UserError
from vlscale.registry import Registry

if TYPE_CHECKING:
    from vlscale.platform.data.shards import ShardSet

CLASS_NAME_SETS: Registry[Callable[[], list[str]]] = Registry("class-name set")
"""Named class-name lists for `--classnames NAME` (else the value is a file)."""
TEMPLATE_SETS: Registry[Callable[[], list[str]]] = Registry("template set")
"""Named prompt-template lists for `--templates NAME` (else the value is a file)."""
DEFAULT_TEMPLATES = "openai"
"""OpenAI's 80 ImageNet prompts: what CLIP papers (and the scaling-law paper's evaluation,
clip_benchmark) use for ImageNet, and generic enough for other class sets."""
IMAGENET_CLASSES = 1000
FIX_HINT = ("re-import it with `vlscale data import SRC OUT --classnames FILE|imagenet "
            "[--templates openai|simple|FILE]`, or add the lists to its dataset.json")


def _open_clip_templates(templates: Sequence[Callable[[str], str]]) -> list[str]:
    """open_clip's templates are lambdas; as format strings they are each lambda applied to
    "{}" (checked to give the same prompt as the lambda)."""
    strings = [template("{}") for template in templates]
    for template, string in zip(templates, strings):
        if string.count("{}") != 1 or string.format("x y") != template("x y"):
            raise ValueError(f"open_clip template {string!r} is not a one-slot format string")
    return strings


@CLASS_NAME_SETS.register("imagenet")
def imagenet_class_names() -> list[str]:
    """open_clip's ImageNet-1k class names, in class-index order (the sorted WordNet ids)."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return list(IMAGENET_CLASSNAMES)


@TEMPLATE_SETS.register("openai")
def openai_templates() -> list[str]:
    """OpenAI's 80 ImageNet prompt templates, as open_clip ships them."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return _open_clip_templates(OPENAI_IMAGENET_TEMPLATES)


@TEMPLATE_SETS.register("simple")
def simple_templates() -> list[str]:
    """The 7-prompt subset of OpenAI's templates that open_clip ships."""
    from open_clip.zero_shot_metadata import SIMPLE_IMAGENET_TEMPLATES

    return _open_clip_templates(SIMPLE_IMAGENET_TEMPLATES)


def _read_list(path: Path, flag: str) -> list[str]:
    """A JSON list of strings, or one entry per non-blank line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"{flag} {path}: cannot read it ({error})") from error
    if text.lstrip().startswith("["):
        try:
            values = json.loads(text)
        except ValueError as error:
            raise UserError(f"{flag} {path} is not valid JSON ({error}); write a JSON list of "
                            "strings or one entry per line") from error
        if not all(isinstance(v, str) for v in values):
            raise UserError(f"{flag} {path}: the JSON list must hold only strings")
    else:
        values = [line.strip() for line in text.splitlines()]
    values = [v.strip() for v in values if v.strip()]
    if not values:
        raise UserError(f"{flag} {path} holds no entries")
    return values


def _named_or_file(value: str, registry: Registry[Callable[[], list[str]]], flag: str
                   ) -> list[str]:
    if value in registry:
        return registry.get(value)()
    path = Path(value).expanduser()
    if not path.is_file():
        raise UserError(f"{flag} {value}: no such file, and not a known name "
                        f"({', '.join(registry.names())})")
    return _read_list(path, flag)


def load_class_names(value: str) -> list[str]:
    """`--classnames VALUE`: a named set ("imagenet") or a file (JSON list or one per line);
    label i is entry i. Names may repeat (ImageNet's "missile" and "sunglasses" do): each entry
    is still its own class."""
    return _named_or_file(value, CLASS_NAME_SETS, "--classnames")


def load_templates(value: str | None) -> list[str]:
    """`--templates VALUE`: a named set ("openai", "simple") or a file; the default is
    `DEFAULT_TEMPLATES`. Each template must hold exactly one "{}"."""
    templates = _named_or_file(value or DEFAULT_TEMPLATES, TEMPLATE_SETS, "--templates")
    check_templates(templates, f"--templates {value}")
    return templates


def check_templates(templates: Sequence[str], where: str) -> None:
    """Each template is a format string with exactly one "{}" slot (UserError otherwise)."""
    for template in templates:
        try:
            ok = template.count("{}") == 1 and template.format("x") == template.replace("{}", "x")
        except (IndexError, KeyError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"{where}: template {template!r} must hold exactly one {{}} for the "
                            "class name (and no other braces), e.g. 'a photo of a {}.'")


def zero_shot_problem(shards: ShardSet) -> str | None:
    """What keeps `shards` from being a zero-shot set, with how to fix it, or None. Cheap: it
    reads only what opening already read (footers and dataset.json)."""
    if not shards.has_labels:
        return ("has no label column; point the zero-shot data at a labelled set, e.g. one "
                "written by `vlscale data import` from class folders, or from parquet / tar "
                "shards with --label-key KEY --classnames FILE|imagenet")
    missing = [key for key, value in (("class_names", shards.class_names),
                                      ("templates", shards.templates)) if not value]
    if missing:
        return f"has no {' or '.join(missing)} in its dataset.json; {FIX_HINT}"
    check_templates(shards.templates or [], f"the zero-shot shards in {shards.location}")
    return None


def check_zero_shot_shards(shards: ShardSet) -> None:
    """UserError, in one line naming the fix, when `shards` cannot be a zero-shot set."""
    problem = zero_shot_problem(shards)
    if problem:
        raise UserError(f"the zero-shot set {shards.location} {problem}")
